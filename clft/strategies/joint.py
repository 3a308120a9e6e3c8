"""``joint`` and ``offline``: train on the union of every task seen so far, the upper bounds.

At task t both train on D_1 ∪ ... ∪ D_t (``datasets.concatenate_datasets`` of
the seen tasks' train splits), so nothing is ever out of reach. They differ in
where training starts:

- ``joint`` (incremental joint training) continues from the model of task
  t−1, so the first task's data is trained on at every task (T times as many
  gradient steps as the last task's);
- ``offline`` re-initialises the model before every task (the trainable
  parameters and buffers go back to their values before task 1; the runner
  builds a fresh optimizer anyway) and trains it from there on the union, so
  row t of its accuracy matrix is a model trained from scratch on tasks ≤ t:
  the "offline" upper bound of Hsu et al. 2018 (GT-RIPL ``--offline_training``,
  whose single model is our last row) and the reference a*_k of intransigence
  (Chaudhry et al. 2018, "Riemannian Walk", ECCV: "a model trained on
  ∪_{l≤k} D_l"). ``clft.results.tables`` takes a*_k from ``offline`` when an experiment
  has it, else from ``joint``. It costs 1 + 2 + ... + T task-trainings.

``joint`` stores nothing of its own (the seen tasks are the runner's);
``offline`` keeps the initial parameters (checkpointed, so a resumed run
re-initialises to the same values).
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import torch

from clft.registry import strategies
from clft.strategies._anchor import tensor_bytes, to_cpu
from clft.types import Backbone, Strategy, Task


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


def initial_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    """A CPU copy of the trainable parameters and of every buffer (what training changes)."""
    model = backbone.model
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    names |= {name for name, _ in model.named_buffers()}
    return {name: t.detach().cpu().clone() for name, t in model.state_dict().items() if name in names}


@strategies.register()
class Offline(Joint):
    """Offline upper bound: from the initial model, train on all seen tasks' data, at every task."""

    name = "offline"

    @dataclass
    class Config:
        """No options."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.initial: dict[str, torch.Tensor] = {}

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        """Remember the model before task 1; put it back before every later task."""
        if not self.initial:
            self.initial = initial_state(backbone)
        else:
            backbone.model.load_state_dict(self.initial, strict=False)

    def extra_state_bytes(self) -> int:
        return tensor_bytes(self.initial)

    def state_dict(self) -> dict:
        return {"initial": to_cpu(self.initial)}

    def load_state_dict(self, state: dict) -> None:
        self.initial = to_cpu(state["initial"])
