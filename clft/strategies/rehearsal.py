"""``rehearsal``: naive rehearsal, the old tasks' memory mixed into the training data.

Hsu, Liu, Ramasamy & Kira 2018, "Re-evaluating Continual Learning Scenarios"
(GT-RIPL ``agents/exp_replay.py::Naive_Rehearsal``). The memory
(``clft.strategies._memory``, by default ``task-balanced``: after t tasks
each past task keeps ⌊M/t⌋ random examples) is concatenated into the task's
training set, repeated r = max(⌊N_t / M⌋, 1) times so old and new data are
about 1:1 (N_t the task's training examples, M the capacity):

    train on  D_t ∪ r × memory        (shuffled into ordinary batches)

so a task trains for about (N_t + r·|memory|) / batch steps per epoch. Unlike
``replay`` (a separate replay batch added to every step's loss), the old rows
share each batch with the new ones. Memory rows keep their ``task`` column, so
the backbone masks each with its own task's label space.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from clft.registry import strategies
from clft.strategies._memory import MemoryConfig, MemoryStrategy, Policy
from clft.types import Task


@strategies.register()
class Rehearsal(MemoryStrategy):
    """Train each task on its data plus the memory of past tasks, repeated to about 1:1."""

    name = "rehearsal"

    @dataclass
    class Config(MemoryConfig):
        policy: Policy = "task-balanced"
        """Which examples stay (clft.strategies._memory); task-balanced, as Hsu et al.'s naive rehearsal."""

    def train_data(self, task: Task, seen_tasks: list[Task]) -> datasets.Dataset:
        """``task.train`` followed by max(⌊N_t / M⌋, 1) copies of the memory (none before task 2)."""
        if not self.memory.size:
            return task.train
        memory = datasets.Dataset.from_dict(self.memory.buffer, features=task.train.features)
        repeats = max(len(task.train) // self.config.memory_size, 1)
        return datasets.concatenate_datasets([task.train] + [memory] * repeats)
