"""Stages 4 and 5 of a sweep: execute each planned run and record its result; ``run_experiment`` is
the whole sweep in this process.

The stages, each called once with what the one before returned (docs/architecture.md, "The path of
``clft run``"): ``plan_runs`` (``clft.sweep.plan``) -> ``preflight`` (``clft.sweep.preflight``) ->
``classify_runs`` (``clft.sweep.classify``: the config of every run resolved once) -> ``run_one`` per
run (the stream, the model, ``clft.engine.runner.execute``) -> ``write_result`` (``clft.sweep.record``).
``clft run`` goes through ``clft.sweep.executors.run_sweep``, which runs the same stages and hands
``run_one`` to worker processes or Ray.

Two sweeps of one config may share one folder: a run locked by the other is waited for, not lost
(``run_experiment``; docs/reliability.md); a sweep of another config is refused before it writes
anything (``clft.sweep.claims``). Nothing is written through a symbolic link inside the folder
(``clft.config.validation.check_no_links``, again under each run's lock).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from clft.config.experiment import ExperimentConfig
from clft.config.validation import check_no_links
from clft.engine.run_checkpoint import check_checkpoint_folder, resume_run, save_task_checkpoint
from clft.engine.runner import Run, execute
from clft.results.staleness import DONE
from clft.storage.atomic import WriteError
from clft.storage.faults import kill_point
from clft.sweep.build import build_run, setup_run
from clft.sweep.claims import SweepClaim
from clft.sweep.classify import PlannedRun, already_done, check_plan, checkpoint_identity, classify_runs
from clft.sweep.locks import RunLock, RunLockedError
from clft.sweep.plan import check_restart_runs, plan_runs, run_paths
from clft.sweep.preflight import preflight
from clft.sweep.record import run_identity, write_result

LOCK_POLL_SECONDS = 1.0


def run_experiment(cfg: ExperimentConfig, out_dir: Path, *, base_dir: Path | None = None, resume: bool = False,
                   overwrite: bool = False, rerun_stale: bool = False, progress: bool = True,
                   log=print, restart_runs: tuple[str, ...] = ()) -> list[Path]:
    """Execute every planned run; returns the result paths (finished or skipped), in plan order.

    Every run's configs and plugin pairing are checked first (``clft.sweep.preflight``): a bad
    entry anywhere stops the experiment before anything trains. Then every planned run is
    classified (``classify_runs``): with stale results and no ``rerun_stale``, or results of
    another config and no ``overwrite``, nothing is trained and a one-line ConfigError (exit 2)
    says what to pass (``clft run`` can verify or keep stale runs first: ``clft.sweep.executors.run_sweep``).
    ``restart_runs`` names runs (``<scenario>/<strategies>/seed<k>``) whose
    checkpoint is discarded, so they train from scratch.

    A run that another process holds locked is put aside; after the other runs this
    process waits for each such lock to be released, then takes the run up again: it
    finds the result and skips it, or (the other process failed or was killed) runs it,
    resuming from its checkpoint with ``resume``. So no planned run is left missing.
    """
    plans = plan_runs(cfg)
    check_restart_runs(restart_runs, preflight(cfg, plans, base_dir))
    planned = classify_runs(cfg, out_dir, base_dir, overwrite, plans)
    with folder_claim(cfg, planned, out_dir, overwrite):
        check_plan(planned, out_dir, overwrite=overwrite, rerun_stale=rerun_stale, log=log)
        options = {"base_dir": base_dir, "resume": resume, "overwrite": overwrite, "rerun_stale": rerun_stale,
                   "progress": progress, "log": log, "restart_runs": tuple(restart_runs)}
        paths: dict[int, Path] = {}
        locked: list[tuple[int, PlannedRun]] = []
        for index, run in enumerate(planned):
            try:
                paths[index] = run_one(cfg, run, out_dir, **options)
            except RunLockedError as exc:
                log(f"{run.plan.label} seed {run.plan.seed} is running elsewhere ({exc}); "
                    "waiting for it after the other runs")
                locked.append((index, run))
        for index, run in locked:
            paths[index] = run_when_free(cfg, run, out_dir, options)
    return [paths[i] for i in sorted(paths)]


@contextmanager
def folder_claim(cfg: ExperimentConfig, planned: list[PlannedRun], out_dir: Path, overwrite: bool):
    """This sweep's claim on ``out_dir`` (``clft.sweep.claims``): refused at once, naming the other sweep,
    when a live sweep writes one of these rows with another config. A folder that cannot hold the claim
    (read-only) is fine when every planned run is finished: nothing will be written."""
    claim = SweepClaim(out_dir, {p.row: p.setting for p in planned}, cfg.name)
    try:
        claim.__enter__()
    except OSError as exc:
        if overwrite or any(p.status != DONE for p in planned):
            raise WriteError(f"cannot write {out_dir}: {exc.strerror or exc}; nothing was run") from None
        yield None  # a read-only folder of finished runs: the table is all there is to make
        return
    try:
        yield claim
    finally:
        claim.__exit__(None, None, None)


def run_when_free(cfg: ExperimentConfig, planned: PlannedRun, out_dir: Path, options: dict) -> Path:
    """``run_one`` once no other process holds the run's lock (retried if it is taken again)."""
    while True:
        try:
            return run_one(cfg, planned, out_dir, **options)
        except RunLockedError as exc:
            options["log"](f"waiting for {exc.path} ({planned.plan.label} seed {planned.plan.seed})")
            RunLock(exc.path).wait(LOCK_POLL_SECONDS)


