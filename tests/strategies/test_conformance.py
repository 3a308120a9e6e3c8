"""Conformance: every registered strategy, with its default config, through the real runner.

Parametrised over ``clft.registry.strategies.names()`` (in the spirit of timm's
``tests/test_models.py``), so a new strategy is covered without new test code.
For each strategy and each scenario it supports (``task-il`` only when it
``requires_task_id``) a two-task stream runs for a few steps, and:

- the accuracy matrix is full and the run's cost is recorded;
- the state after the first task survives ``state_dict`` -> checkpoint files
  (``clft.state_io``) -> a fresh instance's ``load_state_dict`` exactly;
- ``extra_state_bytes()`` is a non-negative int, > 0 when the strategy keeps
  state after the first task (anything in ``state_dict`` besides an ``rng``);
- a run interrupted in the second task and resumed from the first task's
  checkpoint ends with the same matrix, model and strategy state, bit for bit.

A strategy that needs another backbone or stream declares it with class
attributes (defaults below): ``conformance_backbone`` (e.g. a tiny
``hf-classifier``) and ``conformance_benchmark`` (a matching two-task stream).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap

import pytest
import yaml
from strategy_helpers import assert_same, differs, through_checkpoint, without_rng

import clft.runner
import clft.strategies  # noqa: F401
import clft.sweep
from clft.errors import ConfigError
from clft.experiment import load_experiment
from clft.registry import benchmarks, strategies
from clft.types import SCENARIOS

DEFAULT_BACKBONE = {"name": "mlp", "hidden": [16]}
DEFAULT_BENCHMARK = {"name": "split-digits", "n_tasks": 2}
KILL_AT = "train:task1:step1"


def conformance_specs(cls: type) -> tuple[dict, dict]:
    return (dict(getattr(cls, "conformance_backbone", DEFAULT_BACKBONE)),
            dict(getattr(cls, "conformance_benchmark", DEFAULT_BENCHMARK)))


def scenarios_for(cls: type) -> list[str]:
    benchmark = benchmarks.get(conformance_specs(cls)[1]["name"])
    supported = [s for s in SCENARIOS if s in getattr(benchmark, "scenarios", SCENARIOS)]
    return ["task-il"] if cls.requires_task_id else supported


CASES = [(name, scenario) for name in strategies.names() for scenario in scenarios_for(strategies.get(name))]


class Interrupted(Exception):
    """Stands in for a SIGKILL at ``KILL_AT`` (in-process, so the test stays fast)."""


def experiment(tmp_path, name: str, scenario: str):
    backbone, benchmark = conformance_specs(strategies.get(name))
    raw = {"name": "conformance", "seeds": [0], "scenarios": [scenario], "benchmark": benchmark,
           "backbone": backbone, "strategies": [name],
           "train": {"epochs": 1, "batch_size": 16, "lr": 0.01, "max_steps_per_task": 3, "threads": 1}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(str(path))[0]


def recorded_run(monkeypatch, cfg, out, *, resume=False, kill=False):
    """Run ``cfg`` through ``clft.sweep``; returns (the Run, [state, bytes] after each task, result path)."""
    runs, after_task = [], []
    build = clft.sweep.build_run

    def record(run, task) -> None:
        states = [through_checkpoint(s.state_dict()) for s in run.strategies]
        after_task.append((states, [s.extra_state_bytes() for s in run.strategies]))

    def recording_build(*args, **kwargs):
        run = build(*args, **kwargs)
        run.on_task_end.append(record)
        runs.append(run)
        return run

    def kill_point(name: str) -> None:
        if kill and name == KILL_AT:
            raise Interrupted(name)

    monkeypatch.setattr(clft.sweep, "build_run", recording_build)
    monkeypatch.setattr(clft.runner, "kill_point", kill_point)
    paths = clft.sweep.run_experiment(cfg, out, resume=resume, progress=False, log=lambda message: None)
    return runs[-1], after_task, paths


@pytest.mark.parametrize("name, scenario", CASES)
def test_strategy_runs_round_trips_and_resumes_exactly(name, scenario, tmp_path, monkeypatch):
    cfg = experiment(tmp_path, name, scenario)
    run, after_task, [path] = recorded_run(monkeypatch, cfg, tmp_path / "straight")
    result = json.loads(path.read_text())
    assert len(result["acc"]) == 2 and all(len(row) == 2 for row in result["acc"])
    assert all(0.0 <= a <= 1.0 for row in result["acc"] for a in row)

    [(states, sizes), _] = after_task
    fresh = strategies.build({"name": name})
    empty = without_rng(through_checkpoint(fresh.state_dict()))
    for state, size in zip(states, sizes):
        assert isinstance(size, int) and size >= 0
        if differs(without_rng(state), empty):
            assert size > 0, f"{name} keeps state after the first task but reports extra_state_bytes() == 0"
        fresh.load_state_dict(state)
        assert_same(through_checkpoint(fresh.state_dict()), state)
        assert fresh.extra_state_bytes() == size

    with pytest.raises(Interrupted):
        recorded_run(monkeypatch, cfg, tmp_path / "killed", kill=True)
    resumed, _, [resumed_path] = recorded_run(monkeypatch, cfg, tmp_path / "killed", resume=True)
    assert json.loads(resumed_path.read_text())["acc"] == result["acc"]
    assert_same(resumed.backbone.model.state_dict(), run.backbone.model.state_dict(), "model")
    for a, b in zip(resumed.strategies, run.strategies):
        assert_same(through_checkpoint(a.state_dict()), through_checkpoint(b.state_dict()), name)


def documented_fields(config: type) -> set[str]:
    """Fields followed by a string literal (their docstring) in the source of ``config`` or a base class."""
    found = set()
    for klass in config.__mro__[:-1]:
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for statement, following in zip(body, body[1:]):
            if isinstance(statement, ast.AnnAssign) and isinstance(following, ast.Expr) and \
                    isinstance(following.value, ast.Constant) and isinstance(following.value.value, str):
                found.add(statement.target.id)
    return found


@pytest.mark.parametrize("name", strategies.names())
def test_config_is_a_documented_dataclass_that_rejects_unknown_options(name):
    cls = strategies.get(name)
    assert cls.__doc__ and dataclasses.is_dataclass(cls.Config)
    undocumented = {f.name for f in dataclasses.fields(cls.Config)} - documented_fields(cls.Config)
    assert not undocumented, f"{name}: Config fields without a docstring: {sorted(undocumented)}"
    assert strategies.build({"name": name}).extra_state_bytes() == 0
    with pytest.raises(ConfigError, match="no_such_option"):
        strategies.build({"name": name, "no_such_option": 1})
