"""The runner end to end on the tiny digits stream: matrix shape, determinism, results."""

import json

import pytest
import torch

from clft.config.experiment import load_experiment
from clft.errors import DivergenceError
from clft.registry import strategies
from clft.results.files import load_results
from clft.sweep.run import run_experiment
from clft.types import Strategy


def run_tiny(write_experiment, out, **changes):
    cfg, _ = load_experiment(str(write_experiment(**changes)))
    return run_experiment(cfg, out, progress=False, log=lambda m: None)


def test_matrix_is_full_and_result_records_config_env_and_costs(write_experiment, tmp_path):
    [path] = run_tiny(write_experiment, tmp_path / "out")
    data = json.loads(path.read_text())
    assert path == tmp_path / "out" / "class-il" / "finetune" / "seed0.json"
    assert len(data["acc"]) == 5 and all(len(row) == 5 for row in data["acc"])
    assert len(data["baseline_acc"]) == 5
    assert data["config"]["backbone"] == {"name": "mlp", "hidden": [32], "dropout": 0.0, "activation": "relu"}
    assert data["config"]["train"]["epochs"] == 1 and data["config"]["seeds"] == [0]
    assert {"torch", "transformers", "peft", "git_sha", "device"} <= set(data["env"])
    assert data["env"]["device"] == "cpu"
    assert len(data["cost"]["train_seconds"]) == 5 and data["cost"]["trainable_params"] > 0
    # class-IL: after task i, tasks not seen yet cannot be predicted (their classes are masked out)
    assert all(data["acc"][i][j] == 0.0 for i in range(5) for j in range(i + 1, 5))
    assert data["acc"][0][0] > 0.9  # two digits are easy to tell apart


def test_same_seed_gives_the_same_matrix(write_experiment, tmp_path):
    changes = {"strategies": [{"name": "replay", "memory_size": 50}, {"name": "ewc", "lam": 10.0}]}
    [a] = run_tiny(write_experiment, tmp_path / "a", **changes)
    [b] = run_tiny(write_experiment, tmp_path / "b", **changes)
    assert json.loads(a.read_text())["acc"] == json.loads(b.read_text())["acc"]


def test_different_seeds_differ(write_experiment, tmp_path):
    paths = run_tiny(write_experiment, tmp_path / "s", seeds=[0, 1])
    first, second = (json.loads(p.read_text())["acc"] for p in paths)
    assert first != second


def test_finished_runs_are_skipped_and_never_overwritten(write_experiment, tmp_path):
    out = tmp_path / "out"
    [path] = run_tiny(write_experiment, out)
    stamp = path.stat().st_mtime_ns
    run_tiny(write_experiment, out)
    assert path.stat().st_mtime_ns == stamp  # same config: skipped
    from clft.errors import ConfigError

    with pytest.raises(ConfigError, match="another config"):
        run_tiny(write_experiment, out, train={"epochs": 2, "lr": 0.01})
    assert path.stat().st_mtime_ns == stamp


def test_scenarios_and_compare_expand_into_runs(write_experiment, tmp_path):
    run_tiny(write_experiment, tmp_path / "o", strategies=None, compare=["finetune", "joint"],
             scenarios=["class-il", "task-il"])
    runs = load_results(tmp_path / "o")
    assert sorted((r["scenario"], r["strategy"]) for r in runs) == [
        ("class-il", "finetune"), ("class-il", "joint"), ("task-il", "finetune"), ("task-il", "joint")]


class NanAtSecondTask(Strategy):
    """Test-only: a NaN extra loss at task 1, step 2."""

    Config = type("Config", (), {"__dataclass_fields__": {}})

    def __init__(self, config=None):
        super().__init__(config)
        self.step = 0

    def extra_loss(self, backbone, batch, outputs, task):
        self.step += 1
        if task.id == 1 and self.step % 9 == 3:
            return torch.tensor(float("nan"))
        return None


@pytest.fixture
def nan_strategy():
    from dataclasses import make_dataclass

    NanAtSecondTask.Config = make_dataclass("NanConfig", [])
    with strategies.registered(NanAtSecondTask, "nan-at-second-task") as name:
        yield name


def test_nan_loss_stops_with_task_and_step_and_keeps_the_checkpoint(write_experiment, tmp_path, nan_strategy):
    with pytest.raises(DivergenceError, match=r"task 1 \('1'|task 1 .* step \d+") as info:
        run_tiny(write_experiment, tmp_path / "o", strategies=[nan_strategy])
    assert "step" in str(info.value) and "on_nan=skip" in str(info.value)
    latest = tmp_path / "o" / ".checkpoints" / "class-il" / nan_strategy / "seed0" / "LATEST"
    assert latest.read_text().strip() == "task000"  # the finished first task is kept


def test_nan_loss_can_skip_the_batch(write_experiment, tmp_path, nan_strategy):
    [path] = run_tiny(write_experiment, tmp_path / "o", strategies=[nan_strategy],
                      train={"epochs": 1, "lr": 0.01, "on_nan": "skip"})
    data = json.loads(path.read_text())
    assert data["skipped_batches"] >= 1 and len(data["acc"]) == 5
