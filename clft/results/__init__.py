"""Results: one JSON file per run, and everything computed from those files only.

- ``files``: ``load_results``; ``check``: the result schema and its checksum (``SCHEMA_VERSION``).
- ``provenance``: which code made a result; ``staleness``: is a result this config's, made by this code?
- ``metrics``: pure functions of an accuracy matrix; ``stats``: confidence intervals, Welch's t-test.
- ``summary``: runs grouped over seeds; ``tables``, ``table_notes``: Markdown / LaTeX / CSV tables.
- ``reference``: our numbers beside a paper's; ``plots``; ``report``: one HTML page; ``trackers``:
  TensorBoard, W&B, MLflow, CSV.

Imports nothing above it (no ``clft.sweep``, ``clft.engine``, ``clft.cli``). ``clft.results.X`` for the
names of the former ``clft/results.py`` keeps working (re-exported below).
"""

from clft.results.check import SCHEMA_VERSION
from clft.results.files import RESULT_NAME, SkippedFileWarning, load_results
from clft.storage.atomic import (
    WriteError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    current_umask,
    mkdtemp_umasked,
    umasked,
)

__all__ = ["RESULT_NAME", "SCHEMA_VERSION", "SkippedFileWarning", "WriteError", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_text", "current_umask", "load_results", "mkdtemp_umasked", "umasked"]
