"""Helpers shared by the importance-weighted regularisers (``si``, ``mas``).

Both keep one importance Ω and one anchor θ* per parameter name and add
``strength · Σ_i Ω_i (θ_i − θ*_i)²``; parameters are matched by name among
``backbone.model.named_parameters()`` that require grad, and names the model
lacks (or whose shape changed) are skipped.
"""

from __future__ import annotations

import torch

from clft.strategies.ewc import trainable
from clft.types import Backbone

Tensors = dict[str, torch.Tensor]


def snapshot(backbone: Backbone) -> Tensors:
    """A float32 copy of every trainable parameter, on its own device."""
    return {name: p.detach().float().clone() for name, p in trainable(backbone).items()}


def quadratic_penalty(backbone: Backbone, importance: Tensors, anchor: Tensors) -> torch.Tensor | None:
    """Σ_i Ω_i (θ_i − θ*_i)² (None when no parameter is penalised).

    ``importance`` and ``anchor`` are moved to each parameter's device the
    first time (in place in the dicts, so a loaded state moves only once).
    """
    params = trainable(backbone)
    total = None
    for name, omega in importance.items():
        p = params.get(name)
        if p is None or p.shape != omega.shape:
            continue
        if omega.device != p.device:
            importance[name] = omega = omega.to(p.device)
            anchor[name] = anchor[name].to(p.device)
        part = (omega * (p.float() - anchor[name]).pow(2)).sum()
        total = part if total is None else total + part
    return total


def tensor_bytes(*groups: Tensors | None) -> int:
    """Bytes held by the tensors of the given name -> tensor dicts."""
    return sum(t.numel() * t.element_size() for group in groups if group for t in group.values())


def to_cpu(tensors: Tensors | None) -> Tensors | None:
    """A CPU copy (None stays None), for ``state_dict``/``load_state_dict``."""
    return None if tensors is None else {name: t.detach().cpu().clone() for name, t in tensors.items()}
