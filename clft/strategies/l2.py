"""``l2``: plain L2 pull to the previous task's parameters.

The "L2" baseline of Kirkpatrick et al. 2017 (PNAS 114(13), Fig. 2) and of
Hsu, Liu, Ramasamy & Kira 2018 ("Re-evaluating Continual Learning Scenarios",
GT-RIPL ``agents/regularization.py::L2``): EWC with the Fisher replaced by the
identity. After each task the trainable parameters are copied (θ*), replacing
the previous copy, and every later step adds

    (λ/2) Σ_i (θ_i − θ*_i)²

(the same ½ as ``ewc``, so ``l2`` with λ equals ``ewc`` with λ and F ≡ 1;
GT-RIPL's ``reg_coef`` c is λ = 2c). Parameters are matched by name
(``backbone.model.named_parameters()`` that require grad); parameters added
later (new adapters or heads) are not penalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.registry import strategies
from clft.strategies._anchor import Tensors, snapshot, tensor_bytes, to_cpu
from clft.strategies.ewc import trainable
from clft.types import Backbone, Batch, Outputs, Strategy, Task


@strategies.register()
class L2(Strategy):
    """Isotropic quadratic pull to the parameters at the end of the last task."""

    name = "l2"

    @dataclass
    class Config:
        lam: float = 1.0
        """λ, the penalty strength (≥ 0) of (λ/2) Σ (θ − θ*)²."""

        def __post_init__(self) -> None:
            if self.lam < 0:
                raise ValueError(f"lam must be non-negative, got {self.lam}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.anchor: Tensors = {}  # θ* at the end of the last task

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        """(λ/2) Σ_i (θ_i − θ*_i)² over the named parameters both sides know."""
        total = None
        for name, p in trainable(backbone).items():
            anchor = self.anchor.get(name)
            if anchor is None or anchor.shape != p.shape:
                continue
            if anchor.device != p.device:  # after load_state_dict: move once, keep there
                self.anchor[name] = anchor = anchor.to(p.device)
            part = (p.float() - anchor).pow(2).sum()
            total = part if total is None else total + part
        return None if total is None else self.config.lam / 2 * total

    def after_task(self, backbone: Backbone, task: Task) -> None:
        self.anchor = snapshot(backbone)

    def extra_state_bytes(self) -> int:
        return tensor_bytes(self.anchor)

    def state_dict(self) -> dict:
        return {"anchor": to_cpu(self.anchor)}

    def load_state_dict(self, state: dict) -> None:
        self.anchor = to_cpu(state["anchor"])
