"""Split and permuted streams over fixed-length vectors (images as pixel rows), shared by digits and MNIST.

Inputs are ``(x, y)`` numpy pairs per split: ``x`` [N, D] float32 in [0, 1], ``y``
[N] int64 class ids. Examples get the columns ``x`` (D floats) and ``label`` (plus
``task``, added by ``clft.data.make_task``); the Arrow columns are built straight
from numpy, so a 60,000-image split costs a fraction of a second.

- split: the classes in order (or a seed-shuffled order) cut into ``n_tasks`` groups
  of equal size. In class-IL and task-IL ``label`` is the class id; in domain-IL it is
  the class's position within its task (``first``/``second`` for pairs), so all tasks
  share the same labels.
- permuted (Goodfellow et al. 2013): domain-IL, every task holds all classes with its
  own fixed pixel permutation; task 0 is the identity, task t > 0 the t-th draw of a
  generator seeded with ``permutation_seed`` (adding tasks never changes earlier ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np
import pyarrow as pa

from clft.data import check_disjoint_classes, make_task
from clft.types import Task

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
Split = tuple[np.ndarray, np.ndarray]  # (x [N, D] float32, y [N] int64)


def vectors_dataset(x: np.ndarray, labels: np.ndarray) -> datasets.Dataset:
    """A Dataset with ``x`` (list of float32) and ``label`` (int64), without Python lists in between."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    column = pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1)))
    return datasets.Dataset(pa.table({"x": column, "label": pa.array(np.asarray(labels, dtype=np.int64))}))


def split_label_names(scenario: str, class_names: Sequence[str], per_task: int) -> list[str]:
    """Class names (task-il, class-il) or positions within a task (domain-il)."""
    return list(ORDINALS[:per_task]) if scenario == "domain-il" else list(class_names)


def class_order(n_classes: int, shuffle: bool, seed: int) -> list[int]:
    """0..n-1, or a permutation drawn from ``seed``."""
    if not shuffle:
        return list(range(n_classes))
    return np.random.default_rng(seed).permutation(n_classes).tolist()


def split_tasks(train: Split, test: Split, order: list[int], n_tasks: int, scenario: str, prefix: str) -> list[Task]:
    """``n_tasks`` tasks of ``len(order) // n_tasks`` classes each, in ``order``; named ``<prefix>-0-1``."""
    per_task = len(order) // n_tasks
    stream = []
    for task_id in range(n_tasks):
        group = order[task_id * per_task : (task_id + 1) * per_task]
        splits = [_group_split(x, y, group, scenario) for x, y in (train, test)]
        classes = range(per_task) if scenario == "domain-il" else group
        stream.append(make_task(task_id, f"{prefix}-" + "-".join(map(str, group)), classes, *splits))
    check_disjoint_classes(stream, scenario)
    return stream


def _group_split(x: np.ndarray, y: np.ndarray, group: list[int], scenario: str) -> datasets.Dataset:
    rows = np.flatnonzero(np.isin(y, group))
    labels = y[rows]
    if scenario == "domain-il":
        position = np.full(int(max(group)) + 1, -1, dtype=np.int64)
        position[group] = np.arange(len(group))
        labels = position[labels]
    return vectors_dataset(x[rows], labels)


def pixel_permutations(n_pixels: int, n_tasks: int, seed: int) -> list[np.ndarray]:
    """Task t's pixel permutation: identity for t = 0, else the t-th draw of a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    return [np.arange(n_pixels)] + [rng.permutation(n_pixels) for _ in range(n_tasks - 1)]


def permuted_tasks(train: Split, test: Split, perms: list[np.ndarray], n_classes: int, prefix: str) -> list[Task]:
    """One domain-IL task per permutation, all classes in each; task 0 is named ``prefix``."""
    stream = []
    for task_id, perm in enumerate(perms):
        splits = [vectors_dataset(x[:, perm], y) for x, y in (train, test)]
        name = prefix if task_id == 0 else f"{prefix}-permutation-{task_id}"
        stream.append(make_task(task_id, name, range(n_classes), *splits))
    return stream


MAX_PERMUTED_TASKS = 1000


def check_permuted(n_tasks: int, permutation_seed: int) -> None:
    """A permuted stream's task count in [1, 1000] and its seed in numpy's range [0, 2^32)."""
    if not 1 <= n_tasks <= MAX_PERMUTED_TASKS:
        raise ValueError(f"n_tasks must lie in [1, {MAX_PERMUTED_TASKS}], got {n_tasks}")
    if not 0 <= permutation_seed < 2**32:
        raise ValueError(f"permutation_seed must lie in [0, 2^32), got {permutation_seed}")
