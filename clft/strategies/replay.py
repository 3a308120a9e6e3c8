"""``replay``: experience replay from a small episodic memory.

Chaudhry et al. 2019, "On Tiny Episodic Memories in Continual Learning"
(arXiv:1902.10486); the ER of Mammoth (Buzzega et al. 2020). A buffer of at
most ``memory_size`` raw training examples is filled by reservoir sampling
(Vitter 1985, Algorithm R) over the stream of training examples: the k-th
example (0-based, all tasks counted) is kept if k < M, else it replaces slot j
for j ~ U{0..k} when j < M, so every example seen so far is in the buffer with
probability M / (k + 1). With ``class_balanced`` the buffer instead keeps an
equal number of random examples of every (task, label) group seen, re-balanced
after each task (per class in class-/task-IL; per task and label in domain-IL).

Training adds, at every step, the loss on a random replay batch:
``loss = L(batch) + L(replay batch)`` where the replay batch's examples keep
their own ``task`` column, so the backbone masks each with its own task's label
space (task-IL replay works). This is Mammoth's ER with the two batches'
losses summed instead of one concatenated batch. The buffer is updated in
``after_task`` (over the task's examples, in order), so it holds past tasks only.

The buffer keeps raw rows (any columns: vectors, text, ids) as a columnar dict
of lists; the backbone's ``prepare``/``collate`` turn it into a batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import datasets
import numpy as np

from clft.columns import columns as dataset_columns
from clft.registry import strategies
from clft.strategies._random import generator_from_state, generator_state, new_generator
from clft.types import Backbone, Batch, Outputs, Strategy, Task

Slot = tuple[bool, int]  # (from the new task?, row index in the old buffer or in the task's data)


def balanced_quotas(sizes: dict, capacity: int) -> dict:
    """Slots per group: round-robin one at a time in key order until ``capacity`` or no rows are left."""
    quotas = dict.fromkeys(sizes, 0)
    left = capacity
    while left > 0:
        open_groups = [key for key in sorted(sizes) if quotas[key] < sizes[key]]
        if not open_groups:
            break
        for key in open_groups[:left]:
            quotas[key] += 1
        left -= min(left, len(open_groups))
    return quotas


def batch_size(batch: Batch) -> int:
    """Rows in a collated batch: the length of ``label``, else of the first sized value."""
    if "label" in batch:
        return len(batch["label"])
    return next(len(value) for value in batch.values() if hasattr(value, "__len__"))


@strategies.register()
class Replay(Strategy):
    """Experience replay with a reservoir (or class-balanced) buffer of raw examples."""

    name = "replay"

    @dataclass
    class Config:
        memory_size: int = 200
        """Buffer capacity M, in examples, over the whole stream."""
        class_balanced: bool = False
        """Keep equal slots per (task, label) group instead of a reservoir sample."""
        replay_batch_size: int | None = None
        """Examples replayed per step; None = the size of the training batch."""

        def __post_init__(self) -> None:
            if self.memory_size < 1:
                raise ValueError(f"memory_size must be at least 1, got {self.memory_size}")
            if self.replay_batch_size is not None and self.replay_batch_size < 1:
                raise ValueError(f"replay_batch_size must be at least 1 or null, got {self.replay_batch_size}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.buffer: dict[str, list] = {}
        self.n_seen = 0  # training examples offered to the reservoir so far
        self.rng: np.random.Generator | None = None
        self._prepared: tuple[Backbone, datasets.Dataset] | None = None

    @property
    def size(self) -> int:
        """Rows in the buffer (not ``__len__``: an empty strategy must stay truthy)."""
        return len(next(iter(self.buffer.values()))) if self.buffer else 0

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        self.rng = self.rng or new_generator()

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task):
        """``backbone.loss`` on ``replay_batch_size`` buffer rows drawn without replacement."""
        if not self.size:
            return None
        self.rng = self.rng or new_generator()
        wanted = self.config.replay_batch_size or batch_size(batch)
        rows = np.sort(self.rng.choice(self.size, size=min(wanted, self.size), replace=False))
        return backbone.loss(backbone.collate(dataset_columns(self._prepared_buffer(backbone))[rows]), task)

    def after_task(self, backbone: Backbone, task: Task) -> None:
        """Offer the task's training examples, in order, to the buffer."""
        data = task.train
        if self.buffer and set(self.buffer) != set(data.column_names):
            raise ValueError(f"replay: task {task.id} has columns {data.column_names}, the buffer {list(self.buffer)}")
        self.rng = self.rng or new_generator()
        slots = self._balanced(data) if self.config.class_balanced else self._reservoir(len(data))
        self.n_seen += len(data)
        self.buffer = self._gather(slots, data)
        self._prepared = None

    def _reservoir(self, n_new: int) -> list[Slot]:
        """Algorithm R continued over ``n_new`` examples after the ``n_seen`` already offered."""
        capacity = self.config.memory_size
        slots: list[Slot] = [(False, i) for i in range(self.size)]
        ks = np.arange(self.n_seen, self.n_seen + n_new)
        draws = self.rng.integers(0, ks + 1) if n_new else ks
        for i in np.flatnonzero((ks < capacity) | (draws < capacity)).tolist():
            if len(slots) < capacity:
                slots.append((True, i))
            elif draws[i] < capacity:
                slots[int(draws[i])] = (True, i)
        return slots

    def _balanced(self, data: datasets.Dataset) -> list[Slot]:
        """Equal slots per (task, label) group among the buffer and the task's rows, chosen at random."""
        groups: dict[tuple[int, int], list[Slot]] = {}
        sources = ([(False, self.buffer)] if self.size else []) + [(True, data)]
        for is_new, columns in sources:
            labels = list(columns["label"])
            names = columns.column_names if isinstance(columns, datasets.Dataset) else list(columns)
            tasks = list(columns["task"]) if "task" in names else [0] * len(labels)
            for i, (task_id, label) in enumerate(zip(tasks, labels)):
                groups.setdefault((int(task_id), int(label)), []).append((is_new, i))
        quotas = balanced_quotas({key: len(rows) for key, rows in groups.items()}, self.config.memory_size)
        slots: list[Slot] = []
        for key in sorted(groups):
            chosen = np.sort(self.rng.choice(len(groups[key]), size=quotas[key], replace=False))
            slots += [groups[key][i] for i in chosen.tolist()]
        return slots

    def _gather(self, slots: list[Slot], data: datasets.Dataset) -> dict[str, list]:
        """The rows named by ``slots`` as a columnar dict (old buffer rows or the task's rows)."""
        new_rows = [i for is_new, i in slots if is_new]
        fresh = data[new_rows] if new_rows else {column: [] for column in data.column_names}
        order = iter(range(len(new_rows)))
        picks = [(fresh, next(order)) if is_new else (self.buffer, i) for is_new, i in slots]
        return {column: [source[column][i] for source, i in picks] for column in data.column_names}

    def _prepared_buffer(self, backbone: Backbone) -> datasets.Dataset:
        """The buffer as a Dataset passed through ``backbone.prepare`` (cached until the buffer changes)."""
        if self._prepared is None or self._prepared[0] is not backbone:
            self._prepared = (backbone, backbone.prepare(datasets.Dataset.from_dict(self.buffer)))
        return self._prepared[1]

    def extra_state_bytes(self) -> int:
        return datasets.Dataset.from_dict(self.buffer).data.nbytes if self.size else 0

    def state_dict(self) -> dict:
        return {"buffer": copy.deepcopy(self.buffer), "n_seen": self.n_seen, "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = copy.deepcopy(dict(state["buffer"]))
        self.n_seen = int(state["n_seen"])
        self.rng = generator_from_state(state["rng"])
        self._prepared = None
