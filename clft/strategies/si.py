"""``si``: Synaptic Intelligence.

Zenke, Poole & Ganguli 2017, "Continual Learning Through Synaptic
Intelligence", ICML. During task μ every parameter accumulates its share of
the drop in loss along the optimisation path (a path integral, one term per
optimizer step s):

    ω_i^μ = Σ_s −g_i(s) · Δθ_i(s),     Δθ(s) = θ(s+1) − θ(s)

where g is the gradient of the training loss *without* SI's own penalty (as in
the paper's code; its gradient 2cΩ(θ − θ*) is subtracted analytically) and
Δθ(s) the update the optimizer actually made. At the end of task μ

    Ω_i ← Ω_i + ω_i^μ / ((Δ_i^μ)² + ξ),   Δ^μ = θ(end of μ) − θ(start of μ),   θ* ← θ

and every later step adds the surrogate loss  c Σ_i Ω_i (θ_i − θ*_i)².

``before_step`` runs *before* the optimizer step, so each call snapshots
θ(s) and g(s); the next call (or ``after_task``, for the last step) sees θ(s+1)
and adds −g(s)·(θ(s+1) − θ(s)) to ω. The runner unscales fp16 gradients
before ``before_step``, so g(s) is the true gradient under any precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.registry import strategies
from clft.strategies._anchor import Tensors, quadratic_penalty, snapshot, tensor_bytes, to_cpu
from clft.strategies.ewc import trainable
from clft.types import Backbone, Batch, Outputs, Strategy, Task

RUNNING = ("omega", "start", "prev_param", "prev_grad")  # within-task state, None between tasks


@strategies.register()
class SynapticIntelligence(Strategy):
    """Path-integral importance Ω, quadratic pull to the previous task's parameters."""

    name = "si"

    @dataclass
    class Config:
        c: float = 0.5
        """c, the strength of the surrogate loss c Σ Ω (θ − θ*)² (≥ 0); 0.5 is tuned on split-digits."""
        xi: float = 1e-3
        """ξ, the damping added to (Δθ)² when normalising ω (> 0): small, it only guards Δθ ≈ 0."""

        def __post_init__(self) -> None:
            if self.c < 0:
                raise ValueError(f"c must be non-negative, got {self.c}")
            if not self.xi > 0:
                raise ValueError(f"xi must be positive, got {self.xi}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.importance: Tensors = {}  # Ω, summed over finished tasks
        self.anchor: Tensors = {}  # θ* at the end of the last task
        self.omega = self.start = self.prev_param = self.prev_grad = None

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        self.start = snapshot(backbone)
        self.omega = {name: torch.zeros_like(t) for name, t in self.start.items()}
        self.prev_param = self.prev_grad = None

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        penalty = quadratic_penalty(backbone, self.importance, self.anchor)
        return None if penalty is None else self.config.c * penalty

    def before_step(self, backbone: Backbone, task: Task) -> None:
        """Close the previous step's term, then remember θ(s) and the task-loss gradient g(s)."""
        now = snapshot(backbone)
        self._accumulate(now)
        grads = {}
        for name, p in trainable(backbone).items():
            grad = p.grad.detach().float() if p.grad is not None else torch.zeros_like(now[name])
            if name in self.importance and self.importance[name].shape == grad.shape:
                own = self.importance[name].to(grad.device) * (now[name] - self.anchor[name].to(grad.device))
                grad = grad - 2 * self.config.c * own
            grads[name] = grad
        self.prev_param, self.prev_grad = now, grads

    def after_task(self, backbone: Backbone, task: Task) -> None:
        end = snapshot(backbone)
        self._accumulate(end)
        for name, omega in self.omega.items():
            if name not in end:
                continue
            increment = omega / ((end[name] - self.start[name]).pow(2) + self.config.xi)
            old = self.importance.get(name)
            keep = old is not None and old.shape == increment.shape
            self.importance[name] = old.to(increment.device) + increment if keep else increment
        self.anchor = end
        self.omega = self.start = self.prev_param = self.prev_grad = None

    def _accumulate(self, now: Tensors) -> None:
        """ω −= g(s) · (θ(s+1) − θ(s)) for the step remembered by the last ``before_step``."""
        if self.prev_param is None:
            return
        for name, grad in self.prev_grad.items():
            if name in self.omega and name in now:
                self.omega[name] -= grad * (now[name] - self.prev_param[name])

    def extra_state_bytes(self) -> int:
        return tensor_bytes(self.importance, self.anchor, *(getattr(self, key) for key in RUNNING))

    def state_dict(self) -> dict:
        state = {"importance": to_cpu(self.importance), "anchor": to_cpu(self.anchor)}
        return state | {key: to_cpu(getattr(self, key)) for key in RUNNING}

    def load_state_dict(self, state: dict) -> None:
        self.importance, self.anchor = to_cpu(state["importance"]), to_cpu(state["anchor"])
        for key in RUNNING:
            setattr(self, key, to_cpu(state[key]))
