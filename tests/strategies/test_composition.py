"""Strategies listed together in one run: hooks compose, costs add up, a killed run resumes exactly."""

from __future__ import annotations

import json

import pytest
import yaml

from clft.config.experiment import load_experiment
from clft.sweep.run import run_experiment

REPLAY = {"name": "replay", "memory_size": 30}
ONLINE_EWC = {"name": "ewc", "lam": 50.0, "mode": "online", "gamma": 0.9, "fisher_samples": 40}


def experiment(tmp_path, strategies: list, name: str = "exp.yaml", n_tasks: int = 5) -> str:
    raw = {"name": "composition", "seeds": [0], "scenarios": ["class-il"], "strategies": strategies,
           "benchmark": {"name": "split-digits", "n_tasks": n_tasks}, "backbone": {"name": "mlp", "hidden": [16]},
           "train": {"epochs": 1, "batch_size": 16, "lr": 0.01, "max_steps_per_task": 4, "threads": 1}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def result(tmp_path, strategies: list) -> dict:
    label = "+".join(s["name"] for s in strategies)
    cfg, _ = load_experiment(experiment(tmp_path, strategies, f"{label}.yaml"))
    [path] = run_experiment(cfg, tmp_path / label, progress=False, log=lambda message: None)
    return json.loads(path.read_text())


def test_replay_and_online_ewc_compose_in_one_run(tmp_path):
    both, replay, ewc = (result(tmp_path, group) for group in ([REPLAY, ONLINE_EWC], [REPLAY], [ONLINE_EWC]))
    assert both["strategy"] == "replay+ewc" and len(both["acc"]) == 5
    assert both["acc"] != replay["acc"] and both["acc"] != ewc["acc"]
    # online EWC keeps ONE Fisher and ONE anchor (float32) however many tasks went by
    assert ewc["cost"]["extra_state_bytes"] == 2 * 4 * ewc["cost"]["trainable_params"]
    assert both["cost"]["extra_state_bytes"] == replay["cost"]["extra_state_bytes"] + ewc["cost"]["extra_state_bytes"]


@pytest.mark.slow
def test_sigkilled_composition_of_every_new_strategy_resumes_to_the_same_matrix(cli, tmp_path):
    group = ["si", "mas", "lwf", {"name": "agem", "memory_size": 40}, {"name": "derpp", "memory_size": 40}]
    path = experiment(tmp_path, group, n_tasks=2)
    straight = cli("run", path, "--out", str(tmp_path / "a"), "--quiet", "--no-plots")
    assert straight.returncode == 0, straight.stderr
    killed = cli("run", path, "--out", str(tmp_path / "b"), "--quiet", "--no-plots",
                 env={"CLFT_KILL_AT": "train:task1:step1"})
    assert killed.returncode == -9, killed.stderr  # SIGKILL
    resumed = cli("run", path, "--out", str(tmp_path / "b"), "--quiet", "--no-plots", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    label = "si+mas+lwf+agem+derpp"
    a, b = (json.loads((tmp_path / d / "class-il" / label / "seed0.json").read_text()) for d in "ab")
    assert a["acc"] == b["acc"] and a["cost"]["extra_state_bytes"] == b["cost"]["extra_state_bytes"] > 0


def test_regularisers_and_memories_run_on_a_text_backbone(tmp_path):
    """Padded ``input_ids`` batches: DER's buffer widens to the longest row and replays them."""
    from clft.engine.runner import execute
    from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
    from clft.sweep.build import build_run
    from clft.sweep.plan import plan_runs

    group = ["si", {"name": "mas", "samples": 8}, "lwf", {"name": "agem", "memory_size": 8},
             {"name": "derpp", "memory_size": 8}]
    raw = {"name": "text", "seeds": [0], "scenarios": ["class-il"], "strategies": group,
           "benchmark": TINY_TEXT_BENCHMARK, "backbone": TINY_TEXT_BACKBONE,
           "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "max_steps_per_task": 3, "threads": 1}}
    path = tmp_path / "text.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg, _ = load_experiment(str(path))
    run = build_run(cfg, plan_runs(cfg)[0], None, False)
    state = execute(run)
    assert len(state.acc) == 2 and all(len(row) == 2 for row in state.acc)
    derpp = run.strategies[-1]
    assert {"input_ids", "attention_mask", "label", "task", "__logits__"} <= set(derpp.memory.buffer)
    assert derpp.memory.size == 8 and set(derpp.memory.buffer["task"].tolist()) == {0, 1}
    assert all(s.extra_state_bytes() > 0 for s in run.strategies)
