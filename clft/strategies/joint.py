"""``joint``: train on the union of every task seen so far, the upper bound.

At task t the training data is D_1 ∪ ... ∪ D_t (``datasets.concatenate_datasets``
of the seen tasks' train splits), so nothing is ever out of reach; its last
row of the accuracy matrix is the joint-training reference (Lopez-Paz &
Ranzato 2017, "Gradient Episodic Memory", NeurIPS; the a*_k of intransigence,
Chaudhry et al. 2018, "Riemannian Walk", ECCV). It stores no state of its own:
the seen tasks are the runner's.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from clft.registry import strategies
from clft.types import Strategy, Task


@strategies.register()
class Joint(Strategy):
    """Incremental joint training: each task trains on all seen tasks' data."""

    name = "joint"

    @dataclass
    class Config:
        """No options."""

    def train_data(self, task: Task, seen_tasks: list[Task]) -> datasets.Dataset:
        """``concatenate(seen.train for seen in seen_tasks)``, in task order."""
        parts = [seen.train for seen in seen_tasks]
        if len(parts) == 1:
            return parts[0]
        first = parts[0].features
        parts = [part if part.features == first else part.cast(first) for part in parts]
        return datasets.concatenate_datasets(parts)
