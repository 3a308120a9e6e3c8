"""Validation streams: evaluate on each task's validation split instead of its test split.

With ``eval_split: val`` (what ``clft tune`` sets) every task's ``test`` is replaced by
its validation data, so the accuracy matrix is a validation matrix and the test split
is never looked at:

* a task with ``val`` (the benchmark publishes one, e.g. CLINC150) is evaluated on it;
* otherwise a stratified hold-out of ``val_fraction`` of the task's training examples
  (``sklearn.model_selection.train_test_split``, seeded by the run seed) becomes the
  validation data and is removed from the training data.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from clft.data.tasks import label_array
from clft.errors import DataError
from clft.types import Task


def holdout_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices), stratified by label, both sorted; deterministic for ``seed``.

    scikit-learn is imported here, not at module level: it costs about 1 s of start-up that a run
    without a hold-out (every ``clft run`` that is not tuning) does not need."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    try:
        kept, held = train_test_split(indices, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as exc:  # a class with one example, or fewer held-out slots than classes
        raise DataError(f"cannot hold out {fraction:.0%} of {len(labels)} training examples per class: {exc}") from None
    return sorted(int(i) for i in kept), sorted(int(i) for i in held)


def validation_task(task: Task, fraction: float, seed: int) -> Task:
    """``task`` with its validation data as ``test`` (its ``val``, else a hold-out carved from ``train``)."""
    if task.val is not None:
        return replace(task, test=task.val, val=None)
    kept, held = holdout_indices(label_array(task.train), fraction, seed)
    return replace(task, train=task.train.select(kept), test=task.train.select(held))


def validation_stream(tasks: list[Task], fraction: float, seed: int) -> list[Task]:
    """:func:`validation_task` for every task of a stream."""
    return [validation_task(task, fraction, seed) for task in tasks]
