"""``der``: Dark Experience Replay.

Buzzega, Boschini, Porrello, Abati & Calderara 2020, "Dark Experience for
General Continual Learning: a Strong, Simple Baseline", NeurIPS. A buffer M
of training examples and the logits the model gave them *when they were
seen*, filled by reservoir sampling over every training example of the stream
(Vitter 1985, Algorithm R: the k-th example, 0-based, is kept if k < |M|, else
it replaces slot j ~ U{0..k} when j < |M|). Each step adds

    α · MSE( f(x'; θ), z' ),    (x', z') a random batch of M

(mean over the logit entries, as in the authors' code); after the optimizer
step (``after_step``) the step's batch, with the logits z = f(x; θ) its forward
pass gave (no second forward), is offered to the reservoir, as in the authors' code.
``derpp`` (DER++) adds a cross-entropy term on a second buffer batch.

The buffer is ``clft.strategies._memory.TensorReservoir`` (shared with
``replay``'s default ``update: step``): the collated batch's per-example tensors
plus the logits, on the CPU, padded where lengths vary as the backbone pads them
(``Backbone.batch_padding``: pad ids, attention masks 0, on the tokenizer's side);
only rows whose inputs and logits are all finite enter it. Buffer rows keep their ``task`` column, so the
backbone masks each with its own task's label space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._memory import TensorReservoir, per_example
from clft.types import Backbone, Batch, Outputs, Strategy, Task

LOGITS = "__logits__"  # the buffer column holding z


@strategies.register()
class DER(Strategy):
    """Replay past examples' logits (recorded when seen) with an MSE term."""

    name = "der"

    @dataclass
    class Config:
        alpha: float = 0.5
        """α, the weight of the logit-matching MSE term (≥ 0)."""
        memory_size: int = 200
        """Buffer capacity |M|, in examples, over the whole stream."""
        buffer_batch_size: int | None = None
        """Examples per buffer batch; None = the size of the training batch."""

        def __post_init__(self) -> None:
            if self.alpha < 0:
                raise ValueError(f"alpha must be non-negative, got {self.alpha}")
            if self.memory_size < 1:
                raise ValueError(f"memory_size must be at least 1, got {self.memory_size}")
            if self.buffer_batch_size is not None and self.buffer_batch_size < 1:
                raise ValueError(f"buffer_batch_size must be at least 1 or null, got {self.buffer_batch_size}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.memory = TensorReservoir(config.memory_size)

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        """The buffer terms, on buffer rows drawn before this batch enters the buffer."""
        return self.buffer_loss(backbone, task, len(outputs.example_loss)) if self.memory.size else None

    def after_step(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> None:
        """Offer the batch and the logits the step's forward pass gave it, z = f(x; θ), to the reservoir
        (finite rows only)."""
        if outputs.logits is None:
            raise ConfigError(f"{self.name} stores class logits; backbone {backbone.name!r} has none (use "
                              "hf-classifier or mlp)")
        self.memory.add({**per_example(batch), LOGITS: outputs.logits.float()}, backbone.batch_padding())

    def buffer_loss(self, backbone: Backbone, task: Task, batch_size: int) -> torch.Tensor:
        """α · MSE(f(x'), z') on one buffer batch."""
        past = self.sample(backbone, batch_size)
        return self.config.alpha * F.mse_loss(backbone.logits(past).float(), past[LOGITS])

    def sample(self, backbone: Backbone, batch_size: int) -> Batch:
        """A random buffer batch (rows drawn without replacement) on the backbone's device."""
        return self.memory.sample(self.config.buffer_batch_size or batch_size, getattr(backbone, "device", None))

    def extra_state_bytes(self) -> int:
        return self.memory.extra_state_bytes()

    def state_dict(self) -> dict:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state)
