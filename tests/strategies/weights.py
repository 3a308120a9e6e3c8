"""Weight snapshots and perturbations shared by the regulariser tests."""

import torch


def params(backbone) -> dict[str, torch.Tensor]:
    """A detached copy of every named parameter of the backbone's model."""
    return {n: p.detach().clone() for n, p in backbone.model.named_parameters()}


def nudge(backbone, scale=0.05) -> None:
    """Move every parameter by Gaussian noise of std ``scale`` (seeded by the caller)."""
    with torch.no_grad():
        for p in backbone.model.parameters():
            p.add_(torch.randn_like(p) * scale)
