"""Validation hold-outs and clft tune (a grid over one key, the best by validation ACC)."""

import json
from pathlib import Path

import datasets
import numpy as np
import pytest

from clft.data import make_task
from clft.data.holdout import holdout_indices, validation_task
from clft.engine import runner
from clft.errors import ConfigError, DataError
from clft.results.summary import Stat
from clft.sweep import tune as tune_module
from clft.sweep.tune import TuneResult, render, split_values, tune

#: The tiny experiment every tune test grids over: entry 1 is EWC, whose ``lam`` the tests tune.
EWC_GRID = {"strategies": None, "compare": ["finetune", {"name": "ewc", "lam": 1.0}],
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.01, "max_steps_per_task": 3}}


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
    exp = write_experiment(**EWC_GRID)
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


def test_tune_jobs_runs_value_seed_pairs_side_by_side_with_the_sequential_scores(write_experiment, tmp_path,
                                                                                monkeypatch):
    exp = write_experiment(**EWC_GRID, seeds=[0, 1])
    values = ["0.0", "1000.0"]
    sequential = tune(exp, "compare.1.lam", values, tmp_path / "one", log=lambda m: None)
    pools = []

    class RecordingPool(tune_module.WorkerPool):  # the real pool, which also notes its slots and calls
        def __init__(self, gpus):
            super().__init__(gpus)
            pools.append({"slots": len(gpus), "pairs": []})

        def submit(self, function, *args):
            pools[-1]["pairs"].append((args[0].value, args[0].cfg.seeds))
            return super().submit(function, *args)

    monkeypatch.setattr(tune_module, "WorkerPool", RecordingPool)
    lines = []
    parallel = tune(exp, "compare.1.lam", values, tmp_path / "two", jobs=2, log=lines.append)
    assert pools == [{"slots": 2, "pairs": [(v, [s]) for v in values for s in (0, 1)]}]
    finished = sorted(line.split("=", 1)[1] for line in lines if line.startswith("[tune] finished "))
    assert finished == [f"{v} seed {s}" for v in values for s in (0, 1)]  # one line per pair as it finishes
    assert parallel.scores == sequential.scores and parallel.best() == sequential.best()
    assert all(parallel.scores["class-il"][v].n == 2 for v in values)
    for value in values:
        for seed in (0, 1):
            run = Path(f"compare.1.lam={value}") / "class-il" / "ewc" / f"seed{seed}.json"
            one, two = (json.loads((tmp_path / side / run).read_text()) for side in ("one", "two"))
            assert two["acc"] == one["acc"] and two["config_hash"] == one["config_hash"]
    assert json.loads((tmp_path / "two" / "tune.json").read_text())["best"] == {"class-il": float(sequential.best()
                                                                                                ["class-il"])}
    made = {p: p.stat().st_mtime_ns for p in (tmp_path / "one").rglob("seed*.json")}
    again = tune(exp, "compare.1.lam", values, tmp_path / "one", jobs=2, log=lambda m: None)
    assert again.scores == sequential.scores and len(pools) == 2
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "one").rglob("seed*.json")} == made  # split: same runs, done


def test_tune_checks_jobs_and_every_value_before_anything_trains(write_experiment, tmp_path):
    exp = write_experiment(**EWC_GRID)
    with pytest.raises(ConfigError, match=r"--jobs must lie in \[1, 256\], got 0"):
        tune(exp, "compare.1.lam", ["1.0"], tmp_path / "zero", jobs=0, log=lambda m: None)
    with pytest.raises(ConfigError, match="lam"):
        tune(exp, "compare.1.lam", ["1.0", "not-a-number"], tmp_path / "bad", jobs=2, log=lambda m: None)
    assert not (tmp_path / "bad").exists()  # the first value did not train before the second was refused


def test_tune_resume_continues_a_killed_grid_run_from_its_checkpoint(write_experiment, tmp_path, monkeypatch):
    exp = write_experiment(**EWC_GRID)
    reference = tune(exp, "compare.1.lam", ["10.0"], tmp_path / "whole", log=lambda m: None)
    out = tmp_path / "killed"

    def killed_in_task_2(name: str) -> None:  # the run stops at task 2's first step: tasks 0-1 are checkpointed
        if name == "train:task2:step0":
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "kill_point", killed_in_task_2)
    with pytest.raises(KeyboardInterrupt):
        tune(exp, "compare.1.lam", ["10.0"], out, log=lambda m: None)
    monkeypatch.undo()
    lines = []
    resumed = tune(exp, "compare.1.lam", ["10.0"], out, resume=True, log=lines.append)
    assert resumed.scores == reference.scores
    assert any(line.endswith("training 3 task(s)") for line in lines), lines  # 5 tasks, 2 restored
