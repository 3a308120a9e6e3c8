"""Text benchmarks on the real public datasets: the published counts.

Needs ``CLFT_DATA_DIR`` pointing at a folder with ``clinc150/``, ``banking77/``,
``olora_cl_benchmark/`` and ``lfpt5_fewshot/`` (see each module's docstring for
the sources); skipped otherwise. Run: ``CLFT_DATA_DIR=../shared/data pytest -m realdata``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

import clft.benchmarks  # noqa: F401  (registers the built-ins)
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks

DATA = os.environ.get("CLFT_DATA_DIR")
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not DATA, reason="CLFT_DATA_DIR is not set (the public datasets are needed)"),
]


def need(folder: str) -> None:
    if not (Path(DATA or "") / folder).is_dir():
        pytest.skip(f"{folder}/ not under CLFT_DATA_DIR={DATA}")


def build(name: str, **options):
    return benchmarks.build({"name": name, **options})


def test_clinc150_published_counts():
    need("clinc150")
    bench = build("clinc150")
    stream = bench.tasks(0)
    assert len(bench.label_names) == 150 and len(stream) == 10
    assert all(len(t.classes) == 15 for t in stream)
    assert sum(len(t.train) for t in stream) == 15_000
    assert sum(len(t.val) for t in stream) == 3_000
    assert sum(len(t.test) for t in stream) == 4_500
    assert all(set(Counter(t.train["label"]).values()) == {100} for t in stream)


def test_clinc150_chunks_cover_every_intent():
    need("clinc150")
    stream = build("clinc150", split="chunks", n_tasks=15, shuffle_order=True).tasks(1)
    assert sorted(c for t in stream for c in t.classes) == list(range(150))


def test_clinc150_n_intents_keeps_the_first_intents_of_the_label_order():
    need("clinc150")
    full = build("clinc150", split="chunks", n_tasks=3)
    small = build("clinc150", split="chunks", n_tasks=3, n_intents=15, test_per_class=4)
    stream = small.tasks(0)
    assert small.label_names == full.label_names[:15]
    assert [list(t.classes) for t in stream] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    assert all(set(Counter(t.train["label"]).values()) == {100} for t in stream)  # every row of a kept intent
    assert all(set(Counter(t.test["label"]).values()) == {4} for t in stream)
    with pytest.raises(ConfigError, match="n_intents needs split: chunks"):
        build("clinc150", n_intents=15)
    with pytest.raises(ConfigError, match="n_intents must lie in n_tasks"):
        build("clinc150", split="chunks", n_tasks=5, n_intents=3)


def test_banking77_published_counts():
    need("banking77")
    bench = build("banking77", n_tasks=7)
    stream = bench.tasks(0)
    assert len(bench.label_names) == 77 and [len(t.classes) for t in stream] == [11] * 7
    assert sum(len(t.train) for t in stream) == 10_003
    assert sum(len(t.test) for t in stream) == 3_080


@pytest.mark.parametrize("split_seed", [0, 1, 2])
def test_lfpt5_sixteen_train_examples_per_class(split_seed):
    need("lfpt5_fewshot")
    bench = build("lfpt5-fewshot", split_seed=split_seed)
    stream = bench.tasks(0)
    assert [len(t.classes) for t in stream] == [4, 5, 14, 10]
    for task in stream:
        assert set(Counter(task.train["label"]).values()) == {16}
        assert set(Counter(task.val["label"]).values()) == {16}
    assert "thlete" in bench.label_names


def test_olora_agnews_and_amazon_counts():
    need("olora_cl_benchmark")
    stream = build("text-cl-standard", order=["agnews", "amazon"]).tasks(0)
    assert [(len(t.train), len(t.test)) for t in stream] == [(4_000, 7_600), (5_000, 7_600)]


def test_olora_missing_file_is_named():
    need("olora_cl_benchmark")
    missing = Path(DATA) / "olora_cl_benchmark" / "TC" / "dbpedia" / "train.json"
    if missing.exists():
        pytest.skip("this copy has dbpedia/train.json")
    with pytest.raises(DataError, match=r"TC/dbpedia/train\.json"):
        build("text-cl-standard", order=1).tasks(0)
