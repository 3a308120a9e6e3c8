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

What is stored: the collated batch itself, one row per example: every tensor
of the batch whose first dimension is the batch size (``x`` for the MLP;
``input_ids``/``attention_mask`` for text, plus ``label`` and ``task``), kept on
the CPU in tensors of ``memory_size`` rows. Variable-length dimensions are
right-padded with 0 to the longest row seen (attention masks mark it as
padding), so any backbone whose collated batches are tensors works without
re-reading the data. Buffer rows keep their ``task`` column, so the backbone
masks each with its own task's label space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._random import generator_from_state, generator_state, new_generator
from clft.types import Backbone, Batch, Outputs, Strategy, Task

LOGITS = "__logits__"  # the buffer column holding z


def pad_to(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Right-pad every dimension after the first with zeros up to ``shape``."""
    pads: list[int] = []
    for have, want in zip(reversed(tensor.shape[1:]), reversed(shape)):
        pads += [0, want - have]
    return F.pad(tensor, pads) if any(pads) else tensor


def per_example(batch: Batch) -> dict[str, torch.Tensor]:
    """The tensors of ``batch`` with one row per example (first dimension = batch size)."""
    size = len(batch["label"]) if "label" in batch else next(len(v) for v in batch.values() if torch.is_tensor(v))
    return {k: v for k, v in batch.items() if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == size}


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
        self.buffer: dict[str, torch.Tensor] = {}  # column -> [memory_size, ...] (first ``size`` rows used)
        self.size = 0
        self.n_seen = 0  # training examples offered to the reservoir so far
        self.rng: np.random.Generator | None = None

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        self.rng = self.rng or new_generator()

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        """The buffer terms, on buffer rows drawn before this batch enters the buffer."""
        self.rng = self.rng or new_generator()
        return self.buffer_loss(backbone, task, len(outputs.example_loss)) if self.size else None

    def after_step(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> None:
        """Offer the batch and the logits the step's forward pass gave it, z = f(x; θ), to the reservoir."""
        if outputs.logits is None:
            raise ConfigError(f"{self.name} stores class logits; backbone {backbone.name!r} has none (use "
                              "hf-classifier or mlp)")
        self.rng = self.rng or new_generator()
        self.insert({**per_example(batch), LOGITS: outputs.logits.float()})

    def buffer_loss(self, backbone: Backbone, task: Task, batch_size: int) -> torch.Tensor:
        """α · MSE(f(x'), z') on one buffer batch."""
        past = self.sample(backbone, batch_size)
        return self.config.alpha * F.mse_loss(backbone.logits(past).float(), past[LOGITS])

    def sample(self, backbone: Backbone, batch_size: int) -> Batch:
        """A random buffer batch (rows drawn without replacement) on the backbone's device."""
        wanted = min(self.config.buffer_batch_size or batch_size, self.size)
        rows = torch.from_numpy(np.sort(self.rng.choice(self.size, size=wanted, replace=False)))
        device = getattr(backbone, "device", None)
        return {column: values[rows].to(device) for column, values in self.buffer.items()}

    def insert(self, rows: dict[str, torch.Tensor]) -> None:
        """Algorithm R over the rows of ``rows`` (all columns share the first dimension)."""
        n = len(next(iter(rows.values())))
        capacity = self.config.memory_size
        ks = np.arange(self.n_seen, self.n_seen + n)
        draws = self.rng.integers(0, ks + 1)
        slots = np.where(ks < capacity, ks, draws)
        chosen = {int(slot): i for i, slot in enumerate(slots.tolist()) if slot < capacity}  # later rows win
        self.n_seen += n
        if not chosen:
            return
        target = torch.tensor(list(chosen))
        source = torch.tensor(list(chosen.values()))
        for column, values in rows.items():
            values = values.detach().cpu()
            stored = self._column(column, values)
            stored[target] = pad_to(values, stored.shape[1:])[source].to(stored.dtype)
        self.size = min(capacity, self.n_seen)

    def _column(self, column: str, values: torch.Tensor) -> torch.Tensor:
        """The buffer column for ``values``, created or widened (zero padding) to fit them."""
        stored = self.buffer.get(column)
        if stored is None:
            stored = torch.zeros((self.config.memory_size, *values.shape[1:]), dtype=values.dtype)
        shape = tuple(max(a, b) for a, b in zip(stored.shape[1:], values.shape[1:]))
        self.buffer[column] = stored = pad_to(stored, shape)
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
            self.buffer[column] = values.new_zeros((self.config.memory_size, *values.shape[1:]))
            self.buffer[column][: self.size] = values
        self.rng = generator_from_state(state["rng"])
