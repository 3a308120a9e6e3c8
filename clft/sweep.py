"""Expand an experiment into runs and execute them with checkpoints and results.

A run is (compare entry, scenario, seed). Its files, under the output folder::

    <out>/<scenario>/<label>/seed<k>.json        the result (written last, atomically)
    <out>/.checkpoints/<scenario>/<label>/seed<k>/  per-task checkpoints (removed when done)
    <out>/<scenario>/<label>/seed<k>.lock         held while a process runs it

Before anything is trained every planned run is classified (``clft.staleness``):
a result of the same resolved config made by this code (clft's and the run's plugin
distributions: ``clft.provenance.run_code``) is skipped; one made by other code is
*stale* and re-run only with ``rerun_stale`` (or verified or kept first by
``clft.stale_runs``); a result with another config is never
overwritten unless ``overwrite`` is set. Two sweeps of one config
may share one folder: a run locked by the other is waited for, not lost
(``run_experiment``; docs/reliability.md); a sweep of another config is refused
before it writes anything (``clft.sweep_claims``). Nothing is written through a
symbolic link inside the folder (``clft.validation.check_no_links``, again under
each run's lock).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clft.config import to_plain
from clft.entries import group_label
from clft.errors import ConfigError
from clft.experiment import ExperimentConfig, TrainConfig
from clft.faults import kill_point
from clft.locks import RunLock, RunLockedError
from clft.preflight import preflight
from clft.provenance import run_code
from clft.result_check import with_checksum
from clft.result_document import result_document, run_identity
from clft.results import WriteError, atomic_write_json
from clft.run_checkpoint import check_checkpoint_folder, resume_run, save_task_checkpoint
from clft.run_setup import RunSetup, build_run, resolve_run, setup_run
from clft.runner import Run, execute
from clft.staleness import (
    DONE,
    OTHER_CONFIG,
    STALE,
    TODO,
    config_hash,
    plan_summary,
    read_result,
    setting_hash,
    stale_codes,
    stale_error,
    status_of,
)
from clft.sweep_claims import SweepClaim
from clft.validation import check_no_links, safe_join
from clft.yaml_safe import brief


@dataclass
class RunPlan:
    group: list[dict]
    scenario: str | None
    seed: int
    entry_label: str | None = None
    """The compare entry's label (default: the strategies joined by '+'): the run's folder and table row."""
    train: TrainConfig | None = None
    """The entry's training options (default: the experiment's ``train``)."""

    @property
    def label(self) -> str:
        return self.entry_label or group_label(self.group)

    def train_of(self, cfg: ExperimentConfig) -> TrainConfig:
        return self.train or cfg.train


def plan_runs(cfg: ExperimentConfig) -> list[RunPlan]:
    """Every (compare entry, scenario, seed), scenarios outermost."""
    scenarios = cfg.scenarios or [None]
    entries = [(entry, cfg.train_for(entry)) for entry in cfg.entries()]
    return [RunPlan(entry.strategies, scenario, seed, entry.label, train)
            for scenario in scenarios for entry, train in entries for seed in cfg.seeds]


def run_experiment(cfg: ExperimentConfig, out_dir: Path, *, base_dir: Path | None = None, resume: bool = False,
                   overwrite: bool = False, rerun_stale: bool = False, progress: bool = True,
                   log=print, restart_runs: tuple[str, ...] = ()) -> list[Path]:
    """Execute every planned run; returns the result paths (finished or skipped), in plan order.

    Every run's configs and plugin pairing are checked first (``clft.preflight``): a bad
    entry anywhere stops the experiment before anything trains. Then every planned run is
    classified (``classify_runs``): with stale results and no ``rerun_stale``, or results of
    another config and no ``overwrite``, nothing is trained and a one-line ConfigError (exit 2)
    says what to pass (``clft run`` can verify or keep stale runs first: ``clft.executors.run_sweep``).
    ``restart_runs`` names runs (``<scenario>/<strategies>/seed<k>``) whose
    checkpoint is discarded, so they train from scratch.

    A run that another process holds locked is put aside; after the other runs this
    process waits for each such lock to be released, then takes the run up again: it
    finds the result and skips it, or (the other process failed or was killed) runs it,
    resuming from its checkpoint with ``resume``. So no planned run is left missing.
    """
    check_restart_runs(restart_runs, preflight(cfg, plan_runs(cfg), base_dir))
    planned = classify_runs(cfg, out_dir, base_dir, overwrite)
    with folder_claim(cfg, planned, out_dir, overwrite):
        check_plan(planned, out_dir, overwrite=overwrite, rerun_stale=rerun_stale, log=log)
        options = {"base_dir": base_dir, "resume": resume, "overwrite": overwrite, "rerun_stale": rerun_stale,
                   "progress": progress, "log": log, "restart_runs": tuple(restart_runs)}
        paths: dict[int, Path] = {}
        locked: list[tuple[int, RunPlan]] = []
        for index, plan in enumerate(p.plan for p in planned):
            try:
                paths[index] = run_one(cfg, plan, out_dir, **options)
            except RunLockedError as exc:
                log(f"{plan.label} seed {plan.seed} is running elsewhere ({exc}); waiting for it after the other runs")
                locked.append((index, plan))
        for index, plan in locked:
            paths[index] = _run_when_free(cfg, plan, out_dir, options)
    return [paths[i] for i in sorted(paths)]


@contextmanager
def folder_claim(cfg: ExperimentConfig, planned: list[PlannedRun], out_dir: Path, overwrite: bool):
    """This sweep's claim on ``out_dir`` (``clft.sweep_claims``): refused at once, naming the other sweep,
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


