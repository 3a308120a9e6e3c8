"""Shared data helpers: the data directory, task assembly, per-class subsampling.

Benchmarks read local files from ``data_dir()``: the ``data_dir`` option of the
benchmark if given, else the ``CLFT_DATA_DIR`` environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clft.errors import DataError
from clft.types import Task


@dataclass
class LocalDataConfig:
    """Options every benchmark reading local files has (each benchmark's ``Config`` extends it)."""

    data_dir: str | None = None
    """Folder holding the dataset folders (e.g. ``clinc150/``, ``mnist/``); default: ``$CLFT_DATA_DIR``."""
    train_per_class: int | None = None
    """Keep at most this many training examples per class (chosen by the run seed); None = all."""
    test_per_class: int | None = None
    """Keep at most this many test (and validation) examples per class (by the run seed); None = all."""

    def __post_init__(self) -> None:
        for key in ("train_per_class", "test_per_class"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"{key} must be >= 1 or null, got {value}")


def label_phrase(name: str) -> str:
    """A label name as words: the part after the last ``/``, ``_`` as a space
    (``banking/freeze_account`` -> ``freeze account``); the name itself if that leaves nothing."""
    return name.rsplit("/", 1)[-1].replace("_", " ").strip() or name


def data_dir(explicit: str | None = None) -> Path | None:
    """The local data root: ``explicit`` or ``$CLFT_DATA_DIR``; None when neither is set."""
    value = explicit or os.environ.get("CLFT_DATA_DIR")
    return Path(value).expanduser() if value else None


def require_file(path: Path, what: str, source: str) -> Path:
    """Return ``path`` or raise DataError naming the expected file and where to get it."""
    if not path.is_file():
        raise DataError(f"missing data file {path} ({what}); get it from {source} and set CLFT_DATA_DIR")
    return path


def with_task_column(dataset, task_id: int):
    """Add (or overwrite) the integer column ``task`` with ``task_id``."""
    if "task" in dataset.column_names:
        dataset = dataset.remove_columns("task")
    return dataset.add_column("task", [task_id] * len(dataset))


def make_task(task_id: int, name: str, classes: Sequence[int], train, test, val=None) -> Task:
    """Build a Task, checking it is non-empty and its labels lie in ``classes``."""
    classes = tuple(int(c) for c in classes)
    for split_name, split in (("train", train), ("test", test), ("val", val)):
        if split is None:
            continue
        if len(split) == 0:
            raise DataError(f"task {task_id} ({name!r}) has an empty {split_name} split")
        stray = set(split.unique("label")) - set(classes)
        if stray:
            raise DataError(
                f"task {task_id} ({name!r}) {split_name} split has labels {sorted(stray)[:5]} "
                f"outside its classes {list(classes)[:10]}"
            )
    val = with_task_column(val, task_id) if val is not None else None
    return Task(task_id, name, classes, with_task_column(train, task_id), with_task_column(test, task_id), val)


def check_labels(labels: Sequence[int], num_classes: int, where: str) -> None:
    """Raise DataError when a label lies outside ``range(num_classes)``."""
    array = np.asarray(labels)
    bad = array[(array < 0) | (array >= num_classes)]
    if bad.size:
        raise DataError(f"{where}: label {int(bad[0])} outside the label set 0..{num_classes - 1}")


def label_array(dataset) -> np.ndarray:
    """The ``label`` column as a numpy array (fast: one Arrow read, not row by row)."""
    if hasattr(dataset, "with_format"):
        return np.asarray(dataset.with_format("numpy")["label"])
    return np.asarray(dataset["label"])


def subsample_per_class(dataset, per_class: int | None, seed: int):
    """Keep at most ``per_class`` examples of each label, chosen by ``seed`` (order kept)."""
    if per_class is None or len(dataset) == 0:
        return dataset
    labels = label_array(dataset)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        keep.extend(rng.permutation(idx)[:per_class].tolist())
    return dataset.select(sorted(keep))


def check_disjoint_classes(tasks: Sequence[Task], scenario: str) -> None:
    """In class-IL and task-IL every class belongs to one task only."""
    if scenario == "domain-il":
        return
    owner: dict[int, int] = {}
    for task in tasks:
        for c in task.classes:
            if c in owner:
                raise DataError(
                    f"class {c} appears in tasks {owner[c]} and {task.id}; a {scenario} split needs disjoint classes"
                )
            owner[c] = task.id
