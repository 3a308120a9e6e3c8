"""synthetic-text: the offline topic-sentence stream used by smoke and conformance tests."""

from __future__ import annotations

import pytest

import clft.benchmarks  # noqa: F401
from clft.errors import ConfigError
from clft.registry import benchmarks


def test_stream_is_deterministic_disjoint_and_sized_as_configured():
    bench = benchmarks.build({"name": "synthetic-text", "n_tasks": 3, "classes_per_task": 2,
                              "train_per_class": 5, "test_per_class": 3, "scenario": "task-il"})
    tasks = bench.tasks(0)
    assert [t.classes for t in tasks] == [(0, 1), (2, 3), (4, 5)]
    assert bench.label_names == ["sports", "food", "music", "weather", "money", "travel"]
    assert all(len(t.train) == 10 and len(t.test) == 6 for t in tasks)
    assert tasks[1].train["task"] == [1] * 10 and set(tasks[1].test["label"]) == {2, 3}
    assert bench.tasks(0)[2].train["text"] == tasks[2].train["text"]
    assert bench.tasks(1)[2].train["text"] != tasks[2].train["text"]
    assert "football" in " ".join(tasks[0].train["text"]) or "goal" in " ".join(tasks[0].train["text"])


@pytest.mark.parametrize("options", [{"n_tasks": 5, "classes_per_task": 2}, {"n_tasks": 0},
                                     {"train_per_class": 0}, {"scenario": "domain-il"}])
def test_invalid_options(options):
    with pytest.raises(ConfigError):
        benchmarks.build({"name": "synthetic-text", **options})
