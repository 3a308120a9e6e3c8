"""Stale runs after an upgrade: verify them by re-running a sample, or keep them as they are.

A finished run is *stale* when it was made by other code (``clft.results.staleness``): a comment
added to ``clft/cli.py`` makes every finished run of a sweep stale. ``clft run`` then
offers, besides re-training them all (``--rerun-stale``):

``--verify-stale [K]`` (``verify_stale``)
    From the stale runs made by each older code identity, K are drawn (``spread_sample``:
    seeded, one per compare entry and scenario before a second of any; all of them when
    there are at most K) and re-run with this code
    into ``<out>/.verify-stale/`` (removed afterwards). When every re-run gives the stored
    ``acc`` matrix bit for bit (and the same ``baseline_acc`` and ``general`` scores, where
    stored), every stale run of those code identities is re-stamped as made by this code:
    its ``code`` becomes this code's and ``stale_verification`` records the previous code,
    the runs re-run, how many they stood for, K and when. Otherwise nothing is re-stamped
    and the sweep stops with one line naming the first run that differs and where.
    K is drawn per older code identity because a sample of one code's runs says nothing
    about another's.

``--accept-stale`` (``accept_stale``)
    Every stale run is kept as it is; ``stale_accepted`` records this code and when, so
    the run is done for this code (``clft.results.staleness.status_of``), its ``code`` still names
    the code that made it, and ``clft table`` flags it under the table.

Both rewrite a result (with a new checksum: ``clft.results.check``) under the run's lock.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from clft import console
from clft.config.experiment import ExperimentConfig
from clft.config.yaml_safe import brief
from clft.errors import ConfigError
from clft.results.check import CHECKSUM_KEY, with_checksum
from clft.results.provenance import describe
from clft.results.staleness import DONE, OTHER_CONFIG, STALE, read_result
from clft.storage.atomic import atomic_write_json
from clft.sweep.classify import PlannedRun
from clft.sweep.run import run_lock, run_one

DEFAULT_VERIFY = 2
"""K of ``--verify-stale`` without a number."""
VERIFY_FOLDER = ".verify-stale"
#: The numbers of a result that a verifying re-run must reproduce exactly.
COMPARED = ("acc", "baseline_acc", "general")


class StaleMismatchError(ConfigError):
    """A re-run of a stale run gave other numbers than its stored result (``--verify-stale``)."""


def settle_stale(cfg: ExperimentConfig, planned: list[PlannedRun], out_dir: Path, base_dir: Path | None, *,
                 verify: int | None = None, accept: bool = False, rerun: bool = False, overwrite: bool = False,
                 log=print) -> list[PlannedRun]:
    """``planned`` with its stale runs verified (``verify``: K) or accepted (``accept``) and now done;
    unchanged when neither is asked for, nothing is stale, or results of another config are there
    without ``overwrite`` (``clft.sweep.classify.check_plan`` refuses those first). ``rerun`` (``--rerun-stale``)
    excludes both."""
    chosen = [flag for flag, on in (("--rerun-stale", rerun), ("--verify-stale", verify is not None),
                                    ("--accept-stale", accept)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} exclude each other; pass one of them")
    if verify is not None and verify < 1:
        raise ConfigError(f"--verify-stale K must be >= 1, got {verify}")
    stale = [p for p in planned if p.status == STALE]
    other_config = any(p.status == OTHER_CONFIG for p in planned) and not overwrite
    if not stale or (verify is None and not accept) or other_config:
        return planned
    if verify is not None:
        verify_stale(cfg, stale, out_dir, base_dir, verify, log)
    else:
        accept_stale(stale, log)
    return [replace(p, status=DONE, existing=read_result(p.result_path)) if p.status == STALE else p
            for p in planned]


def run_key(planned: PlannedRun) -> str:
    """``<scenario>/<label>/seed<k>``: the run as ``--restart-run`` and the progress lines name it."""
    return f"{planned.result_path.parent.parent.name}/{planned.plan.label}/seed{planned.plan.seed}"


def by_old_code(stale: list[PlannedRun]) -> dict[str, list[PlannedRun]]:
    """The stale runs grouped by the code that made them (its canonical JSON), in plan order."""
    groups: dict[str, list[PlannedRun]] = {}
    for planned in stale:
        groups.setdefault(json.dumps(planned.existing.get("code"), sort_keys=True), []).append(planned)
    return groups


def verify_stale(cfg: ExperimentConfig, stale: list[PlannedRun], out_dir: Path, base_dir: Path | None, k: int,
                 log=print) -> None:
    """Re-run K stale runs of each older code identity; re-stamp them all when each matches, else raise."""
    scratch = Path(out_dir) / VERIFY_FOLDER
    rng = random.Random(0)
    try:
        for group in by_old_code(stale).values():
            chosen = spread_sample(group, k, rng)
            log(f"--verify-stale: re-running {len(chosen)} of {len(group)} stale run(s) made by "
                f"{describe(group[0].existing.get('code'))}: {', '.join(run_key(p) for p in chosen)}")
            for planned in chosen:
                _check_rerun(cfg, planned, scratch, base_dir)
            record = {"verified_at": _now(), "previous_code": group[0].existing.get("code"),
                      "rerun": [run_key(p) for p in chosen], "stale_runs": len(group), "k": k}
            for planned in group:
                _restamp(planned, {"code": planned.identity, "stale_verification": record})
            log(f"--verify-stale: identical matrices; {len(group)} run(s) re-stamped as made by "
                f"{describe(group[0].identity)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def spread_sample(group: list[PlannedRun], k: int, rng: random.Random) -> list[PlannedRun]:
    """K runs of ``group`` in plan order, drawn in ``rng``'s order with a run of an unsampled
    (scenario, entry) preferred: two samples of a 24-run quickstart are two different rows."""
    order = rng.sample(range(len(group)), len(group))
    chosen: list[int] = []
    seen: set[tuple] = set()
    for fresh_only in (True, False):
        for i in order:
            key = (group[i].result_path.parent.parent.name, group[i].plan.label)
            if len(chosen) < k and i not in chosen and (key not in seen or not fresh_only):
                chosen.append(i)
                seen.add(key)
    return [group[i] for i in sorted(chosen)]


def _check_rerun(cfg: ExperimentConfig, planned: PlannedRun, scratch: Path, base_dir: Path | None) -> None:
    """Re-run ``planned`` into ``scratch``; StaleMismatchError naming it unless its numbers are the stored ones."""
    path = run_one(cfg, planned, scratch, base_dir=base_dir, resume=False, overwrite=True, progress=False,
                   log=console.detail)
    fresh = json.loads(path.read_text(encoding="utf-8"))
    difference = first_difference(planned.existing, fresh)
    if difference is not None:
        raise StaleMismatchError(
            f"--verify-stale: {run_key(planned)} differs from its stored result {planned.result_path} "
            f"({difference}; stored by {describe(planned.existing.get('code'))}); nothing was re-stamped: "
            "re-run the stale runs with --rerun-stale, or keep them with --accept-stale")


def first_difference(stored: dict, fresh: dict) -> str | None:
    """Where ``fresh``'s numbers first differ from ``stored``'s (``acc[2][1]: 0.8125 stored, 0.813 now``);
    None when every key of :data:`COMPARED` is identical."""
    for key in COMPARED:
        if stored.get(key) != fresh.get(key):
            return f"{key}{_first_cell(stored.get(key), fresh.get(key))}"
    return None


def _first_cell(old, new, where: str = "") -> str:
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
        return _first_cell(old[i], new[i], f"{where}[{i}]")
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        key = next(k for k in old if old[k] != new[k])
        return _first_cell(old[key], new[key], f"{where}.{key}")
    return f"{where}: {brief(old)} stored, {brief(new)} now"


def accept_stale(stale: list[PlannedRun], log=print) -> None:
    """Keep every stale run as it is, recording in each that (and by which code) it was accepted."""
    for planned in stale:
        _restamp(planned, {"stale_accepted": {"accepted_at": _now(), "code": planned.identity}})
    log(f"--accept-stale: {len(stale)} stale run(s) kept as made by other code; tables flag them")


def _restamp(planned: PlannedRun, changes: dict) -> None:
    """Rewrite the run's result with ``changes`` (under its lock), if it still holds the stale result read."""
    with run_lock(planned.result_path):
        current = read_result(planned.result_path)
        if current is None or current.get("code") != planned.existing.get("code"):
            raise ConfigError(f"{planned.result_path} changed while the sweep settled its stale runs; run again")
        document = {k: v for k, v in current.items() if k != CHECKSUM_KEY}
        document.update(changes)
        atomic_write_json(planned.result_path, with_checksum(document))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
