"""``mas``: Memory Aware Synapses.

Aljundi, Babiloni, Elhoseiny, Rohrbach & Tuytelaars 2018, "Memory Aware
Synapses: Learning what (not) to forget", ECCV. After task t, the importance
of parameter i is the mean sensitivity of the squared L2 norm of the learned
function's output over the task's training inputs, no labels needed:

    Ω_t[i] = (1/N) Σ_n | ∂ ‖f(x_n; θ)‖²₂ / ∂θ_i |

with f = ``backbone.logits`` restricted to the classes the label space allows
for task t (the function the model computes for that task). With
``output_reduction: mean`` the squared norm is divided by the number of those
outputs K, ‖f‖²/K, as in Hsu et al. 2018's code (GT-RIPL
``agents/regularization.py::MAS``: ``pred.pow_(2).mean()``), which in class-IL
weights task t by 1/(2t). Importances add up
over tasks, Ω ← Ω + Ω_t, the anchor is θ* ← θ after task t, and every later
step adds  λ Σ_i Ω_i (θ_i − θ*_i)².

Gradients are taken in eval mode (training ``.grad`` buffers untouched).
``batch_size`` 1 (default) gives the exact per-example |gradient|, a chunk of
examples at a time (``clft.strategies._importance``: for an MLP from the
nn.Linear pieces of one batched backward pass, else ``torch.func.vmap(grad)``);
larger batches take |∂ mean_n ‖f(x_n)‖² / ∂θ| per batch, cheaper
and smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from clft.data.columns import columns
from clft.registry import strategies
from clft.strategies._anchor import Tensors, quadratic_penalty, snapshot, tensor_bytes, to_cpu
from clft.strategies._importance import per_example_mean
from clft.strategies._random import generator_from_state, generator_state, new_generator
from clft.strategies.ewc import trainable
from clft.types import Backbone, Batch, Outputs, Strategy, Task


@strategies.register()
class MAS(Strategy):
    """Unsupervised output-sensitivity importance Ω, quadratic pull to the last task's parameters."""

    name = "mas"

    @dataclass
    class Config:
        lam: float = 1.0
        """λ, the penalty strength (≥ 0)."""
        samples: int | None = None
        """Training examples used for Ω, drawn at random; None = all of them."""
        batch_size: int = 1
        """Examples per gradient when estimating Ω; 1 = exact per-example |gradient|."""
        output_reduction: Literal["sum", "mean"] = "sum"
        """‖f(x)‖² summed over the allowed outputs (the paper) or averaged over them (GT-RIPL's code)."""

        def __post_init__(self) -> None:
            if self.lam < 0:
                raise ValueError(f"lam must be non-negative, got {self.lam}")
            if self.samples is not None and self.samples < 1:
                raise ValueError(f"samples must be at least 1 or null, got {self.samples}")
            if self.batch_size < 1:
                raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
            if self.output_reduction not in ("sum", "mean"):
                raise ValueError(f"output_reduction must be 'sum' or 'mean', got {self.output_reduction!r}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.importance: Tensors = {}
        self.anchor: Tensors = {}
        self.rng: np.random.Generator | None = None

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        self.rng = self.rng or new_generator()

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        penalty = quadratic_penalty(backbone, self.importance, self.anchor)
        return None if penalty is None else self.config.lam * penalty

    def after_task(self, backbone: Backbone, task: Task) -> None:
        for name, omega in self.sensitivity(backbone, task).items():
            old = self.importance.get(name)
            keep = old is not None and old.shape == omega.shape
            self.importance[name] = old.to(omega.device) + omega if keep else omega
        self.anchor = snapshot(backbone)

    def sensitivity(self, backbone: Backbone, task: Task, how: str = "auto") -> Tensors:
        """Ω_t: mean |∂‖f(x)‖²/∂θ| over (a sample of) ``task.train`` (see module doc).

        ``batch_size`` 1: exact per-example values (``_importance``, ``how="auto"``: nn.Linear
        pieces of one batched backward pass for an MLP, ``torch.func.vmap`` otherwise; "linear", "vmap"
        or "loop" forces a way; tests and benchmarks compare them).
        """
        data = backbone.prepare(task.train)
        rows = self.sample_rows(len(data))
        allowed = list(backbone.label_space.allowed(task.id))

        divisor = len(allowed) if self.config.output_reduction == "mean" else 1

        def norms(batch):  # ‖f(x_n)‖² of each example over the allowed outputs
            return backbone.logits(batch)[:, allowed].float().pow(2).sum(dim=1)

        def squared_norm(batch):  # ‖f‖² (sum) or ‖f‖²/K (mean), averaged over the batch
            return norms(batch).mean() / divisor

        def each_squared_norm(batch):  # the same, one value per example
            return norms(batch) / divisor

        if self.config.batch_size == 1:
            return per_example_mean(backbone, data, rows, squared_norm, "abs", how=how, per_example=each_squared_norm)
        params = trainable(backbone)
        size, table = self.config.batch_size, columns(data)
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
        was_training = backbone.model.training
        backbone.model.eval()
        try:
            for chunk in chunks:
                grads = torch.autograd.grad(squared_norm(backbone.collate(table[chunk])), list(params.values()),
                                            allow_unused=True)
                for name, grad in zip(params, grads):
                    if grad is not None:
                        sums[name] += grad.detach().float().abs()
        finally:
            backbone.model.train(was_training)
        return {name: s / max(len(chunks), 1) for name, s in sums.items()}

    def sample_rows(self, n: int) -> list[int]:
        """All rows in order, or ``samples`` of them drawn without replacement (sorted)."""
        if self.config.samples is None or self.config.samples >= n:
            return list(range(n))
        self.rng = self.rng or new_generator()
        return np.sort(self.rng.choice(n, size=self.config.samples, replace=False)).tolist()

    def extra_state_bytes(self) -> int:
        return tensor_bytes(self.importance, self.anchor)

    def state_dict(self) -> dict:
        return {"importance": to_cpu(self.importance), "anchor": to_cpu(self.anchor), "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.importance, self.anchor = to_cpu(state["importance"]), to_cpu(state["anchor"])
        self.rng = generator_from_state(state["rng"])
