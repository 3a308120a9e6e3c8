"""``derpp``: DER++, Dark Experience Replay with a label term.

Buzzega et al. 2020, "Dark Experience for General Continual Learning: a
Strong, Simple Baseline", NeurIPS (Sec. 3, DER++). Everything of ``der`` (the
same reservoir buffer of examples and their logits at insertion time), plus a
cross-entropy on the stored labels of a second, independently drawn buffer
batch (x'', y''):

    α · MSE( f(x'; θ), z' ) + β · CE( f(x''; θ), y'' )

The CE is ``backbone.loss`` on the buffer rows, each masked by its own task's
label space. (The registry's names cannot contain "++", so DER++ is ``derpp``.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.registry import strategies
from clft.strategies.der import DER
from clft.types import Backbone, Task


@strategies.register()
class DERpp(DER):
    """DER plus cross-entropy on a second buffer batch's labels."""

    name = "derpp"

    @dataclass
    class Config(DER.Config):
        beta: float = 0.5
        """β, the weight of the cross-entropy on buffer labels (≥ 0)."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.beta < 0:
                raise ValueError(f"beta must be non-negative, got {self.beta}")

    def buffer_loss(self, backbone: Backbone, task: Task, batch_size: int) -> torch.Tensor:
        """α · MSE(f(x'), z') + β · CE(f(x''), y'') on two independent buffer batches."""
        dark = super().buffer_loss(backbone, task, batch_size)
        return dark + self.config.beta * backbone.loss(self.sample(backbone, batch_size), task)
