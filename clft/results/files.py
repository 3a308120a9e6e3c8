"""Results: one JSON file per run (schema in docs/architecture.md, checked by ``clft.results.check``),
written atomically (``clft.storage.atomic``).

Tables and plots are computed from these files only (``load_results``).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from clft.errors import ClftWarning, DataError
from clft.results.check import check_result, read_result

RESULT_NAME = re.compile(r"seed\d+\.json")


class SkippedFileWarning(ClftWarning):
    """A ``.json`` file in a results folder that is not a run result (``load_results`` skips it)."""


def load_results(directory: str | Path) -> list[dict]:
    """Every run result under ``directory``, verified (``clft.results.check``), sorted by path.

    A result is a ``seed<k>.json`` file (a malformed one is a one-line DataError naming it), or
    any other ``.json`` file holding ``schema_version``. Another ``.json`` that is not a result
    (notes that are not JSON, a folder named ``old.json``, a link to nothing) is skipped with a
    ``SkippedFileWarning``. Hidden files are skipped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"results directory not found: {directory}")
    runs = []
    for path in sorted(directory.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        data = _load_one(path)
        if data is not None:
            data["_path"] = str(path)
            runs.append(data)
    return runs


def _load_one(path: Path) -> dict | None:
    """The verified result at ``path``; None (with a warning) for a ``.json`` that is not a result."""
    if RESULT_NAME.fullmatch(path.name):
        return read_result(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not JSON"
        warnings.warn(f"skipped {path}: not a run result ({reason})", SkippedFileWarning, stacklevel=3)
        return None
    if not (isinstance(data, dict) and "schema_version" in data):
        return None  # a JSON file of another kind (tune.json, a tracker's log): not a result, silently
    check_result(data, str(path))
    return data
