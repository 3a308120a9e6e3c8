"""Training options that change the optimizer step: accumulation, clipping, SGD momentum; and --overwrite."""

from __future__ import annotations

import json

import pytest
import torch

import clft.plugins  # noqa: F401  (registers the built-ins)
from clft.cli import main
from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.engine.runner import train_task
from clft.sweep.build import build_run
from clft.sweep.plan import plan_runs

BASE = {"name": "options", "seeds": [0], "benchmark": {"name": "split-digits", "scenario": "class-il"},
        "backbone": {"name": "mlp", "hidden": [16]}, "strategies": ["finetune"]}


def one_task(**train) -> tuple[dict, dict]:
    """(weights before, weights after) training task 0 with these train options (SGD, lr 0.5 by default)."""
    options = {"epochs": 1, "optimizer": "sgd", "lr": 0.5, "bucket_by_length": False, **train}
    cfg = make_dataclass_instance(ExperimentConfig, {**BASE, "train": options}, "experiment")
    run = build_run(cfg, plan_runs(cfg)[0], None, progress=False)
    before = {k: v.clone() for k, v in run.backbone.model.state_dict().items()}
    train_task(run, run.tasks[0])
    return before, {k: v.clone() for k, v in run.backbone.model.state_dict().items()}


def close(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def change_norm(before: dict, after: dict) -> float:
    return float(torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before)))


def test_gradient_accumulation_equals_the_large_batch():
    _, large = one_task(batch_size=16, grad_accumulation_steps=1, max_steps_per_task=1)
    _, accumulated = one_task(batch_size=8, grad_accumulation_steps=2, max_steps_per_task=1)
    before, small = one_task(batch_size=8, grad_accumulation_steps=1, max_steps_per_task=1)
    assert close(large, accumulated)  # mean of two half-batch means = the 16-example mean
    assert not close(large, small, atol=1e-4) and not close(before, large, atol=1e-4)


def test_a_trailing_partial_accumulation_still_steps():
    """Micro-batches left over at the end of a task (fewer than the accumulation) still make a step."""
    before, after = one_task(batch_size=1000, grad_accumulation_steps=4)  # one micro-batch per epoch
    assert not close(before, after, atol=1e-4)


def test_gradient_clipping_bounds_the_step():
    before, clipped = one_task(batch_size=16, max_steps_per_task=1, lr=1.0, grad_clip=1e-3)
    _, free = one_task(batch_size=16, max_steps_per_task=1, lr=1.0)
    # SGD without momentum: Δθ = −lr · g · min(1, clip / ‖g‖), so ‖Δθ‖ = lr · clip when ‖g‖ > clip
    assert change_norm(before, clipped) == pytest.approx(1e-3, rel=1e-3)
    assert change_norm(before, free) > 10 * 1e-3


def test_sgd_momentum_changes_the_second_step_not_the_first():
    _, plain_one = one_task(batch_size=16, max_steps_per_task=1, momentum=0.0)
    _, heavy_one = one_task(batch_size=16, max_steps_per_task=1, momentum=0.9)
    assert close(plain_one, heavy_one)  # v₁ = g₁ whatever the momentum
    before, plain_two = one_task(batch_size=16, max_steps_per_task=2, momentum=0.0)
    _, heavy_two = one_task(batch_size=16, max_steps_per_task=2, momentum=0.9)
    # θ₁ and so g₂ are the same for both; the second step adds −lr·m·v₁ = m·(θ₁ − θ₀)
    extra = {k: heavy_two[k] - plain_two[k] for k in before}
    assert close(extra, {k: 0.9 * (heavy_one[k] - before[k]) for k in before}, atol=1e-5)
    assert change_norm(plain_two, heavy_two) > 1e-3


def test_adam_ignores_momentum():
    _, a = one_task(batch_size=16, max_steps_per_task=2, optimizer="adam", lr=1e-2, momentum=0.0)
    _, b = one_task(batch_size=16, max_steps_per_task=2, optimizer="adam", lr=1e-2, momentum=0.9)
    assert close(a, b, atol=0)


def test_overwrite_reruns_a_finished_run_with_the_new_config(write_experiment, tmp_path, capsys):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    args = ["--quiet", "--no-plots"]
    assert main(["run", str(write_experiment()), "--out", str(out), *args]) == 0
    path = out / "class-il" / "finetune" / "seed0.json"
    old = json.loads(path.read_text())
    changed = write_experiment("changed.yaml", train={"epochs": 1, "batch_size": 32, "lr": 0.05})
    assert main(["run", str(changed), "--out", str(out), *args]) == 2
    assert "holds a run with another config (1 such run(s)); use another --out or pass --overwrite" in \
        capsys.readouterr().err
    assert json.loads(path.read_text()) == old  # refused: the old result stays
    assert main(["run", str(changed), "--out", str(out), "--overwrite", *args]) == 0
    assert main(["run", str(changed), "--out", str(fresh), *args]) == 0
    new = json.loads(path.read_text())
    assert new["config"]["train"]["lr"] == 0.05 and new["config_hash"] != old["config_hash"]
    assert new["acc"] == json.loads((fresh / "class-il" / "finetune" / "seed0.json").read_text())["acc"]
    assert new["acc"] != old["acc"]
