"""Tiny offline streams over scikit-learn's bundled 8x8 digits (1,797 images, no network).

Both benchmarks share one FIXED stratified train/test split (``SPLIT_SEED``,
independent of the run seed), so every seed and every strategy is evaluated on
the same test images. Examples have the columns ``x`` (64 floats, pixel/16,
in [0, 1]) and ``label`` (plus ``task``, added by ``clft.data.make_task``). The
splitting is ``clft.benchmarks.vector_streams``, shared with MNIST.

- ``split-digits``: the ten digits cut into ``n_tasks`` groups of equal size,
  (0, 1), (2, 3), ... by default, or a seed-shuffled order with
  ``shuffle_classes``. In class-IL and task-IL ``label`` is the digit (global
  ids 0..9); in domain-IL it is the digit's position within its task
  (``first``/``second`` for pairs), so all tasks share the same labels.
- ``permuted-digits`` (the small cousin of permuted MNIST, Goodfellow et al.
  2013): domain-IL, every task holds all ten digits with its own fixed pixel
  permutation; task 0 is the identity, task t > 0 the t-th draw of a generator
  seeded with ``permutation_seed`` (so adding tasks never changes earlier ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from clft.benchmarks.vector_streams import (
    Split,
    check_permuted,
    class_order,
    permuted_tasks,
    pixel_permutations,
    split_label_names,
    split_tasks,
)
from clft.registry import benchmarks
from clft.types import Benchmark, Task

NUM_DIGITS = 10
SPLIT_SEED = 0  # the train/test split never depends on the run seed


@lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images [1797, 64] float32 in [0, 1], digits [1797] int64), read-only and cached."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = (bunch.data / 16.0).astype(np.float32)
    digits = bunch.target.astype(np.int64)
    images.setflags(write=False)
    digits.setflags(write=False)
    return images, digits


@lru_cache(maxsize=8)
def fixed_split(test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices: stratified by digit, ``random_state=SPLIT_SEED``."""
    from sklearn.model_selection import train_test_split

    _, digits = load_digits()
    train, test = train_test_split(
        np.arange(len(digits)), test_size=test_fraction, stratify=digits, random_state=SPLIT_SEED
    )
    train, test = np.sort(train), np.sort(test)
    train.setflags(write=False)
    test.setflags(write=False)
    return train, test


def fixed_arrays(test_fraction: float) -> tuple[Split, Split]:
    """((x, y) train, (x, y) test) of the fixed split."""
    images, digits = load_digits()
    train, test = fixed_split(test_fraction)
    return (images[train], digits[train]), (images[test], digits[test])


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")


@benchmarks.register()
class SplitDigits(Benchmark):
    """Split digits: ``n_tasks`` tasks of ``10 / n_tasks`` digits each."""

    name = "split-digits"
    input_kind = "vector"

    @dataclass
    class Config:
        scenario: Literal["task-il", "class-il", "domain-il"] = "class-il"
        """task-il / class-il: labels are digits 0..9; domain-il: position within the task."""
        n_tasks: int = 5
        """Number of tasks; must divide 10 (1, 2, 5 or 10)."""
        test_fraction: float = 0.25
        """Share of each digit held out for testing (fixed split, independent of the seed)."""
        shuffle_classes: bool = False
        """Shuffle the digit order with the run seed before cutting it into tasks."""

        def __post_init__(self) -> None:
            if self.n_tasks < 1 or NUM_DIGITS % self.n_tasks:
                raise ValueError(f"n_tasks must divide {NUM_DIGITS} (1, 2, 5 or 10), got {self.n_tasks}")
            _check_fraction(self.test_fraction)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        self.per_task = NUM_DIGITS // config.n_tasks
        self.label_names = split_label_names(self.scenario, [str(d) for d in range(NUM_DIGITS)], self.per_task)

    def class_order(self, seed: int) -> list[int]:
        """The digit order: 0..9, or a permutation drawn from ``seed``."""
        return class_order(NUM_DIGITS, self.config.shuffle_classes, seed)

    def tasks(self, seed: int) -> list[Task]:
        train, test = fixed_arrays(self.config.test_fraction)
        return split_tasks(train, test, self.class_order(seed), self.config.n_tasks, self.scenario, "digits")


@benchmarks.register()
class PermutedDigits(Benchmark):
    """Permuted digits: domain-IL, all ten digits per task, one fixed pixel permutation per task."""

    name = "permuted-digits"
    input_kind = "vector"
    scenarios = ("domain-il",)

    @dataclass
    class Config:
        n_tasks: int = 5
        """Number of tasks (task 0 is the unpermuted data)."""
        permutation_seed: int = 0
        """Seed of the permutations; independent of the run seed so every run sees the same stream."""
        test_fraction: float = 0.25
        """Share of each digit held out for testing (fixed split, independent of the seed)."""

        def __post_init__(self) -> None:
            check_permuted(self.n_tasks, self.permutation_seed)
            _check_fraction(self.test_fraction)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = "domain-il"
        self.label_names = [str(d) for d in range(NUM_DIGITS)]

    def permutations(self) -> list[np.ndarray]:
        """Task t's pixel permutation: identity for t = 0, else the t-th draw of ``permutation_seed``."""
        images, _ = load_digits()
        return pixel_permutations(images.shape[1], self.config.n_tasks, self.config.permutation_seed)

    def tasks(self, seed: int) -> list[Task]:
        train, test = fixed_arrays(self.config.test_fraction)
        return permuted_tasks(train, test, self.permutations(), NUM_DIGITS, "digits")
