"""Verify a run's result JSON before anything reads numbers from it.

``check_result`` is the schema every reader relies on (``clft table``, ``clft plot``,
the sweep deciding whether a run is finished): a mapping with ``schema_version``, a
T×T ``acc`` of finite numbers in [0, 1], T ``tasks`` (mappings), an optional
``baseline_acc`` of T such numbers, an integer ``seed``, a string ``scenario``.
Anything else is a one-line DataError naming the file.

A run made with ``train.eval_scope: seen`` (its ``config``) may hold null cells above the diagonal of
``acc`` (tasks not yet trained, not evaluated) and null ``baseline_acc`` entries; any other null is an
error.

``checksum`` is ``"sha256:" + sha256(canonical JSON of the document without it)``,
canonical meaning ``json.dumps(sort_keys=True, separators=(",", ":"))``: so a
reformatted file still verifies, while a changed number does not. A file without
a checksum (written before it existed) is accepted on its schema alone, unless it
records a ``code`` identity: every clft release that writes ``code``
(``clft.results.provenance``) also writes the checksum, so such a file lost its checksum
after it was written and is damaged.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from clft.config.yaml_safe import brief
from clft.errors import DataError

SCHEMA_VERSION = 1
CHECKSUM_KEY = "checksum"
CODE_KEY = "code"
"""The code identity (``clft.results.provenance``): clft has written it only beside a checksum."""


def canonical_digest(document: dict) -> str:
    body = {k: v for k, v in document.items() if k != CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def with_checksum(document: dict) -> dict:
    """``document`` with its ``checksum`` added (last key)."""
    return {**document, CHECKSUM_KEY: canonical_digest(document)}


def read_result(path: Path) -> dict:
    """The verified result at ``path`` (DataError: unreadable, not JSON, wrong schema, changed)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else brief(str(exc))
        raise DataError(f"result file {path} is unreadable: {reason}") from None
    check_result(data, str(path))
    return data


def check_result(data: Any, where: str) -> None:
    """Raise DataError naming ``where`` and the first thing wrong with the result ``data``."""
    if not isinstance(data, dict):
        raise DataError(f"result file {where} is not a run result (a JSON {type(data).__name__}, not an object)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise DataError(f"result file {where}: schema_version {brief(version)} is not {SCHEMA_VERSION}")
    _check_fields(data, where)
    tasks, seen = data["tasks"], eval_scope(data) == "seen"
    _check_matrix(data["acc"], len(tasks), where, seen)
    if data.get("baseline_acc") is not None:
        _check_row(data["baseline_acc"], len(tasks), f"{where}: baseline_acc", 0 if seen else len(tasks))
    if CHECKSUM_KEY in data and data[CHECKSUM_KEY] != canonical_digest(data):
        raise DataError(f"result file {where} was changed after it was written (its checksum does not match)")
    if CHECKSUM_KEY not in data and data.get(CODE_KEY) is not None:
        raise DataError(f"result file {where} is damaged: it records the code that made it, and that code always "
                        f"adds a {CHECKSUM_KEY!r}, which it lacks (removed after it was written)")


FIELDS = {"tasks": list, "acc": list, "seed": int, "scenario": str}
OPTIONAL = {"strategy": str, "run": str, "experiment": str, "config": dict, "config_hash": str, "cost": dict,
            "extra": dict, "env": dict, CHECKSUM_KEY: str}


def _check_fields(data: dict, where: str) -> None:
    for key in FIELDS:
        if key not in data:
            raise DataError(f"result file {where} lacks {key!r}")
    for key, kind in {**FIELDS, **OPTIONAL}.items():
        value = data.get(key)
        if key in data and (not isinstance(value, kind) or isinstance(value, bool)):
            raise DataError(f"result file {where}: {key} must be a {kind.__name__}, got {brief(value)}")
    if not data["tasks"] or not all(isinstance(t, dict) and ("name" in t or "id" in t) for t in data["tasks"]):
        raise DataError(f"result file {where}: tasks must be a non-empty list of mappings with a name")
    seconds = (data.get("cost") or {}).get("train_seconds", [])
    if not isinstance(seconds, list) or not all(_is_finite(s) for s in seconds):
        raise DataError(f"result file {where}: cost.train_seconds must be a list of numbers")


def eval_scope(data: dict) -> str:
    """The run's ``train.eval_scope`` as its ``config`` records it; ``full`` when it records none."""
    train = data.get("config", {}).get("train") if isinstance(data.get("config"), dict) else None
    return train.get("eval_scope", "full") if isinstance(train, dict) else "full"


def _check_matrix(acc: list, n_tasks: int, where: str, seen: bool) -> None:
    if len(acc) != n_tasks:
        raise DataError(f"result file {where}: acc has {len(acc)} rows for {n_tasks} tasks")
    for i, row in enumerate(acc):
        _check_row(row, n_tasks, f"{where}: acc[{i}]", i + 1 if seen else n_tasks)


def _check_row(row: Any, n_tasks: int, where: str, required: int) -> None:
    """``row`` is ``n_tasks`` accuracies; from index ``required`` on, null (not evaluated) is allowed too."""
    if not isinstance(row, list) or len(row) != n_tasks:
        raise DataError(f"result file {where} must be a list of {n_tasks} accuracies, got {brief(row)}")
    for j, value in enumerate(row):
        if value is None and j >= required:
            continue
        if not (_is_finite(value) and 0.0 <= value <= 1.0):
            nulls = "" if value is not None else " (null only above the diagonal of a train.eval_scope: seen run)"
            raise DataError(f"result file {where} holds {brief(value)}; accuracies are finite numbers in [0, 1]"
                            + nulls)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
