"""The `avalanche` benchmark: Avalanche's classic MNIST streams as clft tasks (needs clft[avalanche] and MNIST)."""

import hashlib

import numpy as np
import pytest

pytest.importorskip("avalanche", reason="Avalanche is not installed (pip install 'clft[avalanche]')")

from clft.data import data_dir  # noqa: E402
from clft.registry import benchmarks  # noqa: E402

pytestmark = [pytest.mark.realdata, pytest.mark.slow, pytest.mark.skipif(
    data_dir() is None or not (data_dir() / "mnist").is_dir(), reason="CLFT_DATA_DIR with mnist/ is not set")]
ORDER = list(range(10))


def _rows(dataset) -> list[tuple[str, int]]:
    """Each example as (hash of its float32 pixels, label), sorted: the split as a multiset."""
    x = np.asarray(dataset["x"], dtype=np.float32)
    return sorted((hashlib.sha1(row.tobytes()).hexdigest(), int(y)) for row, y in zip(x, dataset["label"]))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLFT_CACHE_DIR", str(tmp_path / "cache"))


def test_split_mnist_carries_experiences_classes_and_examples():
    spec = {"name": "avalanche", "benchmark": "SplitMNIST", "train_per_class": 5,
            "kwargs": {"n_experiences": 5, "fixed_class_order": ORDER}}
    bench = benchmarks.build(spec)
    tasks = bench.tasks(0)
    assert bench.scenario == "class-il" and [t.classes for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [t.name for t in tasks][:2] == ["splitmnist-0-1", "splitmnist-2-3"]
    assert [len(t.train) for t in tasks] == [10] * 5
    ours = benchmarks.build({"name": "split-mnist", "n_tasks": 5, "train_per_class": 5}).tasks(0)
    for theirs, mine in zip(tasks, ours):  # the same test images and labels as clft's own split-mnist
        assert _rows(theirs.test) == _rows(mine.test)


def test_task_labels_make_task_il_and_permutations_make_domain_il():
    spec = {"name": "avalanche", "benchmark": "SplitMNIST", "train_per_class": 2, "test_per_class": 2,
            "kwargs": {"n_experiences": 2, "return_task_id": True, "fixed_class_order": ORDER}}
    assert benchmarks.build(spec).scenario == "task-il"
    permuted = benchmarks.build({"name": "avalanche", "benchmark": "PermutedMNIST", "train_per_class": 2,
                                 "test_per_class": 3, "kwargs": {"n_experiences": 2}})
    first, second = permuted.tasks(0)
    assert permuted.scenario == "domain-il" and first.classes == second.classes == tuple(range(10))
    a, b = (np.asarray(t.test["x"], dtype=np.float32) for t in (first, second))
    assert a.shape == b.shape == (30, 784) and not np.array_equal(a, b)
    assert sorted(map(tuple, np.sort(a, axis=1))) == sorted(map(tuple, np.sort(b, axis=1)))  # pixels permuted
