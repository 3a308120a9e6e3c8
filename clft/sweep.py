"""Expand an experiment into runs and execute them with checkpoints and results.

A run is (strategy group, scenario, seed). Its files, under the output folder::

    <out>/<scenario>/<strategies>/seed<k>.json        the result (written last, atomically)
    <out>/.checkpoints/<scenario>/<strategies>/seed<k>/  per-task checkpoints (removed when done)
    <out>/<scenario>/<strategies>/seed<k>.lock         held while a process runs it

A finished run whose result has the same resolved config is skipped; a result
with another config is never overwritten unless ``overwrite`` is set. Two sweeps
may share one folder: a run locked by the other is waited for, not lost
(``run_experiment``; docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from clft.checkpoint import load_checkpoint, save_checkpoint
from clft.config import to_plain
from clft.data import check_disjoint_classes
from clft.devices import Devices
from clft.errors import ConfigError
from clft.experiment import ExperimentConfig, group_label, resolve_spec
from clft.faults import kill_point
from clft.locks import RunLock, RunLockedError
from clft.registry import backbones, benchmarks, strategies
from clft.results import SCHEMA_VERSION, atomic_write_json, git_sha, package_versions
from clft.run_state import RunState
from clft.runner import Run, execute, optimizer_checkpoint, optimizer_from_checkpoint, seed_everything
from clft.types import Benchmark, LabelSpace, Task


@dataclass
class RunPlan:
    group: list[dict]
    scenario: str | None
    seed: int

    @property
    def label(self) -> str:
        return group_label(self.group)


def plan_runs(cfg: ExperimentConfig) -> list[RunPlan]:
    """Every (strategy group, scenario, seed), scenarios outermost."""
    scenarios = cfg.scenarios or [None]
    return [RunPlan(g, sc, seed) for sc in scenarios for g in cfg.strategy_groups() for seed in cfg.seeds]


def run_experiment(cfg: ExperimentConfig, out_dir: Path, *, base_dir: Path | None = None, resume: bool = False,
                   overwrite: bool = False, progress: bool = True, log=print) -> list[Path]:
    """Execute every planned run; returns the result paths (finished or skipped), in plan order.

    A run that another process holds locked is put aside; after the other runs this
    process waits for each such lock to be released, then takes the run up again: it
    finds the result and skips it, or (the other process failed or was killed) runs it,
    resuming from its checkpoint with ``resume``. So no planned run is left missing.
    """
    options = {"base_dir": base_dir, "resume": resume, "overwrite": overwrite, "progress": progress, "log": log}
    paths: dict[int, Path] = {}
    locked: list[tuple[int, RunPlan]] = []
    for index, plan in enumerate(plan_runs(cfg)):
        try:
            paths[index] = run_one(cfg, plan, out_dir, **options)
        except RunLockedError as exc:
            log(f"{plan.label} seed {plan.seed} is running elsewhere ({exc}); waiting for it after the other runs")
            locked.append((index, plan))
    for index, plan in locked:
        paths[index] = _run_when_free(cfg, plan, out_dir, options)
    return [paths[i] for i in sorted(paths)]


LOCK_POLL_SECONDS = 1.0


def _run_when_free(cfg: ExperimentConfig, plan: RunPlan, out_dir: Path, options: dict) -> Path:
    """``run_one`` once no other process holds the run's lock (retried if it is taken again)."""
    while True:
        try:
            return run_one(cfg, plan, out_dir, **options)
        except RunLockedError as exc:
            options["log"](f"waiting for {exc.path} ({plan.label} seed {plan.seed})")
            RunLock(exc.path).wait(LOCK_POLL_SECONDS)


def run_one(cfg: ExperimentConfig, plan: RunPlan, out_dir: Path, *, base_dir: Path | None, resume: bool,
            overwrite: bool, progress: bool, log=print) -> Path:
    setup = setup_run(cfg, plan, base_dir)  # the stream and resolved configs; no model yet
    resolved = resolved_config(cfg, plan, setup)
    config_hash = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]
    result_path = out_dir / setup.scenario / plan.label / f"seed{plan.seed}.json"
    ckpt_root = out_dir / ".checkpoints" / setup.scenario / plan.label / f"seed{plan.seed}"
    with RunLock(result_path.with_suffix(".lock")):
        for stale in result_path.parent.glob(f".{result_path.name}.*.tmp"):  # a write killed before its rename
            stale.unlink(missing_ok=True)
        if _already_done(result_path, config_hash, overwrite, log):  # checked under the lock: no double runs
            _remove_tree(ckpt_root)  # left behind by a kill between the result and the clean-up
            return result_path
        run = build_run(cfg, plan, base_dir, progress, setup)  # the model is loaded only for work to do
        if resume:
            _resume(run, ckpt_root, config_hash)
        run.on_task_end.append(lambda r, task: _checkpoint(r, ckpt_root, config_hash))
        log(f"[{cfg.name}] {run.scenario} {run.run_id}: training {len(run.tasks) - run.state.next_task} task(s)")
        execute(run)
        atomic_write_json(result_path, result_document(cfg, run, resolved, config_hash))
        kill_point("run:after-result")
        _remove_tree(ckpt_root)
    return result_path


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


def setup_run(cfg: ExperimentConfig, plan: RunPlan, base_dir: Path | None) -> RunSetup:
    """Build the stream (seeded) and validate the backbone and strategy blocks; cheap, no model."""
    bench_spec = resolve_spec(cfg.benchmark, base_dir)
    if plan.scenario is not None:
        bench_spec["scenario"] = plan.scenario
    torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(plan.seed)
    benchmark = benchmarks.build(bench_spec)
    tasks = benchmark.tasks(plan.seed)
    check_disjoint_classes(tasks, benchmark.scenario)
    backbone = PluginChoice(*backbones.resolve(resolve_spec(cfg.backbone, base_dir)))
    chosen = [PluginChoice(*strategies.resolve(spec)) for spec in plan.group]
    for strategy in chosen:
        if strategy.cls.requires_task_id and benchmark.scenario != "task-il":
            raise ConfigError(f"strategy {strategy.name!r} needs task ids at test time; use scenario task-il")
    return RunSetup(benchmark, tasks, backbone, chosen)


