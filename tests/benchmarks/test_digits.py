"""split-digits and permuted-digits: counts, the fixed split, labels per scenario, permutations."""

from __future__ import annotations

import numpy as np
import pytest

import clft.benchmarks  # noqa: F401  (registers the built-ins)
from clft.benchmarks.digits import fixed_split, load_digits
from clft.errors import ConfigError
from clft.registry import benchmarks

N_IMAGES = 1797


def build(**options):
    name = options.pop("name", "split-digits")
    return benchmarks.build({"name": name, **options})


def x_of(dataset) -> np.ndarray:
    return np.asarray(dataset["x"], dtype=np.float32)


def test_load_digits_is_cached_scaled_and_read_only():
    images, digits = load_digits()
    assert images.shape == (N_IMAGES, 64) and digits.shape == (N_IMAGES,)
    assert images.min() == 0.0 and images.max() == 1.0
    assert load_digits()[0] is images
    with pytest.raises(ValueError):
        images[0, 0] = 0.5


def test_fixed_split_is_stratified_disjoint_and_complete():
    train, test = fixed_split(0.25)
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == N_IMAGES
    _, digits = load_digits()
    shares = np.bincount(digits[test], minlength=10) / np.bincount(digits, minlength=10)
    assert np.all(np.abs(shares - 0.25) < 0.02)


@pytest.mark.parametrize("scenario", ["class-il", "task-il", "domain-il"])
def test_split_digits_counts_and_labels(scenario):
    bench = build(scenario=scenario)
    tasks = bench.tasks(0)
    _, digits = load_digits()
    assert [t.id for t in tasks] == [0, 1, 2, 3, 4]
    assert sum(len(t.train) + len(t.test) for t in tasks) == N_IMAGES
    for t, pair in zip(tasks, [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]):
        assert len(t.train) + len(t.test) == int(np.isin(digits, pair).sum())
        assert set(t.train["task"]) == {t.id} == set(t.test["task"])
        x = x_of(t.train)
        assert x.shape[1] == 64 and x.min() >= 0.0 and x.max() <= 1.0
        labels = set(t.train["label"]) | set(t.test["label"])
        if scenario == "domain-il":
            assert t.classes == (0, 1) and labels == {0, 1}
        else:
            assert t.classes == pair and labels == set(pair)
    expected_names = ["first", "second"] if scenario == "domain-il" else [str(d) for d in range(10)]
    assert bench.label_names == expected_names


def test_split_is_independent_of_the_seed_and_deterministic():
    bench = build()
    a, b, c = bench.tasks(0), bench.tasks(1), bench.tasks(0)
    for ta, tb, tc in zip(a, b, c):
        assert np.array_equal(x_of(ta.test), x_of(tb.test))
        assert ta.train["label"] == tc.train["label"] and np.array_equal(x_of(ta.train), x_of(tc.train))


def test_shuffled_classes_depend_on_the_seed_but_not_the_test_images():
    bench = build(shuffle_classes=True)
    a, b = bench.tasks(0), bench.tasks(1)
    assert [t.classes for t in a] != [t.classes for t in b]
    assert [t.classes for t in a] == [t.classes for t in bench.tasks(0)]
    assert sorted(c for t in a for c in t.classes) == list(range(10))

    def test_images_of(tasks, digit):
        task = next(t for t in tasks if digit in t.classes)
        rows = [i for i, label in enumerate(task.test["label"]) if label == digit]
        return x_of(task.test)[rows]

    for digit in range(10):
        assert np.array_equal(test_images_of(a, digit), test_images_of(b, digit))


def test_domain_il_label_is_the_position_in_a_shuffled_task():
    bench = build(scenario="domain-il", shuffle_classes=True)
    images, digits = load_digits()
    for task in bench.tasks(3):
        order = bench.class_order(3)[task.id * 2 : task.id * 2 + 2]
        x, labels = x_of(task.test), task.test["label"]
        for row in range(0, len(labels), 17):
            source = np.flatnonzero((images == x[row]).all(axis=1))
            assert digits[source[0]] == order[labels[row]]


@pytest.mark.parametrize("n_tasks", [1, 2, 10])
def test_other_task_counts(n_tasks):
    tasks = build(n_tasks=n_tasks).tasks(0)
    assert len(tasks) == n_tasks and all(len(t.classes) == 10 // n_tasks for t in tasks)


@pytest.mark.parametrize(
    "options",
    [{"n_tasks": 3}, {"n_tasks": 0}, {"test_fraction": 0.0}, {"test_fraction": 1.0}, {"scenario": "online"}],
)
def test_invalid_split_options(options):
    with pytest.raises(ConfigError):
        build(**options)


def test_permuted_digits_stream():
    bench = build(name="permuted-digits")
    assert bench.scenario == "domain-il" and bench.label_names == [str(d) for d in range(10)]
    tasks = bench.tasks(0)
    plain = x_of(tasks[0].test)
    _, test_rows = fixed_split(0.25)
    assert np.array_equal(plain, load_digits()[0][test_rows])
    for task, perm in zip(tasks, bench.permutations()):
        assert task.classes == tuple(range(10))
        assert np.array_equal(x_of(task.test), plain[:, perm])
        assert task.test["label"] == tasks[0].test["label"]


def test_permutations_are_fixed_distinct_and_prefix_stable():
    perms = build(name="permuted-digits").permutations()
    assert np.array_equal(perms[0], np.arange(64))
    assert len({p.tobytes() for p in perms}) == len(perms) == 5
    assert all(sorted(p.tolist()) == list(range(64)) for p in perms)
    again = build(name="permuted-digits", n_tasks=7).permutations()
    assert all(np.array_equal(p, q) for p, q in zip(perms, again))
    other = build(name="permuted-digits", permutation_seed=1).permutations()
    assert not np.array_equal(perms[1], other[1])


def test_permuted_stream_does_not_depend_on_the_run_seed():
    bench = build(name="permuted-digits", n_tasks=3)
    for a, b in zip(bench.tasks(0), bench.tasks(5)):
        assert np.array_equal(x_of(a.train), x_of(b.train))
