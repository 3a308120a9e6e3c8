"""A run's set-up short of training: the stream, the validated plugin configs, then the built run.

``setup_run`` is cheap (the stream from its cache, every config checked, no model), so a sweep can
decide whether a run is done before loading a model; ``build_run`` then builds the backbone and the
strategies on that stream, seeded, ready for ``clft.engine.runner.execute``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from clft.config.experiment import ExperimentConfig, resolve_spec
from clft.config.loading import to_plain
from clft.data.holdout import validation_stream
from clft.data.stream_cache import cached_tasks
from clft.data.tasks import check_disjoint_classes
from clft.engine.devices import Devices, keep_freed_heap, use_deterministic_algorithms
from clft.engine.run_state import RunState
from clft.engine.runner import Run, check_composition, check_initial_states, seed_everything
from clft.errors import ConfigError
from clft.registry import backbones, benchmarks, strategies
from clft.types import Benchmark, LabelSpace, Task

if TYPE_CHECKING:
    from clft.sweep.plan import RunPlan


@dataclass
class PluginChoice:
    """A plugin class and its validated config, not yet built."""

    cls: type
    config: Any

    @property
    def name(self) -> str:
        return self.cls.name


@dataclass
class RunSetup:
    """What a run is, short of its model: the stream and every resolved plugin config."""

    benchmark: Benchmark
    tasks: list[Task]
    backbone: PluginChoice
    strategies: list[PluginChoice]

    @property
    def scenario(self) -> str:
        return self.benchmark.scenario


def _benchmark_spec(cfg: ExperimentConfig, plan: RunPlan, base_dir: Path | None) -> dict:
    spec = resolve_spec(cfg.benchmark, base_dir)
    if plan.scenario is not None:
        spec["scenario"] = plan.scenario
    return spec


def resolve_run(cfg: ExperimentConfig, plan: RunPlan, base_dir: Path | None, built: dict | None = None) -> RunSetup:
    """The run's benchmark (built, or taken from ``built`` keyed by its spec) and validated plugin
    configs, without the stream (``tasks`` is empty)."""
    spec = _benchmark_spec(cfg, plan, base_dir)
    key, cache = json.dumps(spec, sort_keys=True, default=str), built if built is not None else {}
    if key not in cache:
        cache[key] = benchmarks.build(spec)
    benchmark = cache[key]
    backbone = PluginChoice(*backbones.resolve(resolve_spec(cfg.backbone, base_dir)))
    chosen = [PluginChoice(*strategies.resolve(spec)) for spec in plan.group]
    check_composition([choice.cls for choice in chosen])
    for strategy in chosen:
        if strategy.cls.requires_task_id and benchmark.scenario != "task-il":
            raise ConfigError(f"strategy {strategy.name!r} needs task ids at test time; use scenario task-il")
    return RunSetup(benchmark, [], backbone, chosen)


def setup_run(cfg: ExperimentConfig, plan: RunPlan, base_dir: Path | None) -> RunSetup:
    """Build the stream (seeded) and validate the backbone and strategy blocks; cheap, no model."""
    train = plan.train_of(cfg)
    use_deterministic_algorithms(train.deterministic, warn_only=True)
    keep_freed_heap()
    if train.threads is not None:
        torch.set_num_threads(train.threads)
    seed_everything(plan.seed)
    setup = resolve_run(cfg, plan, base_dir)
    setup.tasks = cached_tasks(setup.benchmark, plan.seed)  # built once per (config, seed, code, data files)
    check_disjoint_classes(setup.tasks, setup.scenario)
    if cfg.eval_split == "val":
        setup.tasks = validation_stream(setup.tasks, cfg.val_fraction, plan.seed)
    return setup


def build_run(cfg: ExperimentConfig, plan: RunPlan, base_dir: Path | None, progress: bool,
              setup: RunSetup | None = None) -> Run:
    """Build backbone and strategies for one run (seeded for reproducibility) on ``setup``'s stream."""
    setup = setup or setup_run(cfg, plan, base_dir)
    seed_everything(plan.seed)
    backbone = setup.backbone.cls(setup.backbone.config, setup.benchmark, setup.tasks)
    backbone.label_space = LabelSpace(setup.scenario, len(setup.benchmark.label_names),
                                      {t.id: t.classes for t in setup.tasks})
    train = plan.train_of(cfg)
    devices = Devices(train.device, train.mixed_precision)
    backbone.to(devices.device)
    built = [choice.cls(choice.config) for choice in setup.strategies]
    run = Run(f"{plan.label}/seed{plan.seed}", plan.seed, setup.scenario, setup.tasks, backbone, built,
              train, devices, RunState(), progress, setup.benchmark)
    general = getattr(setup.benchmark, "general_tasks", None)
    run.general_tasks = list(general(plan.seed)) if general is not None else []
    check_initial_states(built)  # a state_dict that cannot be checkpointed fails now, not after task 1
    return run


def resolved_config(cfg: ExperimentConfig, plan: RunPlan, run: Run | RunSetup) -> dict:
    """The experiment as run: every plugin block with its defaults filled in (``train.log_with`` left out)."""
    data = to_plain(cfg)
    data.pop("compare", None)
    data.pop("resources", None)  # where a run executes does not change its result
    data.update(
        seeds=[plan.seed], scenarios=[run.scenario],
        benchmark={"name": run.benchmark.name, **to_plain(run.benchmark.config)},
        backbone={"name": run.backbone.name, **to_plain(run.backbone.config)},
        strategies=[{"name": s.name, **to_plain(s.config)} for s in run.strategies],
        train=to_plain(plan.train_of(cfg)),
    )
    data["train"].pop("log_with", None)  # where to log is not what was run: same hash with or without trackers
    return data
