"""``rotated-digits``: domain-IL over scikit-learn's 8x8 digits, task t = the digits rotated by t·90°.

The rotations are exact (``numpy.rot90``, no interpolation). All ten digits are in every
task and share one label space; the train/test split is fixed (``split_seed``), so every
run seed sees the same images. Examples: ``x`` (64 floats in [0, 1]) and ``label``.
"""

from dataclasses import dataclass

import datasets
import numpy as np

from clft.data import make_task
from clft.types import Benchmark


class RotatedDigits(Benchmark):
    """Rotated digits: 1 to 4 domain-IL tasks, rotations of 0, 90, 180 and 270 degrees."""

    scenarios = ("domain-il",)

    @dataclass
    class Config:
        n_tasks: int = 4
        """Number of rotations (1 to 4): task t shows the digits rotated by t * 90 degrees."""
        test_fraction: float = 0.25
        """Share of each digit held out for testing."""
        split_seed: int = 0
        """Seed of the fixed stratified train/test split (independent of the run seed)."""

        def __post_init__(self):
            if not 1 <= self.n_tasks <= 4:
                raise ValueError(f"n_tasks must lie in 1..4, got {self.n_tasks}")
            if not 0.0 < self.test_fraction < 1.0:
                raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {self.test_fraction}")

    def __init__(self, config):
        super().__init__(config)
        self.scenario = "domain-il"
        self.label_names = [str(d) for d in range(10)]

    def tasks(self, seed):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images, labels = (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)
        train, test = train_test_split(np.arange(len(labels)), test_size=self.config.test_fraction,
                                       stratify=labels, random_state=self.config.split_seed)
        stream = []
        for t in range(self.config.n_tasks):
            rotated = np.rot90(images, k=t, axes=(1, 2)).reshape(len(images), -1)
            splits = [datasets.Dataset.from_dict({"x": rotated[np.sort(rows)], "label": labels[np.sort(rows)]})
                      for rows in (train, test)]
            stream.append(make_task(t, f"rotated-{90 * t}", range(10), *splits))
        return stream
