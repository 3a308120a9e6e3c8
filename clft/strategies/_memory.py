"""The episodic memories shared by the rehearsal strategies (``replay``, ``rehearsal``, ``agem``, ``gem``,
``der``, ``derpp``).

One class, ``EpisodicMemory``, keeps at most ``capacity`` raw training rows
(any columns: vectors, text, ids; a columnar dict of lists) and offers each
finished task's rows to one of three policies, so that two strategies compared
on the same memory differ only in what they do with it:

- ``reservoir``: Algorithm R (Vitter 1985) over the stream of examples: the
  k-th example (0-based, all tasks counted) is kept if k < M, else it replaces
  slot j ~ U{0..k} when j < M; every example seen is in memory with
  probability M / (k + 1) (Chaudhry et al. 2019, ER; Mammoth).
- ``class-balanced``: equal slots per (task, label) group among the memory and
  the new task's rows, chosen at random and re-balanced after each task.
- ``task-balanced``: after t tasks each task keeps min(⌊M / t⌋, N_t) rows
  (N_t the newest task's size), a random subset drawn once when the task ends
  and cut from the end afterwards: the memory of GEM (Lopez-Paz & Ranzato 2017, per-task memories)
  and of Hsu et al. 2018's naive rehearsal (GT-RIPL ``agents/exp_replay.py``).

``TensorReservoir`` is the online form, for memories updated at every step
from the collated batch (``der``/``derpp``'s examples and logits, ``replay``'s
default ``update: step``): per-example tensors, Algorithm R over the stream of
examples (``reservoir_slots``), each width-varying column padded as the
backbone pads it (``Backbone.batch_padding``: labels -100, ids the pad id,
masks 0, on their side), and only rows whose floating-point tensors are all
finite enter it (a batch skipped under ``on_nan: skip`` because of a
non-finite example cannot poison the memory).

Randomness comes from the memory's own generator (``clft.strategies._random``),
so state_dict/load_state_dict resume draw for draw.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import datasets
import numpy as np
import torch
import torch.nn.functional as F

from clft.data.columns import columns as column_slices
from clft.errors import ConfigError
from clft.strategies._random import generator_from_state, generator_state, new_generator
from clft.types import Backbone, Batch, Strategy, Task

Policy = Literal["reservoir", "class-balanced", "task-balanced"]
POLICIES = ("reservoir", "class-balanced", "task-balanced")
Slot = tuple[bool, int]  # (from the new task?, row index in the old memory or in the task's data)


@dataclass
class MemoryConfig:
    """The options of an ``EpisodicMemory``, shared by the Configs of ``replay``, ``rehearsal``, ``agem``
    and ``gem`` (each may redefine ``policy``'s default); a subclass's ``__post_init__`` calls this one."""

    memory_size: int = 200
    """Memory capacity M, in examples, over the whole stream."""
    policy: Policy = "reservoir"
    """Which examples stay: reservoir, class-balanced or task-balanced (clft.strategies._memory)."""

    def __post_init__(self) -> None:
        if self.memory_size < 1:
            raise ValueError(f"memory_size must be at least 1, got {self.memory_size}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")


def reservoir_slots(n_seen: int, n_new: int, capacity: int, rng: np.random.Generator) -> dict[int, int]:
    """Algorithm R over ``n_new`` rows after ``n_seen``: {memory slot: new row}, later rows winning a slot."""
    ks = np.arange(n_seen, n_seen + n_new)
    draws = rng.integers(0, ks + 1) if n_new else ks
    slots = np.where(ks < capacity, ks, draws)
    return {int(slot): i for i, slot in enumerate(slots.tolist()) if slot < capacity}


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


def _columns(source) -> list[str]:
    return source.column_names if isinstance(source, datasets.Dataset) else list(source)


class EpisodicMemory:
    """At most ``capacity`` raw rows of past tasks, chosen by ``policy`` (see the module doc)."""

    def __init__(self, capacity: int, policy: Policy = "reservoir") -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown memory policy {policy!r}; valid: {', '.join(POLICIES)}")
        self.capacity, self.policy = capacity, policy
        self.buffer: dict[str, list] = {}
        self.n_seen = 0  # training rows offered so far
        self.rng: np.random.Generator | None = None
        self._prepared: tuple[Backbone, datasets.Dataset] | None = None

    @property
    def size(self) -> int:
        return len(next(iter(self.buffer.values()))) if self.buffer else 0

    def add_task(self, data: datasets.Dataset) -> None:
        """Offer a finished task's training rows (in order) to the policy."""
        if self.buffer and set(self.buffer) != set(data.column_names):
            raise ValueError(f"memory: the task has columns {data.column_names}, the memory {list(self.buffer)}")
        self.rng = self.rng or new_generator()
        choose = {"reservoir": self._reservoir, "class-balanced": self._class_balanced,
                  "task-balanced": self._task_balanced}[self.policy]
        slots = choose(data)
        self.n_seen += len(data)
        self.buffer = self._gather(slots, data)
        self._prepared = None

    def task_rows(self) -> dict[int, list[int]]:
        """Row indices of the memory per ``task`` id (all rows under 0 when there is no task column)."""
        tasks = self.buffer.get("task", [0] * self.size)
        rows: dict[int, list[int]] = {}
        for i, task_id in enumerate(tasks):
            rows.setdefault(int(task_id), []).append(i)
        return rows

    def sample(self, count: int) -> list[int]:
        """``min(count, size)`` distinct row indices, sorted."""
        self.rng = self.rng or new_generator()
        return np.sort(self.rng.choice(self.size, size=min(count, self.size), replace=False)).tolist()

    def prepared(self, backbone: Backbone) -> datasets.Dataset:
        """The memory as a Dataset through ``backbone.prepare`` (cached until the memory changes)."""
        if self._prepared is None or self._prepared[0] is not backbone:
            self._prepared = (backbone, backbone.prepare(datasets.Dataset.from_dict(self.buffer)))
        return self._prepared[1]

    def batch(self, backbone: Backbone, rows: list[int]) -> dict:
        """The prepared memory's ``rows`` as a columnar batch (column slices, ``clft.data.columns``)."""
        return column_slices(self.prepared(backbone))[rows]

    def _reservoir(self, data: datasets.Dataset) -> list[Slot]:
        slots: list[Slot] = [(False, i) for i in range(self.size)]
        for slot, row in reservoir_slots(self.n_seen, len(data), self.capacity, self.rng).items():
            if slot < len(slots):
                slots[slot] = (True, row)
            else:
                slots.append((True, row))  # filling: slots arrive in order n_seen, n_seen + 1, ...
        return slots

    def _class_balanced(self, data: datasets.Dataset) -> list[Slot]:
        groups: dict[tuple[int, int], list[Slot]] = {}
        sources = ([(False, self.buffer)] if self.size else []) + [(True, data)]
        for is_new, columns in sources:
            labels = list(columns["label"])
            tasks = list(columns["task"]) if "task" in _columns(columns) else [0] * len(labels)
            for i, (task_id, label) in enumerate(zip(tasks, labels)):
                groups.setdefault((int(task_id), int(label)), []).append((is_new, i))
        quotas = balanced_quotas({key: len(rows) for key, rows in groups.items()}, self.capacity)
        slots: list[Slot] = []
        for key in sorted(groups):
            chosen = np.sort(self.rng.choice(len(groups[key]), size=quotas[key], replace=False))
            slots += [groups[key][i] for i in chosen.tolist()]
        return slots

    def _task_balanced(self, data: datasets.Dataset) -> list[Slot]:
        old = self.task_rows() if self.size else {}
        quota = min(len(data), self.capacity // (len(old) + 1))
        slots: list[Slot] = [(False, i) for rows in old.values() for i in rows[:quota]]
        return slots + [(True, int(i)) for i in self.rng.permutation(len(data))[:quota]]

    def _gather(self, slots: list[Slot], data: datasets.Dataset) -> dict[str, list]:
        new_rows = [i for is_new, i in slots if is_new]
        fresh = data[new_rows] if new_rows else {column: [] for column in data.column_names}
        order = iter(range(len(new_rows)))
        picks = [(fresh, next(order)) if is_new else (self.buffer, i) for is_new, i in slots]
        return {column: [source[column][i] for source, i in picks] for column in data.column_names}

    def extra_state_bytes(self) -> int:
        return datasets.Dataset.from_dict(self.buffer).data.nbytes if self.size else 0

    def state_dict(self) -> dict:
        """The memory with its numeric columns as numpy arrays (``packed``): a checkpoint stores those as
        tensors, where a list of 500 MNIST rows was 392,000 JSON numbers (seconds per task checkpoint)."""
        buffer = {column: packed(values) for column, values in self.buffer.items()}
        return {"buffer": buffer, "n_seen": self.n_seen, "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = {column: unpacked(values) for column, values in dict(state["buffer"]).items()}
        self.n_seen = int(state["n_seen"])
        self.rng = generator_from_state(state["rng"])
        self._prepared = None


def packed(values: list) -> np.ndarray | list:
    """A column of numbers, or of equal-length lists of numbers, as a numpy array (``unpacked`` gives
    the same Python values back: float32 data are exact in float64); any other column as a copied list."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged lists
        return copy.deepcopy(values)
    return array.copy() if array.dtype.kind in "biuf" else copy.deepcopy(values)


def unpacked(values: np.ndarray | list) -> list:
    """Inverse of ``packed`` (also reads checkpoints written before packing, which hold lists)."""
    return values.tolist() if isinstance(values, np.ndarray) else copy.deepcopy(list(values))


Padding = dict[str, tuple[float, str]]  # column -> (value, side): ``clft.types.Backbone.batch_padding``
SIDES = ("right", "left")


def pad_to(tensor: torch.Tensor, shape: tuple[int, ...], value: float = 0, side: str = "right") -> torch.Tensor:
    """Pad every dimension after the first with ``value`` up to ``shape``, on ``side`` (right or left)."""
    if side not in SIDES:
        raise ValueError(f"padding side must be one of {', '.join(SIDES)}, got {side!r}")
    pads: list[int] = []
    for have, want in zip(reversed(tensor.shape[1:]), reversed(shape)):
        pads += [want - have, 0] if side == "left" else [0, want - have]
    return F.pad(tensor, pads, value=value) if any(pads) else tensor


def per_example(batch: Batch) -> dict[str, torch.Tensor]:
    """The tensors of ``batch`` with one row per example (first dimension = batch size)."""
    size = len(batch["label"]) if "label" in batch else next(len(v) for v in batch.values() if torch.is_tensor(v))
    return {k: v for k, v in batch.items() if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == size}


def finite_rows(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """Bool [n]: True where every floating-point column of the row is finite."""
    n = len(next(iter(rows.values())))
    keep = torch.ones(n, dtype=torch.bool)
    for values in rows.values():
        if values.is_floating_point():
            keep &= torch.isfinite(values.detach().cpu().reshape(n, -1)).all(dim=1)
    return keep


class TensorReservoir:
    """At most ``capacity`` rows of collated batches, kept on the CPU, filled online by Algorithm R.

    Every tensor of a batch whose first dimension is the batch size is stored (``x`` for the MLP;
    ``input_ids``/``attention_mask``/``lm_labels`` for text; ``label``, ``task``, and extra columns such
    as DER's logits). A column whose width varies between batches is padded as the backbone pads it
    (``padding``, from ``Backbone.batch_padding``: token ids with the pad id, attention masks with 0,
    LM labels with -100, each on its side), so a stored row is the row as it would be collated in a
    batch as wide as the widest row seen: a replayed batch trains on the same targets as the rows
    collated afresh, never on padding. A width-varying column without declared padding is a
    ConfigError. Rows with a non-finite floating value are dropped before the draw.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer: dict[str, torch.Tensor] = {}  # column -> [capacity, ...] (first ``size`` rows used)
        self.size = 0
        self.n_seen = 0  # finite rows offered so far
        self.rng: np.random.Generator | None = None

    def add(self, rows: dict[str, torch.Tensor], padding: Padding | None = None) -> None:
        """Offer the finite rows of ``rows`` (all columns share the first dimension) to Algorithm R;
        ``padding``: how the width-varying columns are padded (``Backbone.batch_padding``)."""
        self.rng = self.rng or new_generator()
        keep = finite_rows(rows)
        if not bool(keep.all()):
            rows = {column: values[keep.to(values.device)] for column, values in rows.items()}
        n = len(next(iter(rows.values())))
        chosen = reservoir_slots(self.n_seen, n, self.capacity, self.rng)
        self.n_seen += n
        if not chosen:
            return
        target, source = torch.tensor(list(chosen)), torch.tensor(list(chosen.values()))
        for column, values in rows.items():
            values = values.detach().cpu()
            value, side = self._padding(column, values, padding or {})
            stored = self._column(column, values, value, side)
            stored[target] = pad_to(values, stored.shape[1:], value, side)[source].to(stored.dtype)
        self.size = min(self.capacity, self.n_seen)

    def sample(self, count: int, device=None) -> Batch:
        """``min(count, size)`` distinct rows (sorted), as a batch on ``device``."""
        self.rng = self.rng or new_generator()
        rows = torch.from_numpy(np.sort(self.rng.choice(self.size, size=min(count, self.size), replace=False)))
        return {column: values[rows].to(device) for column, values in self.buffer.items()}

    def _padding(self, column: str, values: torch.Tensor, padding: Padding) -> tuple[float, str]:
        """The column's (value, side); a ConfigError when its width varies and no padding is declared."""
        if column in padding:
            return padding[column]
        stored = self.buffer.get(column)
        if stored is not None and stored.shape[1:] != values.shape[1:]:
            raise ConfigError(f"memory: batch column {column!r} changes shape between batches "
                              f"({tuple(stored.shape[1:])}, then {tuple(values.shape[1:])}) and the backbone "
                              "declares no padding for it (Backbone.batch_padding: {column: (value, side)})")
        return 0, "right"

    def _column(self, column: str, values: torch.Tensor, value: float, side: str) -> torch.Tensor:
        """The buffer column for ``values``, created or widened (with ``value`` on ``side``) to fit them."""
        stored = self.buffer.get(column)
        if stored is None:
            stored = torch.full((self.capacity, *values.shape[1:]), value, dtype=values.dtype)
        shape = tuple(max(a, b) for a, b in zip(stored.shape[1:], values.shape[1:]))
        self.buffer[column] = stored = pad_to(stored, shape, value, side)
        return stored

    def extra_state_bytes(self) -> int:
        return sum(t[: self.size].numel() * t.element_size() for t in self.buffer.values())

    def state_dict(self) -> dict:
        buffer = {column: values[: self.size].clone() for column, values in self.buffer.items()}
        return {"buffer": buffer, "size": self.size, "n_seen": self.n_seen, "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.n_seen = int(state["size"]), int(state["n_seen"])
        self.buffer = {}
        for column, values in state["buffer"].items():
            values = torch.as_tensor(values)
            self.buffer[column] = values.new_zeros((self.capacity, *values.shape[1:]))
            self.buffer[column][: self.size] = values
        self.rng = generator_from_state(state["rng"])


class MemoryStrategy(Strategy):
    """Base of strategies whose state is one :class:`EpisodicMemory` (A-GEM, GEM, naive rehearsal).

    ``self.memory`` holds at most ``config.memory_size`` rows chosen by ``config.policy``; each
    task's training data is offered to it after the task. The memory is the whole checkpointed state.
    """

    def __init__(self, config) -> None:
        super().__init__(config)
        self.memory = EpisodicMemory(config.memory_size, config.policy)

    def after_task(self, backbone: Backbone, task: Task) -> None:
        self.memory.add_task(task.train)

    def extra_state_bytes(self) -> int:
        return self.memory.extra_state_bytes()

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
