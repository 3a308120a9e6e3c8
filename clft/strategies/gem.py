"""``gem``: Gradient Episodic Memory.

Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning",
NeurIPS. An episodic memory per past task (``clft.strategies._memory``, by
default ``task-balanced``: after t tasks each keeps ⌊M/t⌋ of its examples, as
in Hsu et al. 2018's GEM). Before every optimizer step, with g the training
gradient and g_k the gradient of the loss on task k's whole memory (k < t),
all flattened over the trainable parameters: if some ⟨g, g_k⟩ < 0, g is
replaced by the projection

    g̃ = argmin_z ½‖z − g‖²   s.t.  ⟨z, g_k⟩ ≥ 0 for every past task k,

computed, as in the paper (Eq. 10-11) and its code, through the dual in the
t−1 multipliers v with G the matrix of rows g_k:

    min_v ½ vᵀ(G Gᵀ + εI) v + (G g)ᵀ v   s.t.  v ≥ γ,      g̃ = Gᵀ v + g

γ is the margin (the official code's ``memory_strength``; 0.5 in Hsu et al.)
and ε = 1e-3 the ridge both codes add. The dual has bounds only, so with
P = L Lᵀ (Cholesky) it is the bounded least-squares problem
min_v ½‖Lᵀ v + L⁻¹ G g‖² s.t. v ≥ γ, solved exactly by scipy's
``lsq_linear`` (BVLS, Stark & Parker 1995) instead of the ``quadprog``
package the reference codes import. Memory rows keep their ``task`` column,
so the backbone masks each with its own task's label space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clft.registry import strategies
from clft.strategies._memory import MemoryConfig, MemoryStrategy, Policy
from clft.types import Backbone, Task


def project(gradient: np.ndarray, memories: np.ndarray, margin: float = 0.5, eps: float = 1e-3) -> np.ndarray:
    """g̃ = Gᵀ v* + g with v* = argmin_{v ≥ margin} ½ vᵀ(G Gᵀ + εI) v + (G g)ᵀ v (float64).
    (scipy is imported here: 0.35 s of start-up that runs without GEM do not pay.)"""
    import scipy.linalg
    import scipy.optimize

    g, G = np.asarray(gradient, dtype=np.float64), np.asarray(memories, dtype=np.float64)
    P = G @ G.T + eps * np.eye(len(G))
    L = np.linalg.cholesky(P)
    target = -scipy.linalg.solve_triangular(L, G @ g, lower=True)
    v = scipy.optimize.lsq_linear(L.T, target, bounds=(margin, np.inf), method="bvls").x
    return G.T @ v + g


def flat(tensors: list[torch.Tensor | None], params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The float32 concatenation of ``tensors`` (zeros for None) in the order of ``params``."""
    return torch.cat([(torch.zeros_like(p) if t is None else t).float().reshape(-1) for t, p in zip(tensors, params)])


@strategies.register()
class GEM(MemoryStrategy):
    """Project the gradient so that no past task's memory loss increases (to first order)."""

    name = "gem"

    @dataclass
    class Config(MemoryConfig):
        policy: Policy = "task-balanced"
        """Which examples stay (clft.strategies._memory); constraints are per task either way."""
        margin: float = 0.5
        """γ ≥ 0, the lower bound of the dual multipliers (memory_strength); 0 = the plain projection."""
        eps: float = 1e-3
        """ε > 0, the ridge added to G Gᵀ."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.margin < 0:
                raise ValueError(f"margin must be non-negative, got {self.margin}")
            if not self.eps > 0:
                raise ValueError(f"eps must be positive, got {self.eps}")

    def before_step(self, backbone: Backbone, task: Task) -> None:
        if not self.memory.size:
            return
        params = backbone.trainable_parameters()
        g = flat([p.grad for p in params], params)
        memories = torch.stack(self.task_gradients(backbone, task, params))
        if bool((memories @ g >= 0).all()):
            return
        cfg = self.config
        projected = project(g.cpu().double().numpy(), memories.cpu().double().numpy(), cfg.margin, cfg.eps)
        projected = torch.from_numpy(projected).to(g.device, torch.float32)
        offset = 0
        for p in params:
            p.grad = projected[offset : offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()

    def task_gradients(self, backbone: Backbone, task: Task, params: list) -> list[torch.Tensor]:
        """g_k for every task k in memory: the gradient of ``backbone.loss`` on all of k's rows."""
        grads = []
        for rows in self.memory.task_rows().values():
            loss = backbone.loss(backbone.collate(self.memory.batch(backbone, rows)), task)
            grads.append(flat(torch.autograd.grad(loss, params, allow_unused=True), params))
        return grads