@dataclass
class PlannedRun:
    """A planned run, where its result goes, and what is there now (``clft.staleness``)."""

    plan: RunPlan
    result_path: Path
    config_hash: str
    status: str
    existing: dict | None
    identity: dict | None = None
    """The code identity this run would be made by (``clft.provenance.run_code``)."""
    scenario: str = ""
    setting: str = ""
    """The config up to the seed (``clft.staleness.setting_hash``): what the run's table row holds."""

    @property
    def row(self) -> str:
        return f"{self.scenario}/{self.plan.label}"


def classify_runs(cfg: ExperimentConfig, out_dir: Path, base_dir: Path | None = None,
                  overwrite: bool = False) -> list[PlannedRun]:
    """Every planned run with its status: done / stale / to-do / another config.

    Only configs are resolved (the benchmark is built once per scenario); no stream, no model.
    An unreadable result is a one-line ConfigError, or (``overwrite``) a run to do again.
    """
    built, classified = {}, []
    for plan in plan_runs(cfg):
        setup = resolve_run(cfg, plan, base_dir, built)
        resolved, identity = resolved_config(cfg, plan, setup), run_identity(setup)
        path = result_path(out_dir, resolved["scenarios"][0], plan)
        existing, digest = _readable_result(path, overwrite), config_hash(resolved)
        classified.append(PlannedRun(plan, path, digest, status_of(existing, digest, identity), existing, identity,
                                     resolved["scenarios"][0], setting_hash(resolved)))
    return classified


def checkpoint_identity(digest: str, identity: dict) -> dict:
    """What a run's checkpoints must match to be resumed: the config hash and the code (with plugins)."""
    expected = {"config_hash": digest, "source_sha256": identity["source_sha256"]}
    if identity.get("plugins"):
        expected["plugins"] = identity["plugins"]
    return expected


def _readable_result(path: Path, overwrite: bool) -> dict | None:
    try:
        return read_result(path)
    except ConfigError:
        if overwrite:
            return None  # replaced by this sweep
        raise


