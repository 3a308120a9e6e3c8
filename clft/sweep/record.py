"""Stage 5 of a sweep: record. A finished run's result JSON (schema_version 1; docs/architecture.md),
written atomically with its checksum (``write_result``), and the code identity it records
(``run_identity``)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from clft.config.experiment import ExperimentConfig
from clft.engine.runner import Run
from clft.results.check import SCHEMA_VERSION, with_checksum
from clft.results.provenance import git_sha, package_versions, run_code
from clft.storage.atomic import atomic_write_json
from clft.sweep.build import RunSetup
from clft.types import Task


def run_identity(setup: RunSetup | Run) -> dict:
    """The code that makes (made) this run: clft's and its plugin classes' (``clft.results.provenance.run_code``)."""
    if isinstance(setup, RunSetup):
        classes = [setup.backbone.cls, *(choice.cls for choice in setup.strategies)]
    else:
        classes = [type(setup.backbone), *(type(strategy) for strategy in setup.strategies)]
    return run_code([type(setup.benchmark), *classes])


def result_document(cfg: ExperimentConfig, run: Run, resolved: dict, digest: str, label: str | None = None) -> dict:
    """The run's JSON (schema_version 1; see docs/architecture.md); ``label`` names the table row
    (default: the strategies' default labels joined by ``+``), ``strategy`` the strategies' names."""
    backbone = run.backbone
    return {
        "schema_version": SCHEMA_VERSION, "experiment": cfg.name, "run": run.run_id,
        "strategy": "+".join(s.name for s in run.strategies),
        "label": label or "+".join(s.default_label(s.config) for s in run.strategies), "seed": run.seed,
        "scenario": run.scenario, "config": resolved, "config_hash": digest, "code": run_identity(run),
        "env": {**package_versions(), "git_sha": git_sha(), "device": run.devices.kind},
        "tasks": [task_entry(t) for t in run.tasks],
        "acc": run.state.acc, "baseline_acc": run.state.baseline_acc,
        "cost": {"train_seconds": run.state.train_seconds, "peak_memory_mb": run.state.peak_memory_mb,
                 "memory_at_start_mb": run.state.memory_at_start_mb, "memory_method": run.state.memory_method,
                 "trainable_params": sum(p.numel() for p in backbone.trainable_parameters()),
                 "extra_state_bytes": sum(s.extra_state_bytes() for s in run.strategies)},
        "extra": {k: v for s in run.strategies for k, v in s.report().items()},
        "skipped_batches": run.state.skipped_batches,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **general_entry(run),
    }


def task_entry(task: Task) -> dict:
    """A task as the result JSON lists it; ``metric`` names how its column of ``acc`` was scored."""
    return {"id": task.id, "name": task.name, "classes": list(task.classes), "n_train": len(task.train),
            "n_test": len(task.test), "metric": task.metric}


def general_entry(run: Run) -> dict:
    """``{"general": {"tasks": [...], "scores": [[...]]}}`` (row 0 before training, row i+1 after
    task i), or nothing when the run has no held-out general-ability tasks."""
    if not run.general_tasks:
        return {}
    tasks = [{"name": t.name, "metric": t.metric, "n_test": len(t.test)} for t in run.general_tasks]
    return {"general": {"tasks": tasks, "scores": run.state.general}}


def write_result(path: Path, cfg: ExperimentConfig, run: Run, resolved: dict, digest: str, label: str | None) -> None:
    """The run's result document, checksummed (``clft.results.check``), written atomically to ``path``."""
    atomic_write_json(path, with_checksum(result_document(cfg, run, resolved, digest, label)))
