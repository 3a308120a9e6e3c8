"""``replay``: experience replay from a small episodic memory.

Chaudhry et al. 2019, "On Tiny Episodic Memories in Continual Learning"
(arXiv:1902.10486); the ER of Mammoth (Buzzega et al. 2020). A memory of at
most ``memory_size`` raw training examples (``clft.strategies._memory``:
``reservoir`` by default, or ``class-balanced`` / ``task-balanced``) is
updated in ``after_task`` over the task's examples, in order, so it holds past
tasks only. With ``online: true`` the reservoir is instead updated at every
step with the incoming batch, as in Chaudhry et al.'s ER and Mammoth's
``models/er.py``: the replay batch is drawn first, then the batch is offered
(``_memory.TensorReservoir``: collated tensors, finite rows only), so the
memory also holds the current task's examples.

Training adds, at every step, the loss on a random replay batch:
``loss = L(batch) + L(replay batch)`` where the replay batch's examples keep
their own ``task`` column, so the backbone masks each with its own task's label
space (task-IL replay works). This is Mammoth's ER with the two batches'
losses summed instead of one concatenated batch.

The memory keeps raw rows (any columns: vectors, text, ids); the backbone's
``prepare``/``collate`` turn them into a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from clft.registry import strategies
from clft.strategies._memory import EpisodicMemory, MemoryConfig, TensorReservoir, per_example
from clft.types import Backbone, Batch, Outputs, Strategy, Task


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
        online: bool = False
        """Update a reservoir at every step with the incoming batch (ER) instead of after each task."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.replay_batch_size is not None and self.replay_batch_size < 1:
                raise ValueError(f"replay_batch_size must be at least 1 or null, got {self.replay_batch_size}")
            if self.online and self.policy != "reservoir":
                raise ValueError(f"online: true updates a reservoir; policy must be 'reservoir', got {self.policy!r}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        online = TensorReservoir(config.memory_size) if config.online else None
        self.memory = online or EpisodicMemory(config.memory_size, config.policy)

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task):
        """``backbone.loss`` on ``replay_batch_size`` memory rows drawn without replacement."""
        if not self.memory.size:
            return None
        wanted = self.config.replay_batch_size or batch_size(batch)
        if self.config.online:
            return backbone.loss(self.memory.sample(wanted, getattr(backbone, "device", None)), task)
        return backbone.loss(backbone.collate(self.memory.batch(backbone, self.memory.sample(wanted))), task)

    def after_step(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> None:
        """Online mode: the step's batch enters the reservoir (finite rows only) after the optimizer step."""
        if self.config.online:
            self.memory.add(per_example(batch))

    def after_task(self, backbone: Backbone, task: Task) -> None:
        """Offer the task's training examples, in order, to the memory (after-task mode)."""
        if not self.config.online:
            self.memory.add_task(task.train)

    def extra_state_bytes(self) -> int:
        return self.memory.extra_state_bytes()

    def state_dict(self) -> dict:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state)