def check_plan(planned: list[PlannedRun], out_dir: Path, *, overwrite: bool, rerun_stale: bool, log) -> None:
    """Refuse (one line) results of another config or of other code unless allowed; else log the counts
    when some result exists already."""
    other = [p for p in planned if p.status == OTHER_CONFIG]
    if other and not overwrite:
        raise ConfigError(f"{other[0].result_path} holds a run with another config ({len(other)} such run(s)); "
                          "use another --out or pass --overwrite")
    stale = [p.existing for p in planned if p.status == STALE]
    if stale and not rerun_stale:
        identity = next(p.identity for p in planned if p.status == STALE)
        raise stale_error(stale, len(planned), out_dir, identity or run_code([]))
    if any(p.status != TODO for p in planned):
        log(plan_summary([p.status for p in planned]))
    if stale:
        log(f"re-running {len(stale)} stale run(s) made by other code: {stale_codes(stale)}")


def result_path(out_dir: Path, scenario: str, plan: RunPlan) -> Path:
    return run_paths(out_dir, scenario, plan)[0]


LOCK_POLL_SECONDS = 1.0


def _run_when_free(cfg: ExperimentConfig, plan: RunPlan, out_dir: Path, options: dict) -> Path:
    """``run_one`` once no other process holds the run's lock (retried if it is taken again)."""
    while True:
        try:
            return run_one(cfg, plan, out_dir, **options)
        except RunLockedError as exc:
            options["log"](f"waiting for {exc.path} ({plan.label} seed {plan.seed})")
            RunLock(exc.path).wait(LOCK_POLL_SECONDS)


@dataclass
class RunStatus:
    """Where a planned run stands on disk (``run_status``); ``state`` is one of ``STATES``."""

    STATES = ("done", "to do", "resumable", "other config")
    scenario: str
    state: str
    result_path: Path
    detail: str = ""

    def describe(self) -> str:
        return f"{self.state} ({self.detail})" if self.detail else self.state


def run_status(cfg: ExperimentConfig, plan: RunPlan, out_dir: Path, base_dir: Path | None) -> RunStatus:
    """Classify one planned run without training: done, stale (same config, other code), another
    config (a result that ``run`` would refuse to overwrite), resumable (a checkpoint from a killed
    run) or to do (``clft.staleness``). ``--dry-run`` prints it."""
    setup = setup_run(cfg, plan, base_dir)
    digest = config_hash(resolved_config(cfg, plan, setup))
    path, ckpt_root = run_paths(out_dir, setup.scenario, plan)
    status = status_of(read_result(path), digest, run_identity(setup))
    if status != TODO:
        return RunStatus(setup.scenario, status, path)
    latest = ckpt_root / "LATEST"
    if latest.is_file():
        return RunStatus(setup.scenario, "resumable", path, f"checkpoint {latest.read_text().strip()}")
    return RunStatus(setup.scenario, TODO, path)


hash_config = config_hash  # the name main's callers use


def run_paths(out_dir: Path, scenario: str, plan: RunPlan) -> tuple[Path, Path]:
    """(result JSON, checkpoint folder) of a run."""
    return (safe_join(out_dir, scenario, plan.label, f"seed{plan.seed}.json"),
            safe_join(out_dir / ".checkpoints", scenario, plan.label, f"seed{plan.seed}"))


