"""Check every run of an experiment before the first one trains.

``preflight`` resolves each plugin block of each planned run against its
``Config`` (no data read, no model loaded) and checks the declared pairings:

- backbone x benchmark: a plugin may declare ``input_kind`` (``"vector"``,
  ``"text"``); a backbone that takes one kind and a benchmark that gives another
  are refused (e.g. ``mlp`` on a text stream);
- strategy x backbone: a strategy may declare the ``input_kind`` of the backbone it
  needs (PEFT adapters and prompts need a text transformer, not ``mlp``);
- strategy x scenario: a strategy with ``requires_task_id`` needs ``task-il``;
  a benchmark lists the scenarios it supports in ``scenarios``;
- strategy x strategy: at most one strategy of a run overrides ``predict``, and
  at most one ``train_data`` (DESIGN.md).

The first problem is raised as one ConfigError line, so a typo in the third
compare entry stops the experiment before the first entry trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clft.config.experiment import ExperimentConfig, resolve_spec
from clft.config.validation import safe_join
from clft.errors import ConfigError
from clft.registry import backbones, benchmarks, strategies
from clft.types import Strategy


def preflight(cfg: ExperimentConfig, plans: list, base_dir: Path | None) -> list[str] | None:
    """Raise ConfigError for the first run of ``plans`` whose configs or plugin pairing is invalid.

    Returns the runs' names (``<scenario>/<strategies>/seed<k>``), or None when a benchmark
    decides its scenario only once built.
    """
    bench_spec = resolve_spec(cfg.benchmark, base_dir)
    backbone_cls, _ = backbones.resolve(resolve_spec(cfg.backbone, base_dir))
    checked: dict[tuple, str | None] = {}
    keys: list[str] | None = []
    for plan in plans:
        if (plan.label, plan.scenario) not in checked:
            checked[plan.label, plan.scenario] = check_run(plan, bench_spec, backbone_cls)
        scenario = checked[plan.label, plan.scenario]
        if scenario is None or keys is None:
            keys = None
            continue
        safe_join(Path("."), scenario, plan.label, f"seed{plan.seed}.json")
        keys.append(f"{scenario}/{plan.label}/seed{plan.seed}")
    return keys


def check_run(plan: Any, bench_spec: dict, backbone_cls: type) -> str | None:
    """One run's benchmark and strategy configs and pairings; returns its scenario (None: not known yet)."""
    spec = dict(bench_spec) if plan.scenario is None else {**bench_spec, "scenario": plan.scenario}
    bench_cls, bench_config = benchmarks.resolve(spec)
    scenario = scenario_of(bench_cls, bench_config)
    check_input_kinds(backbone_cls, bench_cls)
    chosen = [strategies.resolve(s)[0] for s in plan.group]
    for cls in chosen:
        if cls.input_kind is not None and backbone_cls.input_kind not in (None, cls.input_kind):
            raise ConfigError(f"run {plan.label}: strategy {cls.name!r} needs a backbone for {cls.input_kind} "
                              f"inputs; {backbone_cls.name!r} takes {backbone_cls.input_kind} inputs")
    check_strategies(chosen, scenario, f"run {plan.label}")
    return scenario


def scenario_of(bench_cls: type, config: Any) -> str | None:
    """The scenario a benchmark config asks for: its ``scenario`` field, else the class's only one."""
    scenario = getattr(config, "scenario", None)
    if scenario is None and len(bench_cls.scenarios) == 1:
        scenario = bench_cls.scenarios[0]
    if scenario is not None and scenario not in bench_cls.scenarios:
        raise ConfigError(f"benchmark {bench_cls.name!r} does not support scenario {scenario!r}; "
                          f"valid: {', '.join(bench_cls.scenarios)}")
    return scenario


def check_input_kinds(backbone_cls: type, bench_cls: type) -> None:
    takes, gives = getattr(backbone_cls, "input_kind", None), getattr(bench_cls, "input_kind", None)
    if takes is not None and gives is not None and takes != gives:
        fitting = sorted(n for n in backbones.names() if getattr(backbones.get(n), "input_kind", None) == gives)
        raise ConfigError(f"backbone {backbone_cls.name!r} takes {takes} inputs but benchmark {bench_cls.name!r} "
                          f"gives {gives} examples; backbones for {gives}: {', '.join(fitting) or '(none)'}")


def check_strategies(chosen: list[type], scenario: str | None, where: str) -> None:
    """requires_task_id against the scenario; at most one override of predict and of train_data."""
    for cls in chosen:
        if cls.requires_task_id and scenario is not None and scenario != "task-il":
            raise ConfigError(f"{where}: strategy {cls.name!r} needs task ids at test time; use scenario task-il "
                              f"(this run: {scenario})")
    for hook in ("predict", "train_data"):
        overriding = [cls.name for cls in chosen if getattr(cls, hook) is not getattr(Strategy, hook)]
        if len(overriding) > 1:
            raise ConfigError(f"{where}: strategies {', '.join(overriding)} all override {hook}; "
                              "combine at most one of them")
