"""Validation hold-outs and clft tune (a grid over one key, the best by validation ACC)."""

import json

import datasets
import numpy as np
import pytest

from clft.data import make_task
from clft.data.holdout import holdout_indices, validation_task
from clft.errors import DataError
from clft.results.summary import Stat
from clft.sweep.tune import TuneResult, render, split_values, tune


def test_holdout_is_stratified_disjoint_and_seeded():
    labels = np.repeat([0, 1, 2], [40, 20, 40])
    kept, held = holdout_indices(labels, 0.1, seed=0)
    assert sorted(kept + held) == list(range(100)) and not set(kept) & set(held)
    assert np.bincount(labels[held]).tolist() == [4, 2, 4]  # 10% of every class
    assert holdout_indices(labels, 0.1, seed=0) == (kept, held)
    assert holdout_indices(labels, 0.1, seed=1)[1] != held
    with pytest.raises(DataError, match="cannot hold out 10% of 3 training examples"):
        holdout_indices(np.array([0, 1, 1]), 0.1, seed=0)


def test_validation_task_prefers_the_benchmarks_val_split():
    def data(n, label):
        return datasets.Dataset.from_dict({"x": list(range(n)), "label": [label] * n})

    with_val = make_task(0, "a", [0], data(20, 0), data(5, 0), val=data(3, 0))
    assert (len(validation_task(with_val, 0.5, 0).test), len(validation_task(with_val, 0.5, 0).train)) == (3, 20)
    carved = validation_task(make_task(0, "a", [0], data(20, 0), data(5, 0)), 0.25, 0)
    assert (len(carved.train), len(carved.test)) == (15, 5)
    assert not set(carved.train["x"]) & set(carved.test["x"])


def test_render_shows_a_spread_only_over_several_seeds():
    result = TuneResult("compare.1.lam", ["1", "10"], {"class-il": {"1": Stat.of([0.5]), "10": Stat.of([0.6, 0.8])}})
    table = render(result)
    assert "| 1 | 0.500 (1 seed) |" in table  # not "0.500 ± 0.000": one seed has no measured spread
    assert "| 10 | 0.700 ± 0.141 |" in table
    assert "class-il: compare.1.lam=10" in table


def test_split_values():
    assert split_values("10, 100,1000") == ["10", "100", "1000"]


def test_tune_runs_only_the_tuned_entry_on_validation_data(write_experiment, tmp_path):
    exp = write_experiment(strategies=None, compare=["finetune", {"name": "ewc", "lam": 1.0}],
                           train={"epochs": 1, "batch_size": 32, "lr": 0.01, "max_steps_per_task": 3})
    result = tune(exp, "compare.1.lam", ["0.0", "1000.0"], tmp_path / "tune", log=lambda m: None)
    runs = {value: json.loads((tmp_path / "tune" / f"compare.1.lam={value}" / "class-il" / "ewc" / "seed0.json")
                              .read_text()) for value in ("0.0", "1000.0")}
    assert [p.name for p in (tmp_path / "tune" / "compare.1.lam=0.0" / "class-il").iterdir()] == ["ewc"]
    for value, run in runs.items():
        assert run["config"]["eval_split"] == "val" and run["config"]["strategies"][0]["lam"] == float(value)
        assert result.scores["class-il"][value].mean == pytest.approx(np.mean(run["acc"][-1]))
        # split-digits has no val split: 10% of each task's training examples are held out and not trained on
        assert all(t["n_test"] < t["n_train"] / 5 for t in run["tasks"])
    best = max(("0.0", "1000.0"), key=lambda v: np.mean(runs[v]["acc"][-1]))
    written = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert written["best"] == {"class-il": float(best)} and result.best() == {"class-il": best}
    assert f"best by validation ACC: class-il: compare.1.lam={best}" in (tmp_path / "tune" / "tune.md").read_text()
