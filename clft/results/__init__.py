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

_EXPORTS = {  # name -> the module that defines it
    "RESULT_NAME": "clft.results.files",
    "SCHEMA_VERSION": "clft.results.check",
    "SkippedFileWarning": "clft.results.files",
    "WriteError": "clft.storage.atomic",
    "atomic_write_bytes": "clft.storage.atomic",
    "atomic_write_json": "clft.storage.atomic",
    "atomic_write_text": "clft.storage.atomic",
    "current_umask": "clft.storage.atomic",
    "load_results": "clft.results.files",
    "mkdtemp_umasked": "clft.storage.atomic",
    "umasked": "clft.storage.atomic",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The re-exported names, imported on first use: importing one module of this package imports no other."""
    if _EXPORTS.get(name) == "clft.results.check":
        from clft.results import check as module
    elif _EXPORTS.get(name) == "clft.results.files":
        from clft.results import files as module
    elif _EXPORTS.get(name) == "clft.storage.atomic":
        from clft.storage import atomic as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