def run_one(cfg: ExperimentConfig, plan: RunPlan, out_dir: Path, *, base_dir: Path | None, resume: bool,
            overwrite: bool, progress: bool, rerun_stale: bool = False, log=print,
            restart_runs: tuple[str, ...] = ()) -> Path:
    setup = setup_run(cfg, plan, base_dir)  # the stream and resolved configs; no model yet
    resolved = resolved_config(cfg, plan, setup)
    digest = config_hash(resolved)
    path, ckpt_root = run_paths(out_dir, setup.scenario, plan)
    run_key, identity = f"{setup.scenario}/{plan.label}/seed{plan.seed}", run_identity(setup)
    check_no_links(out_dir, path)  # the lock's folders are made next: none may lead out of the folder
    if not overwrite and not _leftovers(path, ckpt_root) and _already_done(path, digest, False, rerun_stale, log,
                                                                           identity):
        _log_finished(cfg, path, out_dir, run_key)
        return path  # finished is final: no lock needed to skip it (so a read-only folder of done runs works)
    with run_lock(path):
        check_no_links(out_dir, path)  # again under the lock: nothing this run writes goes through a link
        check_no_links(out_dir, ckpt_root)
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # a write killed before its rename
            leftover.unlink(missing_ok=True)
        if _already_done(path, digest, overwrite, rerun_stale, log, identity):  # under the lock: no double runs
            _remove_tree(ckpt_root)  # left behind by a kill between the result and the clean-up
            _log_finished(cfg, path, out_dir, run_key)
            return path
        run = build_run(cfg, plan, base_dir, progress, setup)  # the model is loaded only for work to do
        expected = checkpoint_identity(digest, identity)
        if run_key in restart_runs:
            log(f"{run_key}: discarding its checkpoint; training it from scratch (--restart-run)")
            _remove_tree(ckpt_root)
        elif resume:
            resume_run(run, ckpt_root, expected, run_key)
        else:
            check_checkpoint_folder(ckpt_root, run_key)
        run.on_task_end.append(lambda r, task: save_task_checkpoint(r, ckpt_root, expected))
        log(f"[{cfg.name}] {run.scenario} {run.run_id}: training {len(run.tasks) - run.state.next_task} task(s)")
        execute_with_trackers(cfg, run, out_dir / "logs", resolved)
        atomic_write_json(path, with_checksum(result_document(cfg, run, resolved, digest, plan.label)))
        kill_point("run:after-result")
        _remove_tree(ckpt_root)
    return path


def _leftovers(path: Path, ckpt_root: Path) -> bool:
    """Whether a killed process left something to clean up under the run's lock (a temporary result,
    a checkpoint folder)."""
    return os.path.lexists(ckpt_root) or any(path.parent.glob(f".{path.name}.*.tmp"))


def _log_finished(cfg: ExperimentConfig, path: Path, out_dir: Path, run_key: str) -> None:
    """Trackers asked for after the run finished: logged from its result file."""
    if cfg.train.log_with:
        from clft.trackers import log_finished_run

        log_finished_run(cfg.train.log_with, path, out_dir / "logs", run_key)


def execute_with_trackers(cfg: ExperimentConfig, run: Run, logs: Path, resolved: dict) -> None:
    """``execute(run)``, feeding the trackers of ``train.log_with`` (one tracker run per clft run)."""
    if not cfg.train.log_with:
        execute(run)
        return
    from clft.trackers import RunLogger, final_metrics

    logger = RunLogger.open(cfg.train.log_with, cfg.name, f"{run.scenario}/{run.run_id}", logs, resolved)
    run.on_step.append(logger.on_step)
    run.on_task_end.append(logger.on_task_end)
    try:
        execute(run)
    except BaseException:
        logger.finish()
        raise
    logger.finish(final_metrics(run.state.acc, run.state.baseline_acc, run.scenario))


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


def _already_done(path: Path, digest: str, overwrite: bool, rerun_stale: bool, log, identity: dict) -> bool:
    """True when ``path`` holds this run made by this code (``identity``: ``run_identity``); False when it
    must (re)run; else a ConfigError."""
    if overwrite:
        return False
    existing = read_result(path)
    status = status_of(existing, digest, identity)
    if status == DONE:
        log(f"skip {path} (finished, same config, same code)")
        return True
    if status == OTHER_CONFIG:
        raise ConfigError(f"{path} holds a run with another config; use another --out or pass --overwrite")
    if status == STALE and not rerun_stale:  # appeared after the plan was checked (another process)
        raise stale_error([existing], 1, path.parent, identity)
    return False


def check_restart_runs(restart_runs, run_keys: list[str] | None) -> None:
    """Every ``--restart-run`` names a planned run (when the plan's run names are known)."""
    for key in restart_runs:
        if run_keys is not None and key not in run_keys:
            raise ConfigError(f"--restart-run {brief(key)} names no run of this experiment; "
                              f"runs: {brief(', '.join(run_keys))}")


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