def run_one(cfg: ExperimentConfig, planned: PlannedRun, out_dir: Path, *, base_dir: Path | None, resume: bool,
            overwrite: bool, progress: bool, rerun_stale: bool = False, log=print,
            restart_runs: tuple[str, ...] = ()) -> Path:
    """Execute one classified run into ``out_dir`` and record its result, unless it is done already.

    The resolved config and its hash are the classification's (``planned``); the code identity is
    that of this process (the one that trains)."""
    plan, resolved, digest = planned.plan, planned.resolved, planned.config_hash
    setup = setup_run(cfg, plan, base_dir)  # the stream; no model yet
    path, ckpt_root = run_paths(out_dir, setup.scenario, plan)
    run_key, identity = f"{setup.scenario}/{plan.label}/seed{plan.seed}", run_identity(setup)
    check_no_links(out_dir, path)  # the lock's folders are made next: none may lead out of the folder
    if not overwrite and not _leftovers(path, ckpt_root) and already_done(path, digest, False, rerun_stale, log,
                                                                          identity):
        _log_finished(cfg, path, out_dir, run_key)
        return path  # finished is final: no lock needed to skip it (so a read-only folder of done runs works)
    with run_lock(path):
        check_no_links(out_dir, path)  # again under the lock: nothing this run writes goes through a link
        check_no_links(out_dir, ckpt_root)
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # a write killed before its rename
            leftover.unlink(missing_ok=True)
        if already_done(path, digest, overwrite, rerun_stale, log, identity):  # under the lock: no double runs
            remove_tree(ckpt_root)  # left behind by a kill between the result and the clean-up
            _log_finished(cfg, path, out_dir, run_key)
            return path
        run = build_run(cfg, plan, base_dir, progress, setup)  # the model is loaded only for work to do
        expected = checkpoint_identity(digest, identity)
        if run_key in restart_runs:
            log(f"{run_key}: discarding its checkpoint; training it from scratch (--restart-run)")
            remove_tree(ckpt_root)
        elif resume:
            resume_run(run, ckpt_root, expected, run_key)
        else:
            check_checkpoint_folder(ckpt_root, run_key)
        run.on_task_end.append(lambda r, task: save_task_checkpoint(r, ckpt_root, expected))
        log(f"[{cfg.name}] {run.scenario} {run.run_id}: training {len(run.tasks) - run.state.next_task} task(s)")
        execute_with_trackers(cfg, run, out_dir / "logs", resolved)
        write_result(path, cfg, run, resolved, digest, plan.label)
        kill_point("run:after-result")
        remove_tree(ckpt_root)
    return path


def _leftovers(path: Path, ckpt_root: Path) -> bool:
    """Whether a killed process left something to clean up under the run's lock (a temporary result,
    a checkpoint folder)."""
    return os.path.lexists(ckpt_root) or any(path.parent.glob(f".{path.name}.*.tmp"))


def _log_finished(cfg: ExperimentConfig, path: Path, out_dir: Path, run_key: str) -> None:
    """Trackers asked for after the run finished: logged from its result file."""
    if cfg.train.log_with:
        from clft.results.trackers import log_finished_run

        log_finished_run(cfg.train.log_with, path, out_dir / "logs", run_key)


def execute_with_trackers(cfg: ExperimentConfig, run: Run, logs: Path, resolved: dict) -> None:
    """``execute(run)``, feeding the trackers of ``train.log_with`` (one tracker run per clft run)."""
    if not cfg.train.log_with:
        execute(run)
        return
    from clft.results.trackers import RunLogger, final_metrics

    logger = RunLogger.open(cfg.train.log_with, cfg.name, f"{run.scenario}/{run.run_id}", logs, resolved)
    run.on_step.append(logger.on_step)
    run.on_task_end.append(logger.on_task_end)
    try:
        execute(run)
    except BaseException:
        logger.finish()
        raise
    logger.finish(final_metrics(run.state.acc, run.state.baseline_acc, run.scenario))


@contextmanager
def run_lock(result_path: Path):
    """The run's lock; a folder that cannot hold it (read-only, full) is reported by the result it guards."""
    lock = RunLock(result_path.with_suffix(".lock"))
    try:
        lock.__enter__()
    except OSError as exc:
        raise WriteError(f"cannot write {result_path}: {exc.strerror or exc}; nothing was run") from None
    try:
        yield lock
    finally:
        lock.__exit__(None, None, None)


def remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    for parent in path.parents:
        if parent.name == ".checkpoints" or not parent.exists():
            break
        try:
            parent.rmdir()
        except OSError:
            break
