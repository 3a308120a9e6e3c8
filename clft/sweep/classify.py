"""Stage 2 of a sweep: classify. Every planned run, its config resolved once, against what its result
file holds: done / stale / to do / another config (``clft.results.staleness``).

A result of the same resolved config made by this code (clft's and the run's plugin distributions:
``clft.results.provenance.run_code``) is skipped; one made by other code is *stale* and re-run only with
``rerun_stale`` (or verified or kept first by ``clft.sweep.stale_runs``); a result with another config
is never overwritten unless ``overwrite`` is set (``check_plan``). ``already_done`` asks the same
question again under a run's lock, just before it would train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clft.config.experiment import ExperimentConfig
from clft.errors import ConfigError
from clft.results.provenance import run_code
from clft.results.staleness import (
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
from clft.sweep.build import resolve_run, resolved_config, setup_run
from clft.sweep.plan import RunPlan, plan_runs, result_path, run_paths
from clft.sweep.record import run_identity


@dataclass
class PlannedRun:
    """A planned run, where its result goes, and what is there now (``clft.results.staleness``)."""

    plan: RunPlan
    result_path: Path
    config_hash: str
    status: str
    existing: dict | None
    identity: dict | None = None
    """The code identity this run would be made by (``clft.results.provenance.run_code``)."""
    scenario: str = ""
    setting: str = ""
    """The config up to the seed (``clft.results.staleness.setting_hash``): what the run's table row holds."""
    resolved: dict | None = None
    """The experiment as this run runs it (``clft.sweep.build.resolved_config``), resolved here once: the
    stages after this one (execute, record) take it from here."""

    @property
    def row(self) -> str:
        return f"{self.scenario}/{self.plan.label}"


def classify_runs(cfg: ExperimentConfig, out_dir: Path, base_dir: Path | None = None,
                  overwrite: bool = False, plans: list[RunPlan] | None = None) -> list[PlannedRun]:
    """Every planned run (``plans``, default ``plan_runs(cfg)``) with its resolved config and its status:
    done / stale / to-do / another config.

    Only configs are resolved (the benchmark is built once per scenario); no stream, no model.
    An unreadable result is a one-line ConfigError, or (``overwrite``) a run to do again.
    """
    built, classified = {}, []
    for plan in plan_runs(cfg) if plans is None else plans:
        setup = resolve_run(cfg, plan, base_dir, built)
        resolved, identity = resolved_config(cfg, plan, setup), run_identity(setup)
        path = result_path(out_dir, resolved["scenarios"][0], plan)
        existing, digest = _readable_result(path, overwrite), config_hash(resolved)
        classified.append(PlannedRun(plan, path, digest, status_of(existing, digest, identity), existing, identity,
                                     resolved["scenarios"][0], setting_hash(resolved), resolved))
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
    run) or to do (``clft.results.staleness``). ``--dry-run`` prints it."""
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


def already_done(path: Path, digest: str, overwrite: bool, rerun_stale: bool, log, identity: dict) -> bool:
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
