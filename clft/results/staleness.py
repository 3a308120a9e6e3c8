"""Is a planned run already done? done / stale / to-do / another config.

A planned run's result file may hold:

* nothing: **to-do**;
* a run of another resolved config: **another config** (never overwritten without ``--overwrite``);
* a run of the same config made by this code (the same ``code.source_sha256`` and the same
  plugin distributions, ``code.plugins``: ``clft.results.provenance``): **done**, skipped;
* a run of the same config made by other code (clft's or a plugin's), or one that records no
  code identity (results written before clft recorded it): **stale**. ``clft run`` refuses to
  go on until told what to do with them: ``--rerun-stale`` re-runs them, ``--verify-stale K``
  re-runs K of them and keeps them all if those match bit for bit (``clft.sweep.stale_runs``),
  ``--accept-stale`` keeps them as they are, recorded in each result (``stale_accepted``) and
  flagged under tables. A result that this code accepted is done for this code.

The config is compared by hashing the stored ``config`` again (:func:`config_hash`),
so a result stays comparable when the hash's definition changes. ``published`` and
``description`` are not part of the hash: adding the paper's numbers to an experiment
does not invalidate its runs.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from clft.config.yaml_safe import brief
from clft.errors import ConfigError, DataError
from clft.results.check import read_result as verified_result
from clft.results.provenance import describe, plugins_of

DONE, STALE, TODO, OTHER_CONFIG = "done", "stale", "to do", "other config"
#: Keys of a resolved config that do not change what a run computes.
NOT_HASHED = ("published", "description")


class StaleResultsError(ConfigError):
    """Finished results were made by other code and ``--rerun-stale`` was not given."""


def config_hash(resolved: dict) -> str:
    """First 16 hex digits of sha256 over the resolved config (sorted-key JSON) without :data:`NOT_HASHED`."""
    kept = {k: v for k, v in resolved.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


#: Keys that differ between the seeds of one setting (or only name it): left out of :func:`setting_hash`.
PER_SEED = ("seeds", "name")


def setting_hash(resolved: dict) -> str:
    """:func:`config_hash` without :data:`PER_SEED`: equal for every seed of one configuration, so the runs a
    table row (or a results folder's scenario and label) may hold together all share it."""
    return config_hash({k: v for k, v in resolved.items() if k not in PER_SEED})


def config_differences(a: dict, b: dict, limit: int = 3) -> list[str]:
    """Up to ``limit`` dotted keys whose values differ between two resolved configs, as ``key a vs b``
    (:data:`PER_SEED` and :data:`NOT_HASHED` left out)."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    keys = sorted(k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k) != flat_b.get(k)
                  and k.split(".")[0] not in PER_SEED + NOT_HASHED)
    return [f"{k} {brief(flat_a.get(k))} vs {brief(flat_b.get(k))}" for k in keys[:limit]]


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    if isinstance(node, list) and any(isinstance(item, (dict, list)) for item in node):
        return {k: v for i, value in enumerate(node) for k, v in _flatten(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): node}


def read_result(path: Path) -> dict | None:
    """The verified result at ``path`` (``clft.results.check``), None when absent; an unreadable or
    malformed file is a one-line ConfigError."""
    if not path.exists():
        return None
    try:
        return verified_result(path)
    except DataError as exc:
        raise ConfigError(f"{exc}; move it away or pass --overwrite") from None


def source_of(result: dict) -> str | None:
    """The source hash of the code that made ``result`` (None: it records none)."""
    code = result.get("code")
    return code.get("source_sha256") if isinstance(code, dict) else None


def same_code(recorded: dict | None, identity: dict) -> bool:
    """Whether a recorded code identity is ``identity``: the same clft source hash and the same plugin
    distributions (name and sha256; a record without ``plugins`` used none)."""
    if not isinstance(recorded, dict) or recorded.get("source_sha256") != identity["source_sha256"]:
        return False
    return _plugin_key(recorded) == _plugin_key(identity)


def _plugin_key(identity: dict) -> list[tuple]:
    return sorted((str(p.get("name")), str(p.get("sha256"))) for p in plugins_of(identity))


def status_of(result: dict | None, planned_hash: str, identity: dict) -> str:
    """DONE, STALE, TODO or OTHER_CONFIG for a planned run (see the module docstring)."""
    if result is None:
        return TODO
    config = result.get("config")
    if not isinstance(config, dict) or config_hash(config) != planned_hash:
        return OTHER_CONFIG
    accepted = result.get("stale_accepted")
    if same_code(result.get("code"), identity) or (isinstance(accepted, dict) and same_code(accepted.get("code"),
                                                                                            identity)):
        return DONE
    return STALE


def plan_summary(statuses: list[str]) -> str:
    """``16 planned runs: 10 done, 2 stale, 4 to do``."""
    counts = Counter(statuses)
    parts = [f"{counts[s]} {s.replace('-', ' ')}" for s in (DONE, STALE, TODO, OTHER_CONFIG) if counts[s]]
    return f"{len(statuses)} planned run(s): " + ", ".join(parts)


def stale_codes(results: list[dict]) -> str:
    """Which code made the stale results: ``a1b2c3d4 (commit 1234567): 3 runs; no code identity: 1 run``."""
    counts = Counter(describe(result.get("code")) for result in results)
    return "; ".join(f"{name}: {n} run{'s' if n != 1 else ''}" for name, n in counts.most_common())


def stale_error(results: list[dict], total: int, out_dir: Path, identity: dict) -> StaleResultsError:
    """The one line ``clft run`` exits with (status 2) when stale results exist and ``--rerun-stale`` is absent."""
    return StaleResultsError(
        f"{len(results)} of {total} runs in {out_dir} were made by other code ({stale_codes(results)}; "
        f"this code: {describe(identity)}); nothing was trained: pass --rerun-stale to re-run them, "
        "--verify-stale [K] to re-run K of them (default 2) and keep all if those match bit for bit, "
        "--accept-stale to keep them as they are, or --out another folder")