def build_run(cfg: ExperimentConfig, plan: RunPlan, base_dir: Path | None, progress: bool,
              setup: RunSetup | None = None) -> Run:
    """Build backbone and strategies for one run (seeded for reproducibility) on ``setup``'s stream."""
    setup = setup or setup_run(cfg, plan, base_dir)
    seed_everything(plan.seed)
    backbone = setup.backbone.cls(setup.backbone.config, setup.benchmark, setup.tasks)
    backbone.label_space = LabelSpace(setup.scenario, len(setup.benchmark.label_names),
                                      {t.id: t.classes for t in setup.tasks})
    devices = Devices(cfg.train.device, cfg.train.mixed_precision)
    backbone.to(devices.device)
    built = [choice.cls(choice.config) for choice in setup.strategies]
    return Run(f"{plan.label}/seed{plan.seed}", plan.seed, setup.scenario, setup.tasks, backbone, built,
               cfg.train, devices, RunState(), progress, setup.benchmark)


def resolved_config(cfg: ExperimentConfig, plan: RunPlan, run: Run | RunSetup) -> dict:
    """The experiment as run: every plugin block with its defaults filled in."""
    data = to_plain(cfg)
    data.pop("compare", None)
    data.pop("resources", None)  # where a run executes does not change its result
    data.update(
        seeds=[plan.seed], scenarios=[run.scenario],
        benchmark={"name": run.benchmark.name, **to_plain(run.benchmark.config)},
        backbone={"name": run.backbone.name, **to_plain(run.backbone.config)},
        strategies=[{"name": s.name, **to_plain(s.config)} for s in run.strategies],
    )
    return data


def _already_done(result_path: Path, config_hash: str, overwrite: bool, log) -> bool:
    if not result_path.exists() or overwrite:
        return False
    try:
        existing = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{result_path} exists but is unreadable; move it away or pass --overwrite") from None
    if existing.get("config_hash") == config_hash:
        log(f"skip {result_path} (finished, same config)")
        return True
    raise ConfigError(f"{result_path} holds a run with another config; use another --out or pass --overwrite")


def _trainable_state(run: Run) -> dict:
    model = run.backbone.model
    run.trainable_names |= {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    return {k: v for k, v in model.state_dict().items() if k in run.trainable_names or k in buffers}


def _checkpoint(run: Run, root: Path, config_hash: str) -> None:
    meta = {"config_hash": config_hash, "run": run.run_id, "run_state": run.state.to_json(),
            "seen": sorted(run.backbone.label_space.seen), "trainable_names": sorted(run.trainable_names)}
    state = {"strategies": [s.state_dict() for s in run.strategies]}
    if not run.train.reset_optimizer and run.optimizer is not None:
        state["optimizer"] = optimizer_checkpoint(run.optimizer)
    save_checkpoint(root, run.state.next_task - 1, meta, _trainable_state(run), state)


def _resume(run: Run, root: Path, config_hash: str) -> None:
    loaded = load_checkpoint(root, {"config_hash": config_hash, "run": run.run_id})
    if loaded is None:
        return
    meta, model_tensors, state = loaded
    for strategy, strategy_state in zip(run.strategies, state["strategies"]):
        strategy.load_state_dict(strategy_state)
        strategy.restore(run.backbone)
    device = run.devices.device
    missing = set(model_tensors) - set(run.backbone.model.state_dict())
    if missing:
        raise ConfigError(f"checkpoint {root} has weights this model lacks: {sorted(missing)[:3]}")
    run.backbone.model.load_state_dict({k: v.to(device) for k, v in model_tensors.items()}, strict=False)
    run.state = RunState.from_json(meta["run_state"])
    run.backbone.label_space.seen = set(meta["seen"])
    run.trainable_names = set(meta["trainable_names"])
    if "optimizer" in state:
        run.optimizer_state = optimizer_from_checkpoint(state["optimizer"])


def result_document(cfg: ExperimentConfig, run: Run, resolved: dict, config_hash: str) -> dict:
    """The run's JSON (schema_version 1; see docs/architecture.md)."""
    backbone = run.backbone
    return {
        "schema_version": SCHEMA_VERSION, "experiment": cfg.name, "run": run.run_id,
        "strategy": group_label([{"name": s.name} for s in run.strategies]), "seed": run.seed,
        "scenario": run.scenario, "config": resolved, "config_hash": config_hash,
        "env": {**package_versions(), "git_sha": git_sha(), "device": run.devices.kind},
        "tasks": [{"id": t.id, "name": t.name, "classes": list(t.classes), "n_train": len(t.train),
                   "n_test": len(t.test)} for t in run.tasks],
        "acc": run.state.acc, "baseline_acc": run.state.baseline_acc,
        "cost": {"train_seconds": run.state.train_seconds, "peak_memory_mb": run.state.peak_memory_mb,
                 "trainable_params": sum(p.numel() for p in backbone.trainable_parameters()),
                 "extra_state_bytes": sum(s.extra_state_bytes() for s in run.strategies)},
        "extra": {k: v for s in run.strategies for k, v in s.report().items()},
        "skipped_batches": run.state.skipped_batches,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    for parent in path.parents:
        if parent.name == ".checkpoints" or not parent.exists():
            break
        try:
            parent.rmdir()
        except OSError:
            break
