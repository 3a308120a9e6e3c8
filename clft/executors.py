"""Executors: where the runs of a sweep execute (``clft run --jobs N``, ``--executor ray``).

- ``local``, ``--jobs 1``: one run after another in this process.
- ``local``, ``--jobs N``: N runs at a time in spawned worker processes
  (``concurrent.futures.ProcessPoolExecutor``); each worker gets ``cores // N`` torch
  threads (unless ``train.threads`` is set) and, with GPUs, one GPU round-robin.
- ``ray``: one Ray task per run, with the experiment's ``resources`` (cpus, gpus), on
  the cluster at ``--address`` or on a local Ray started for the sweep.

Every worker calls ``clft.sweep.run_one``: the per-run flock, the "finished?" check
under that lock and the atomic result write are today's, so executors may share a
folder with each other and a rerun trains nothing. A worker that dies (SIGKILL, the
OOM killer, a lost Ray node) leaves its checkpoint; the run is submitted again, up to
``RETRIES`` times, resuming from that checkpoint (retries are driven here rather than
by Ray's ``max_retries`` so that only the retry resumes and every executor retries
alike). A run locked by another process is put aside and waited for, as in
``clft.sweep.run_experiment``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path

from clft import console
from clft.distributed import Parallel, run_one_parallel
from clft.errors import ConfigError
from clft.experiment import ExperimentConfig
from clft.locks import RunLockedError
from clft.preflight import preflight
from clft.progress import SweepProgress
from clft.stale_runs import settle_stale
from clft.sweep import RunPlan, check_plan, check_restart_runs, classify_runs, plan_runs

RETRIES = 2
"""Times a run whose worker died is submitted again (resuming from its checkpoint)."""

EXECUTORS = ("local", "ray")
PARENT_POLL_SECONDS = 0.5
"""How often a ``--jobs`` worker checks that its sweep is still alive (``exit_with_parent``)."""


@dataclass
class RunOptions:
    """What every worker passes to ``clft.sweep.run_one``."""

    base_dir: Path | None = None
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    """torch threads for the worker (None: leave torch's default or ``train.threads``)."""
    rerun_stale: bool = False
    """Re-run finished runs made by other code (``clft.staleness``)."""
    restart_runs: tuple[str, ...] = ()
    """Runs (``<scenario>/<strategies>/seed<k>``) whose checkpoint is discarded (``--restart-run``)."""


@dataclass
class Outcome:
    """What a worker sends back: the result file, the wall time, and whether it trained."""

    path: Path
    seconds: float
    trained: bool


def run_plan(cfg: ExperimentConfig, plan: RunPlan, out_dir: Path, options: RunOptions, wait_if_locked: bool) -> Outcome:
    """One run through ``clft.sweep.run_one`` (in whatever process executes it); raises RunLockedError
    when another process holds the run and ``wait_if_locked`` is False."""
    import torch

    from clft import sweep

    if options.threads is not None and cfg.train.threads is None:
        torch.set_num_threads(options.threads)
    started, clock = time.time(), time.perf_counter()
    kwargs = {"base_dir": options.base_dir, "resume": options.resume, "overwrite": options.overwrite,
              "rerun_stale": options.rerun_stale, "progress": False, "log": console.detail,
              "restart_runs": options.restart_runs}
    if wait_if_locked:
        path = sweep._run_when_free(cfg, plan, out_dir, kwargs)
    else:
        path = sweep.run_one(cfg, plan, out_dir, **kwargs)
    return Outcome(path, time.perf_counter() - clock, path.stat().st_mtime >= started)


def _log(message: str) -> None:
    """A sweep-level line (``clft.console``: above the progress bar; not with ``--quiet``)."""
    console.say(message)


@dataclass
class Attempt:
    index: int
    plan: RunPlan
    retries: int = 0
    waiting: bool = False


@dataclass
class Driver:
    """Submits every plan, resubmits runs whose worker died (resuming) or that were locked, reports."""

    submit: object  # (plan, options, wait_if_locked) -> Future[Outcome]
    is_worker_death: object  # exception -> bool
    progress: SweepProgress
    paths: dict = field(default_factory=dict)

    def run(self, plans: list[RunPlan], options: RunOptions) -> list[Path]:
        todo = deque((Attempt(i, plan), options) for i, plan in enumerate(plans))
        pending: dict[Future, Attempt] = {}
        while todo or pending:
            while todo:
                attempt, opts = todo.popleft()
                future = self.submit(attempt.plan, opts, attempt.waiting)
                pending[future] = attempt
                if future.done():  # an inline executor: report it before starting the next run
                    break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                again = self._settle(future, pending.pop(future), options)
                if again is not None:
                    todo.append(again)  # after every run not yet submitted
        return [self.paths[i] for i in sorted(self.paths)]

    def _settle(self, future: Future, attempt: Attempt, options: RunOptions) -> tuple[Attempt, RunOptions] | None:
        """Record a finished run; or return what to submit again (a locked run, a run whose worker died)."""
        try:
            outcome = future.result()
        except BaseException as exc:  # noqa: BLE001 - sorted below; anything else is re-raised
            cause = getattr(exc, "cause", None) or exc  # Ray wraps a task's exception
            if isinstance(cause, RunLockedError) and not attempt.waiting:
                _log(f"{attempt.plan.label} seed {attempt.plan.seed} is running elsewhere; waiting for it")
                attempt.waiting = True
                return attempt, options
            if self.is_worker_death(exc) and attempt.retries < RETRIES:
                attempt.retries += 1
                console.warn(f"the worker of {attempt.plan.label} seed {attempt.plan.seed} died "
                             f"({type(exc).__name__}); retry {attempt.retries}/{RETRIES} from its checkpoint")
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

    Every run's configs and plugin pairings are checked first (``clft.preflight``), so a bad
    entry anywhere stops the sweep before any run trains. Then every planned run is classified
    (``clft.sweep.check_plan``): stale results without ``rerun_stale``, or results of another
    config without ``overwrite``, stop the sweep with one line (exit 2) and nothing trains; first,
    ``verify_stale`` (K) or ``accept_stale`` settle the stale runs (``clft.stale_runs``)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if address is not None and executor != "ray":
        raise ConfigError("--address names a Ray cluster; use it with --executor ray")
    check_restart_runs(restart_runs, preflight(cfg, plan_runs(cfg), base_dir))
    out_dir = Path(out_dir).resolve()  # workers may run in another folder (Ray)
    base_dir = base_dir and Path(base_dir).resolve()
    options = RunOptions(base_dir, resume, overwrite, rerun_stale=rerun_stale, restart_runs=tuple(restart_runs))
    parallel = Parallel.current()
    planned = classify_runs(cfg, out_dir, base_dir, overwrite)
    if (verify_stale is not None or accept_stale) and parallel.active:
        raise ConfigError("--verify-stale / --accept-stale: run them once without accelerate launch / torchrun")
    planned = settle_stale(cfg, planned, out_dir, base_dir, verify=verify_stale, accept=accept_stale,
                           rerun=rerun_stale, overwrite=overwrite, log=_log)
    check_plan(planned, out_dir, overwrite=overwrite, rerun_stale=rerun_stale,
               log=_log if parallel.is_main else lambda message: None)
    plans = [p.plan for p in planned]
    if parallel.active and (jobs != 1 or executor != "local"):
        raise ConfigError("under accelerate launch / torchrun all processes train one run at a time; "
                          "drop --jobs/--executor")
    with SweepProgress(out_dir, len(plans), enabled=progress, silent=not parallel.is_main) as bar:
        if parallel.active:
            outcomes = Driver(_inline(cfg, out_dir, parallel), lambda exc: False, bar).run(plans, options)
            parallel.close()
            return outcomes
        if executor == "ray":
            from clft.ray_executor import ray_backend

            with ray_backend(cfg, out_dir, address) as (submit, is_death):
                return Driver(submit, is_death, bar).run(plans, options)
        if jobs == 1:
            return Driver(_inline(cfg, out_dir), lambda exc: False, bar).run(plans, options)
        with ProcessBackend(cfg, out_dir, jobs) as backend:
            options.threads = backend.threads
            return Driver(backend.submit, lambda exc: isinstance(exc, BrokenProcessPool), bar).run(plans, options)


def _inline(cfg: ExperimentConfig, out_dir: Path, parallel: Parallel | None = None):
    """Runs each submitted plan at once in this process (with ``parallel``: as one data-parallel group)."""
    def submit(plan: RunPlan, options: RunOptions, wait_if_locked: bool) -> Future:
        future: Future = Future()
        try:
            if parallel is None:
                future.set_result(run_plan(cfg, plan, out_dir, options, wait_if_locked))
            else:
                future.set_result(_run_parallel(cfg, plan, out_dir, options, parallel))
        except RunLockedError as exc:
            future.set_exception(exc)
        return future

    return submit


def _run_parallel(cfg: ExperimentConfig, plan: RunPlan, out_dir: Path, options: RunOptions, parallel: Parallel):
    started, clock = time.time(), time.perf_counter()
    path = run_one_parallel(cfg, plan, out_dir, base_dir=options.base_dir, resume=options.resume,
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


def _init_worker(slots) -> None:
    """Runs first in each spawned worker: take a slot, and with it a GPU (before torch touches CUDA);
    start the watch that ends the worker with its sweep."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True, name="clft-parent-watch").start()


def exit_with_parent(parent: int, poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """Return never; ``os._exit(1)`` once this process's parent is no longer ``parent``.

    A sweep killed by SIGTERM/SIGKILL (a scheduler, ``timeout``) cannot shut its pool
    down, and the workers would finish their runs unseen, with the code of that moment.
    Ending them keeps the sweep's finished runs and task checkpoints (``--resume``).
    """
    while os.getppid() == parent:
        time.sleep(poll_seconds)
    os._exit(1)


class ProcessBackend:
    """A spawn ``ProcessPoolExecutor`` of ``jobs`` workers, rebuilt when a worker death breaks it."""

    def __init__(self, cfg: ExperimentConfig, out_dir: Path, jobs: int) -> None:
        self.cfg, self.out_dir, self.jobs = cfg, out_dir, jobs
        self.threads = threads_per_job(jobs)
        self.context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        slots = self.context.Queue()
        for gpu in gpu_slots(self.jobs, self.cfg.train.device):
            slots.put(gpu)
        return ProcessPoolExecutor(self.jobs, mp_context=self.context, initializer=_init_worker, initargs=(slots,))

    def submit(self, plan: RunPlan, options: RunOptions, wait_if_locked: bool) -> Future:
        try:
            return self.pool.submit(run_plan, self.cfg, plan, self.out_dir, options, wait_if_locked)
        except BrokenProcessPool:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = self._new_pool()
            return self.pool.submit(run_plan, self.cfg, plan, self.out_dir, options, wait_if_locked)

    def __enter__(self) -> ProcessBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
