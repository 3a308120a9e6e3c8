"""Executors: where the runs of a sweep execute (``clft run --jobs N``, ``--executor ray``).

- ``local``, ``--jobs 1``: one run after another in this process.
- ``local``, ``--jobs N``: N runs at a time in spawned worker processes
  (``clft.sweep.process_pool.WorkerPool``); each worker gets ``cores // N`` torch threads
  (unless ``train.threads`` is set) and, with GPUs, one GPU round-robin. ``N`` is at most
  ``MAX_JOBS`` (a larger one is a one-line error) and no more workers are started than
  there are runs.
- ``ray``: one Ray task per run, with the experiment's ``resources`` (cpus, gpus), on
  the cluster at ``--address`` or on a local Ray started for the sweep.

Every worker calls ``clft.sweep.run.run_one`` (``clft.sweep.worker``): the per-run flock, the "finished?" check
under that lock and the atomic result write are today's, so executors may share a
folder with each other and a rerun trains nothing. A worker that dies (SIGKILL, the
OOM killer, a lost Ray node) fails its own run only, and leaves its checkpoint; that
run is submitted again, up to ``RETRIES`` times, resuming from the checkpoint, on a
new worker, while the other runs go on (retries are driven here rather than by Ray's
``max_retries`` so that only the retry resumes and every executor retries alike). A
run locked by another process is put aside and waited for, as in
``clft.sweep.run.run_experiment``.

Ctrl-C under ``--jobs N``: the first stops scheduling (no run starts after the
"interrupted" line, which names the runs still running) and lets the running runs
finish; a second ends the workers at once (their finished tasks are checkpointed).
Either way the sweep ends with KeyboardInterrupt (``clft run``: exit status 130).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from clft import console
from clft.config.experiment import ExperimentConfig
from clft.engine.distributed import Parallel
from clft.errors import ConfigError
from clft.sweep.classify import PlannedRun, check_plan, classify_runs
from clft.sweep.locks import RunLockedError
from clft.sweep.parallel_run import run_one_parallel
from clft.sweep.plan import check_restart_runs, plan_runs
from clft.sweep.preflight import preflight
from clft.sweep.process_pool import WorkerDied, WorkerPool
from clft.sweep.progress import SweepProgress
from clft.sweep.run import folder_claim
from clft.sweep.stale_runs import settle_stale
from clft.sweep.worker import Outcome, RunOptions, run_plan

RETRIES = 2
"""Times a run whose worker died is submitted again (resuming from its checkpoint)."""
MAX_JOBS = 256
"""The most ``--jobs`` accepted: each worker is a process holding torch (hundreds of MB)."""

EXECUTORS = ("local", "ray")
POLL_SECONDS = 0.2
"""How often the driver looks for a Ctrl-C while it waits for runs."""








def _log(message: str) -> None:
    """A sweep-level line (``clft.console``: above the progress bar; not with ``--quiet``)."""
    console.say(message)


@dataclass
class Attempt:
    index: int
    planned: PlannedRun
    retries: int = 0
    waiting: bool = False

    def describe(self) -> str:
        return f"{self.planned.plan.label} seed {self.planned.plan.seed}"


class Interrupts:
    """Ctrl-C while a ``--jobs`` sweep runs: the first sets ``stopping`` (the driver stops scheduling and
    waits for the running runs), the second raises KeyboardInterrupt (the workers are ended)."""

    def __init__(self) -> None:
        self.count = 0
        self._previous = None

    @property
    def stopping(self) -> bool:
        return self.count > 0

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count == 2:  # a second Ctrl-C: stop now (later ones must not interrupt ending the workers)
            raise KeyboardInterrupt


@dataclass
class Driver:
    """Submits every plan, resubmits runs whose worker died (resuming) or that were locked, reports."""

    submit: object  # (planned run, options, wait_if_locked) -> Future[Outcome]
    is_worker_death: object  # exception -> bool
    progress: SweepProgress
    interrupts: Interrupts | None = None
    """Ctrl-C handling of a process pool (None: a Ctrl-C interrupts the run in this process at once)."""
    cancel_queued: object = None  # () -> None: drop the submitted runs no worker has started
    paths: dict = field(default_factory=dict)

    def run(self, planned: list[PlannedRun], options: RunOptions) -> list[Path]:
        todo = deque((Attempt(i, run), options) for i, run in enumerate(planned))
        pending: dict[Future, Attempt] = {}
        noticed = False
        while todo or pending:
            while todo and not self._stopping():
                attempt, opts = todo.popleft()
                future = self.submit(attempt.planned, opts, attempt.waiting)
                pending[future] = attempt
                if future.done():  # an inline executor: report it before starting the next run
                    break
            done, _ = wait(list(pending), timeout=POLL_SECONDS if self.interrupts else None,
                           return_when=FIRST_COMPLETED)
            if self._stopping() and not noticed:
                noticed = True
                todo.clear()
                self._stop_scheduling(pending)
            for future in done:
                attempt = pending.pop(future)
                again = None if future.cancelled() else self._settle(future, attempt, options)
                if again is not None and not self._stopping():
                    todo.append(again)  # after every run not yet submitted
        if self._stopping():
            raise KeyboardInterrupt
        return [self.paths[i] for i in sorted(self.paths)]

    def _stopping(self) -> bool:
        return self.interrupts is not None and self.interrupts.stopping

    def _stop_scheduling(self, pending: dict[Future, Attempt]) -> None:
        """A first Ctrl-C: cancel what no worker has started; name every run a worker had started, including
        one that finished this instant and is reported just below (its "done" line follows this one)."""
        if self.cancel_queued is not None:
            self.cancel_queued()
        running = [attempt.describe() for future, attempt in pending.items() if not future.cancelled()]
        console.warn(f"interrupted: no new run will start; waiting for {len(running)} running run(s) to finish "
             f"({', '.join(running) or 'none'}); press Ctrl-C again to stop them now (finished tasks are "
             "checkpointed)")

    def _settle(self, future: Future, attempt: Attempt, options: RunOptions) -> tuple[Attempt, RunOptions] | None:
        """Record a finished run; or return what to submit again (a locked run, a run whose worker died)."""
        try:
            outcome = future.result()
        except BaseException as exc:  # noqa: BLE001 - sorted below; anything else is re-raised
            cause = getattr(exc, "cause", None) or exc  # Ray wraps a task's exception
            if isinstance(cause, RunLockedError) and not attempt.waiting:
                _log(f"{attempt.describe()} is running elsewhere; waiting for it")
                attempt.waiting = True
                return attempt, options
            if self.is_worker_death(exc):
                if attempt.retries >= RETRIES:
                    raise WorkerDied(f"the worker of {attempt.describe()} died {RETRIES + 1} times ({exc}); "
                                     "its checkpoint is kept: rerun with --resume") from None
                attempt.retries += 1
                console.warn(f"the worker of {attempt.describe()} died ({exc}); retry {attempt.retries}/{RETRIES} "
                             "from its checkpoint")
                return attempt, replace(options, resume=True)
            raise cause from None
        self.paths[attempt.index] = outcome.path
        self.progress.finished(outcome)
        return None


def run_sweep(cfg: ExperimentConfig, out_dir: Path, *, jobs: int = 1, executor: str = "local",
              address: str | None = None, base_dir: Path | None = None, resume: bool = False,
              overwrite: bool = False, rerun_stale: bool = False, progress: bool = True,
              restart_runs: tuple[str, ...] = (), verify_stale: int | None = None,
              accept_stale: bool = False) -> list[Path]:
    """Every planned run of ``cfg`` on the chosen executor; returns the result paths in plan order.

    Every run's configs and plugin pairings are checked first (``clft.sweep.preflight``), so a bad
    entry anywhere stops the sweep before any run trains. Then every planned run is classified
    (``clft.sweep.classify.check_plan``): stale results without ``rerun_stale``, or results of another
    config without ``overwrite``, stop the sweep with one line (exit 2) and nothing trains; first,
    ``verify_stale`` (K) or ``accept_stale`` settle the stale runs (``clft.sweep.stale_runs``). A live sweep
    of another config on the folder stops it too, before it writes anything (``clft.sweep.claims``)."""
    check_executor_options(executor, jobs, address)
    if executor == "ray":
        from clft.sweep.ray_executor import prepare_ray

        prepare_ray(address)  # Ray installed, the cluster reachable: before anything is written
    plans = plan_runs(cfg)
    check_restart_runs(restart_runs, preflight(cfg, plans, base_dir))
    out_dir = Path(out_dir).resolve()  # workers may run in another folder (Ray)
    base_dir = base_dir and Path(base_dir).resolve()
    options = RunOptions(base_dir, resume, overwrite, rerun_stale=rerun_stale, restart_runs=tuple(restart_runs))
    parallel = Parallel.current()
    planned = classify_runs(cfg, out_dir, base_dir, overwrite, plans)
    if (verify_stale is not None or accept_stale) and parallel.active:
        raise ConfigError("--verify-stale / --accept-stale: run them once without accelerate launch / torchrun")
    with folder_claim(cfg, planned, out_dir, overwrite):
        planned = settle_stale(cfg, planned, out_dir, base_dir, verify=verify_stale, accept=accept_stale,
                               rerun=rerun_stale, overwrite=overwrite, log=_log)
        check_plan(planned, out_dir, overwrite=overwrite, rerun_stale=rerun_stale,
                   log=_log if parallel.is_main else lambda message: None)
        if parallel.active and (jobs != 1 or executor != "local"):
            raise ConfigError("under accelerate launch / torchrun all processes train one run at a time; "
                              "drop --jobs/--executor")
        with SweepProgress(out_dir, len(planned), enabled=progress, silent=not parallel.is_main) as bar:
            return _execute(cfg, out_dir, planned, options, bar, parallel, jobs, executor, address)


def check_executor_options(executor: str, jobs: int, address: str | None) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"--jobs must lie in [1, {MAX_JOBS}], got {jobs}")
    if address is not None and executor != "ray":
        raise ConfigError("--address names a Ray cluster; use it with --executor ray")


def _execute(cfg, out_dir: Path, plans: list[PlannedRun], options: RunOptions, bar: SweepProgress,
             parallel: Parallel, jobs: int, executor: str, address: str | None) -> list[Path]:
    if parallel.active:
        outcomes = Driver(_inline(cfg, out_dir, parallel), lambda exc: False, bar).run(plans, options)
        parallel.close()
        return outcomes
    if executor == "ray":
        from clft.sweep.ray_executor import ray_backend

        with ray_backend(cfg, out_dir, address) as (submit, is_death):
            return Driver(submit, is_death, bar).run(plans, options)
    workers = min(jobs, len(plans))  # no idle workers: a run each at most
    if workers <= 1:
        return Driver(_inline(cfg, out_dir), lambda exc: False, bar).run(plans, options)
    with Interrupts() as interrupts, ProcessBackend(cfg, out_dir, workers) as backend:
        options.threads = backend.threads
        driver = Driver(backend.submit, lambda exc: isinstance(exc, WorkerDied), bar, interrupts,
                        backend.pool.cancel_queued)
        return driver.run(plans, options)


def _inline(cfg: ExperimentConfig, out_dir: Path, parallel: Parallel | None = None):
    """Runs each submitted plan at once in this process (with ``parallel``: as one data-parallel group)."""
    def submit(planned: PlannedRun, options: RunOptions, wait_if_locked: bool) -> Future:
        future: Future = Future()
        try:
            if parallel is None:
                future.set_result(run_plan(cfg, planned, out_dir, options, wait_if_locked))
            else:
                future.set_result(_run_parallel(cfg, planned, out_dir, options, parallel))
        except RunLockedError as exc:
            future.set_exception(exc)
        return future

    return submit


def _run_parallel(cfg: ExperimentConfig, planned: PlannedRun, out_dir: Path, options: RunOptions, parallel: Parallel):
    started, clock = time.time(), time.perf_counter()
    path = run_one_parallel(cfg, planned, out_dir, base_dir=options.base_dir, resume=options.resume,
                            overwrite=options.overwrite, rerun_stale=options.rerun_stale, parallel=parallel,
                            log=console.detail if parallel.is_main else _quiet)
    return Outcome(path, time.perf_counter() - clock, path.stat().st_mtime >= started)


def _quiet(message: str) -> None:
    pass


def gpu_slots(jobs: int, device: str) -> list[str | None]:
    """The GPU (a ``CUDA_VISIBLE_DEVICES`` entry) of each of ``jobs`` workers, round-robin; None = no GPU."""
    if device == "cpu":
        return [None] * jobs
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [g for g in visible.split(",") if g.strip()]
    else:
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())]
    return [gpus[k % len(gpus)] if gpus else None for k in range(jobs)]


def threads_per_job(jobs: int) -> int:
    """max(1, usable cores // jobs)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


class ProcessBackend:
    """``jobs`` worker processes (``clft.sweep.process_pool``); a dead worker fails its run only and is replaced."""

    def __init__(self, cfg: ExperimentConfig, out_dir: Path, jobs: int) -> None:
        self.cfg, self.out_dir, self.jobs = cfg, out_dir, jobs
        self.threads = threads_per_job(jobs)
        self.pool = WorkerPool(gpu_slots(jobs, cfg.train.device))

    def submit(self, planned: PlannedRun, options: RunOptions, wait_if_locked: bool) -> Future:
        return self.pool.submit(run_plan, self.cfg, planned, self.out_dir, options, wait_if_locked)

    def __enter__(self) -> ProcessBackend:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.pool.close()
        else:  # an error or a second Ctrl-C: the workers' runs end now (their finished tasks are checkpointed)
            self.pool.terminate()
