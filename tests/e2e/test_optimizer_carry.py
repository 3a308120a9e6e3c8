"""``train.reset_optimizer: false`` keeps one optimizer (and its state) across tasks, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from clft.testing._checks import DEFAULT_BACKBONE, DEFAULT_BENCHMARK, Interrupted, conformance_experiment, recorded_run


def carried(tmp_path, reset: bool):
    cfg = conformance_experiment(tmp_path, "finetune", "class-il", DEFAULT_BACKBONE, DEFAULT_BENCHMARK)
    cfg.train.optimizer, cfg.train.reset_optimizer = "adam", reset
    return cfg


def test_the_optimizer_and_its_moments_carry_over_between_tasks(tmp_path, monkeypatch):
    run, _, [path] = recorded_run(carried(tmp_path, False), tmp_path / "carry")
    steps = {int(s["step"]) for s in run.optimizer.state_dict()["state"].values()}
    assert steps == {6}  # 3 steps in each of the 2 tasks, one Adam step counter
    fresh, _, [fresh_path] = recorded_run(carried(tmp_path, True), tmp_path / "reset")
    assert {int(s["step"]) for s in fresh.optimizer.state_dict()["state"].values()} == {3}
    assert json.loads(path.read_text())["acc"][1] != json.loads(fresh_path.read_text())["acc"][1]


def test_a_carried_optimizer_resumes_exactly(tmp_path, monkeypatch):
    cfg = carried(tmp_path, False)
    _, _, [path] = recorded_run(cfg, tmp_path / "straight")
    with pytest.raises(Interrupted):
        recorded_run(cfg, tmp_path / "killed", kill=True)
    resumed, _, [resumed_path] = recorded_run(cfg, tmp_path / "killed", resume=True)
    assert json.loads(resumed_path.read_text())["acc"] == json.loads(path.read_text())["acc"]
    state = resumed.optimizer.state_dict()["state"]
    assert {int(s["step"]) for s in state.values()} == {6}
    assert all(torch.isfinite(s["exp_avg"]).all() for s in state.values())
