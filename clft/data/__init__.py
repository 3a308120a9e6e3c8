"""Data: what benchmarks use to assemble tasks, and what the loop uses to batch them.

- ``tasks``: the data directory, task assembly (``make_task``), label checks, per-class subsampling;
  re-exported here: ``from clft.data import make_task`` is the plugin-facing import.
- ``columns``: a dataset's columns extracted once, so a batch is a slice; ``sampling``: batch index lists.
- ``stream_cache``: built task streams cached on disk; ``holdout``: validation splits held out of train.

Imports only the plugin API (``clft.types``, ``clft.errors``), ``clft.config`` and ``clft.storage``.
"""

_EXPORTS = {  # name -> the module that defines it
    "LocalDataConfig": "clft.data.tasks",
    "check_disjoint_classes": "clft.data.tasks",
    "check_labels": "clft.data.tasks",
    "data_dir": "clft.data.tasks",
    "label_array": "clft.data.tasks",
    "label_phrase": "clft.data.tasks",
    "make_task": "clft.data.tasks",
    "require_file": "clft.data.tasks",
    "subsample_per_class": "clft.data.tasks",
    "with_task_column": "clft.data.tasks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The re-exported names, imported on first use: importing one module of this package imports no other."""
    if _EXPORTS.get(name) == "clft.data.tasks":
        from clft.data import tasks as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
