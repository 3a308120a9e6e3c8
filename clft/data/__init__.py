"""Data: what benchmarks use to assemble tasks, and what the loop uses to batch them.

- ``tasks``: the data directory, task assembly (``make_task``), label checks, per-class subsampling;
  re-exported here: ``from clft.data import make_task`` is the plugin-facing import.
- ``columns``: a dataset's columns extracted once, so a batch is a slice; ``sampling``: batch index lists.
- ``stream_cache``: built task streams cached on disk; ``holdout``: validation splits held out of train.

Imports only the plugin API (``clft.types``, ``clft.errors``), ``clft.config`` and ``clft.storage``.
"""

from clft.data.tasks import (
    LocalDataConfig,
    check_disjoint_classes,
    check_labels,
    data_dir,
    label_array,
    label_phrase,
    make_task,
    require_file,
    subsample_per_class,
    with_task_column,
)

__all__ = ["LocalDataConfig", "check_disjoint_classes", "check_labels", "data_dir", "label_array", "label_phrase",
           "make_task", "require_file", "subsample_per_class", "with_task_column"]
