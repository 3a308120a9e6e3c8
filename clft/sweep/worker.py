"""What a worker process (a ``--jobs`` process, a Ray task, or this process) runs: one classified run
through ``clft.sweep.run.run_one``, with the sweep's options; it sends back an ``Outcome``.

Everything here is pickled by module path to the workers (``clft.sweep.process_pool``, Ray).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from clft import console
from clft.config.experiment import ExperimentConfig
from clft.sweep.classify import PlannedRun
from clft.sweep.run import run_one, run_when_free


@dataclass
class RunOptions:
    """What every worker passes to ``clft.sweep.run.run_one``."""

    base_dir: Path | None = None
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    """torch threads for the worker (None: leave torch's default or ``train.threads``)."""
    rerun_stale: bool = False
    """Re-run finished runs made by other code (``clft.results.staleness``)."""
    restart_runs: tuple[str, ...] = ()
    """Runs (``<scenario>/<strategies>/seed<k>``) whose checkpoint is discarded (``--restart-run``)."""


@dataclass
class Outcome:
    """What a worker sends back: the result file, the wall time, and whether it trained."""

    path: Path
    seconds: float
    trained: bool


def prepare_worker(cfg: ExperimentConfig, threads: int | None) -> None:
    """In a worker: quiet its own libraries as the driver's are ("Map" bars), and use ``threads`` torch threads
    unless the config sets ``train.threads`` (None: leave torch's default)."""
    import torch

    console.set_verbosity(console.verbosity())
    if threads is not None and cfg.train.threads is None:
        torch.set_num_threads(threads)


def run_plan(cfg: ExperimentConfig, planned: PlannedRun, out_dir: Path, options: RunOptions,
             wait_if_locked: bool) -> Outcome:
    """One run through ``clft.sweep.run.run_one`` (in whatever process executes it); raises RunLockedError
    when another process holds the run and ``wait_if_locked`` is False."""
    prepare_worker(cfg, options.threads)
    started, clock = time.time(), time.perf_counter()
    kwargs = {"base_dir": options.base_dir, "resume": options.resume, "overwrite": options.overwrite,
              "rerun_stale": options.rerun_stale, "progress": False, "log": console.detail,
              "restart_runs": options.restart_runs}
    if wait_if_locked:
        path = run_when_free(cfg, planned, out_dir, kwargs)
    else:
        path = run_one(cfg, planned, out_dir, **kwargs)
    return Outcome(path, time.perf_counter() - clock, path.stat().st_mtime >= started)
