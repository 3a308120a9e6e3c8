"""Per-example parameter importances (EWC's Fisher, MAS's Ω) with ``torch.func``.

    importance[i] = (1/N) Σ_n r(∂ f(x_n; θ) / ∂θ_i)        r = square (EWC) or abs (MAS)

where ``f(batch)`` is a scalar of a batch of one example. The gradients of a
chunk of examples come from one ``torch.func.vmap(torch.func.grad(f))`` call
(per-example gradients, Opacus-style; chunks of up to 256 examples of
similar length), not from a Python loop of N backward
passes. Only trainable parameters are differentiated; the model's other
weights and buffers are read as constants. The model runs in eval mode, and
the training ``.grad`` buffers are untouched.

Inside vmap each example is a batch of one carrying ``PER_EXAMPLE: True``, so a
backbone can avoid data-dependent control flow there (``hf-classifier`` passes a
4-D attention mask, which transformers does not inspect). Models whose forward
still cannot be vmapped (data-dependent Python control flow,
``.item()``) fall back to the per-example loop, with a warning naming the
reason; the values are the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from clft.columns import columns
from clft.types import Backbone, Batch

Tensors = dict[str, torch.Tensor]
GRADIENT_BUDGET = 2**23
"""Floats of per-example gradients held at once (32 MB; larger chunks were slower on the CPU, memory-bound)."""
MAX_CHUNK = 256
PER_EXAMPLE = "per_example"
"""Key set (True) in the batch of one example that ``torch.func.vmap`` runs."""
Relabel = Callable[[dict], dict] | None
REDUCE = {"square": lambda g: g.float().pow(2), "abs": lambda g: g.float().abs()}


class _Call(nn.Module):
    """``fn(batch)`` as a module owning ``model``, so ``functional_call`` can swap the model's weights."""

    def __init__(self, model: nn.Module, fn: Callable[[Batch], torch.Tensor]) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.fn(batch)


def _vmapped_sum(call: _Call, params: Tensors, batch: Batch, reduce) -> Tensors:
    """Σ over the batch's examples of reduce(per-example gradient), by vmap(grad)."""
    def one(weights: Tensors, example: Batch) -> torch.Tensor:
        single = {key: value.unsqueeze(0) for key, value in example.items()}
        single[PER_EXAMPLE] = True
        return torch.func.functional_call(call, weights, (single,))

    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0))(params, batch)
    return {name: reduce(g).sum(dim=0) for name, g in grads.items()}


def _looped_sum(call: _Call, params: Tensors, backbone: Backbone, data, rows: Sequence[int], reduce,
                relabel: Relabel = None) -> Tensors:
    """The same sum, one backward pass per example (the fallback; ``params`` are the live parameters)."""
    sums = {"model." + name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    for row in rows:
        examples = data[[row]]
        value = call(backbone.collate(examples if relabel is None else relabel(examples)))
        for name, g in zip(sums, torch.autograd.grad(value, list(params.values()), allow_unused=True)):
            if g is not None:
                sums[name] += reduce(g.detach())
    return sums


def chunk_size(params: Tensors) -> int:
    """Examples per vmap call: as many per-example gradients as fit ``GRADIENT_BUDGET``, 1..MAX_CHUNK."""
    return max(1, min(MAX_CHUNK, GRADIENT_BUDGET // max(1, sum(p.numel() for p in params.values()))))


def by_length(backbone: Backbone, dataset, rows: Sequence[int]) -> list[int]:
    """``rows`` shortest first when the backbone knows lengths (less padding per chunk); else as given."""
    lengths = backbone.lengths(dataset)
    return list(rows) if lengths is None else sorted(rows, key=lambda row: lengths[row])


def per_example_mean(backbone: Backbone, dataset, rows: Sequence[int], fn: Callable[[Batch], torch.Tensor],
                     reduce: str, vectorised: bool = True, relabel: Relabel = None) -> Tensors:
    """(1/N) Σ_n reduce(∂ fn(example_n)/∂θ) over ``rows`` of ``dataset`` (prepared), per trainable parameter.

    Keys are ``backbone.model.named_parameters()`` names of parameters that require grad. ``relabel``
    (optional) maps a chunk's columnar examples to the examples to differentiate (EWC's predicted labels),
    outside vmap and in eval mode.
    """
    prefix = "model."
    params = {prefix + name: p.detach() for name, p in backbone.model.named_parameters() if p.requires_grad}
    chunk, rows = chunk_size(params), by_length(backbone, dataset, rows)
    call, data, red = _Call(backbone.model, fn), columns(dataset), REDUCE[reduce]
    sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    was_training = backbone.model.training
    backbone.model.eval()
    try:
        for start in range(0, len(rows), chunk):
            part = list(rows[start : start + chunk])
            if vectorised:
                try:
                    examples = data[part]
                    batch = backbone.collate(examples if relabel is None else relabel(examples))
                    parts = _vmapped_sum(call, params, batch, red)
                except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
                    warnings.warn(f"per-example gradients by torch.func failed ({exc}); using a loop", stacklevel=2)
                    vectorised = False
            if not vectorised:
                parts = _looped_sum(call, _live(backbone), backbone, data, part, red, relabel)
            for name, value in parts.items():
                sums[name] += value
    finally:
        backbone.model.train(was_training)
    return {name[len(prefix):]: s / max(len(rows), 1) for name, s in sums.items()}


def _live(backbone: Backbone) -> dict[str, nn.Parameter]:
    return {name: p for name, p in backbone.model.named_parameters() if p.requires_grad}
