"""``replay``: experience replay (ER) from a small episodic memory.

Chaudhry, Rohrbach, Elhoseiny, Ajanthan, Dokania, Torr & Ranzato 2019, "On Tiny
Episodic Memories in Continual Learning" (arXiv:1902.10486); the ER of Mammoth
(Buzzega et al. 2020, ``models/er.py``). ``update`` says when the memory of at
most ``memory_size`` examples takes them:

- ``step`` (default: the paper's ER): at every step a replay batch is drawn from
  the memory; after the optimizer step the step's batch is offered to a
  reservoir (Algorithm R over every training example of the stream;
  ``_memory.TensorReservoir``: collated tensors, finite rows only, each column
  padded as the backbone pads it, ``Backbone.batch_padding``). The memory also
  holds the current task's examples, so replay starts at the second step of the
  first task. A stored row is replayed as it was collated: a text-to-text
  prompt lists the label options of the step that stored it.
- ``task-end``: after each task its training examples are offered, in order, to
  ``policy`` (``reservoir``, ``class-balanced`` or ``task-balanced``;
  ``_memory.EpisodicMemory``, raw rows collated afresh at every replay), so the
  memory holds past tasks only. Only this form takes a policy other than
  ``reservoir``; its default row label is ``replay-task-end``
  (``default_label``), ER's is ``replay``.

Training adds, at every step, the loss on a random replay batch:
``loss = L(batch) + L(replay batch)`` where the replay batch's examples keep
their own ``task`` column, so the backbone masks each with its own task's label
space (task-IL replay works). This is Mammoth's ER with the two batches'
losses summed instead of one concatenated batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clft.registry import strategies
from clft.strategies._memory import POLICIES, EpisodicMemory, MemoryConfig, TensorReservoir, per_example
from clft.types import Backbone, Batch, Outputs, Strategy, Task

UPDATES = ("step", "task-end")


def batch_size(batch: Batch) -> int:
    """Rows in a collated batch: the length of ``label``, else of the first sized value."""
    if "label" in batch:
        return len(batch["label"])
    return next(len(value) for value in batch.values() if hasattr(value, "__len__"))


@strategies.register()
class Replay(Strategy):
    """Experience replay: the loss on a random memory batch added to every step."""

    name = "replay"

    @dataclass
    class Config(MemoryConfig):
        replay_batch_size: int | None = None
        """Examples replayed per step; None = the size of the training batch."""
        update: Literal["step", "task-end"] = "step"
        """When the memory takes examples: every training batch after its step (ER's reservoir), or each
        finished task's examples (task-end; the only form with a class- or task-balanced policy)."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.replay_batch_size is not None and self.replay_batch_size < 1:
                raise ValueError(f"replay_batch_size must be at least 1 or null, got {self.replay_batch_size}")
            if self.update not in UPDATES:
                raise ValueError(f"update must be one of {', '.join(UPDATES)}, got {self.update!r}")
            if self.update == "step" and self.policy != "reservoir":
                raise ValueError(f"policy {self.policy!r} needs update: task-end; update: step keeps a reservoir "
                                 "(valid: update step with policy reservoir, or update task-end with policy "
                                 f"{', '.join(POLICIES)})")

    @classmethod
    def default_label(cls, config: Config) -> str:
        """The row label without an explicit one: ``replay`` for ER (the paper's every-step reservoir),
        ``replay-task-end`` for the after-task memory, so a table says which of the two ran
        (``clft.types.Strategy.default_label``)."""
        return cls.name if config.update == "step" else f"{cls.name}-task-end"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.online = config.update == "step"
        self.memory = TensorReservoir(config.memory_size) if self.online else EpisodicMemory(config.memory_size,
                                                                                              config.policy)

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task):
        """``backbone.loss`` on ``replay_batch_size`` memory rows drawn without replacement."""
        if not self.memory.size:
            return None
        wanted = self.config.replay_batch_size or batch_size(batch)
        if self.online:
            return backbone.loss(self.memory.sample(wanted, getattr(backbone, "device", None)), task)
        return backbone.loss(backbone.collate(self.memory.batch(backbone, self.memory.sample(wanted))), task)

    def after_step(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> None:
        """``update: step``: the step's batch enters the reservoir (finite rows only) after the optimizer
        step, each width-varying column padded as the backbone pads it."""
        if self.online:
            self.memory.add(per_example(batch), backbone.batch_padding())

    def after_task(self, backbone: Backbone, task: Task) -> None:
        """``update: task-end``: offer the task's training examples, in order, to the memory's policy."""
        if not self.online:
            self.memory.add_task(task.train)

    def extra_state_bytes(self) -> int:
        return self.memory.extra_state_bytes()

    def state_dict(self) -> dict:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state)
