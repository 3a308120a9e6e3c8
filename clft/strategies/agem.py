"""``agem``: Averaged Gradient Episodic Memory.

Chaudhry, Ranzato, Rohrbach & Elhoseiny 2019, "Efficient Lifelong Learning
with A-GEM", ICLR. An episodic memory of past training examples (``clft.strategies._memory``,
shared with ``replay`` and ``gem``: by default equal slots per class, updated
after each task, so it holds past tasks only). Before every optimizer step, with g
the gradient of the training loss and g_ref the gradient of the loss on a
random memory batch, both flattened over all trainable parameters:

    g ← g − (g·g_ref / g_ref·g_ref) · g_ref    if g·g_ref < 0,   else g unchanged

so the step never increases the (average) memory loss to first order. g_ref
comes from ``torch.autograd.grad``, so the ``.grad`` buffers hold only the
(projected) g. Memory rows keep their ``task`` column: the backbone masks each
with its own task's label space. The runner unscales fp16 gradients before
``before_step``, so g and g_ref share one scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.registry import strategies
from clft.strategies._memory import MemoryConfig, MemoryStrategy, Policy
from clft.types import Backbone, Task


@strategies.register()
class AGEM(MemoryStrategy):
    """Project the gradient so the memory loss does not increase."""

    name = "agem"

    @dataclass
    class Config(MemoryConfig):
        policy: Policy = "class-balanced"
        """Which examples stay (clft.strategies._memory); class-balanced by default."""
        memory_batch_size: int = 256
        """Memory examples drawn (without replacement) for each g_ref; the paper uses 256."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.memory_batch_size < 1:
                raise ValueError(f"memory_batch_size must be at least 1, got {self.memory_batch_size}")

    def before_step(self, backbone: Backbone, task: Task) -> None:
        if not self.memory.size:
            return
        params = backbone.trainable_parameters()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        reference = self.reference_gradient(backbone, task, params)
        dot = sum((g.float() * r).sum() for g, r in zip(grads, reference))
        if dot >= 0:
            return
        scale = dot / sum(r.pow(2).sum() for r in reference)
        for p, g, r in zip(params, grads, reference):
            p.grad = (g.float() - scale * r).to(p.dtype)

    def reference_gradient(self, backbone: Backbone, task: Task, params: list) -> list[torch.Tensor]:
        """g_ref: the gradient of ``backbone.loss`` on a random memory batch (float32, zeros where unused)."""
        rows = self.memory.sample(self.config.memory_batch_size)
        loss = backbone.loss(backbone.collate(self.memory.batch(backbone, rows)), task)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return [torch.zeros_like(p, dtype=torch.float32) if g is None else g.float() for p, g in zip(params, grads)]
