"""Per-example parameter importances (EWC's Fisher, MAS's Ω) with ``torch.func``.

    importance[i] = (1/N) Σ_n r(∂ f(x_n; θ) / ∂θ_i)        r = square (EWC) or abs (MAS)

where ``f(batch)`` is a scalar of a batch of one example. For feature-vector
inputs, when every trainable parameter is the weight or bias of an ``nn.Linear``
(MLPs), a chunk's sum comes from one batched backward pass and the layers'
inputs (``_linear_importance``: no per-example gradient is formed). Otherwise
(token sequences, other layers) the
gradients of a chunk of examples come from one ``torch.func.vmap(torch.func.grad(f))`` call
(per-example gradients, Opacus-style; chunks of up to 256 examples of
similar length and at most ``SEQUENCE_TOKENS`` padded tokens), not from a Python loop of N backward
passes. Only trainable parameters are differentiated; the model's other
weights and buffers are read as constants. The model runs in eval mode, and
the training ``.grad`` buffers are untouched.

Inside vmap each example is a batch of one carrying ``PER_EXAMPLE: True``, so a
backbone can avoid data-dependent control flow there: the HuggingFace backbones
(``hf-classifier``, ``hf-causal-lm``) pass a prepared 4-D attention mask, which
transformers takes as given, instead of the 2-D one whose "is anything padded?"
check calls ``.item()`` (``HFBackbone.per_example_forward``). Models whose forward
still cannot be vmapped (data-dependent Python control flow,
``.item()``) fall back to the per-example loop, with a warning naming the
reason; the values are the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from clft.data.columns import columns
from clft.strategies._linear_importance import NotLinear, linear_owners, linear_sums
from clft.types import Backbone, Batch

Tensors = dict[str, torch.Tensor]
GRADIENT_BUDGET = 2**23
"""Floats of per-example gradients held at once (32 MB; larger chunks were slower on the CPU, memory-bound)."""
MAX_CHUNK = 256
SEQUENCE_CHUNK = 64
"""Examples of token sequences per batched backward pass of the nn.Linear path (length-sorted: a larger
chunk spans more lengths and pads more; 64 was fastest for MiniLM on CLINC150, 256 was 35% slower)."""
SEQUENCE_TOKENS = 512
"""Padded tokens (examples x the chunk's longest ``backbone.lengths``) per chunk of token sequences, either
path: a chunk's activations stay in memory until its backward pass. EWC on SmolLM2-135M + LoRA (32 AG News
examples of 31-137 tokens, one CPU thread): the gradient budget alone gave vmap chunks of 18 examples,
15.2 GB peak RSS; with this bound 6.2 GB (the nn.Linear path 3.4 GB, the loop 2.1 GB), all three in 28 s
of CPU. MiniLM on CLINC150 is as fast with it as without (256 tokens: 5-15% slower)."""
PREFIX = "model."
"""Prefix of the parameter names inside ``_Call`` (the model is its ``model`` attribute)."""
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
    sums = {PREFIX + name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
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


def linear_chunk(backbone: Backbone, dataset) -> int:
    """Examples per batched pass of the nn.Linear path: ``SEQUENCE_CHUNK`` for token sequences, else ``MAX_CHUNK``."""
    return SEQUENCE_CHUNK if backbone.lengths(dataset) is not None else MAX_CHUNK


def token_bounded(limit: int, rows: Sequence[int], start: int, lengths: Sequence[int] | None) -> int:
    """Examples in the chunk from ``rows[start]``: at most ``limit``, and for token sequences (``rows``
    shortest first) as many as keep n × (the n-th row's length) within ``SEQUENCE_TOKENS``; at least 1."""
    count = min(limit, len(rows) - start)
    if lengths is None:
        return count
    while count > 1 and count * lengths[rows[start + count - 1]] > SEQUENCE_TOKENS:
        count -= 1
    return count


def by_length(backbone: Backbone, dataset, rows: Sequence[int]) -> list[int]:
    """``rows`` shortest first when the backbone knows lengths (less padding per chunk); else as given."""
    lengths = backbone.lengths(dataset)
    return list(rows) if lengths is None else sorted(rows, key=lambda row: lengths[row])


HOWS = ("auto", "linear", "vmap", "loop")


def per_example_mean(backbone: Backbone, dataset, rows: Sequence[int], fn: Callable[[Batch], torch.Tensor],
                     reduce: str, how: str = "auto", relabel: Relabel = None,
                     per_example: Callable[[Batch], torch.Tensor] | None = None) -> Tensors:
    """(1/N) Σ_n reduce(∂ fn(example_n)/∂θ) over ``rows`` of ``dataset`` (prepared), per trainable parameter.

    Keys are ``backbone.model.named_parameters()`` names of parameters that require grad. ``relabel``
    (optional) maps a chunk's columnar examples to the examples to differentiate (EWC's predicted labels),
    outside vmap and in eval mode. ``per_example`` (optional) returns the [B] values whose n-th entry is
    ``fn`` of example n alone; it enables the ``nn.Linear`` path (``_linear_importance``).

    ``how``: "auto" (default) takes the nn.Linear path (``_linear_importance``) for feature-vector
    inputs (the backbone reports no lengths) when ``per_example`` is given and every trainable
    parameter is an nn.Linear's (an MLP: 10x the loop there, where vmap is slower than the loop),
    else vmap: for token sequences the two cost the same, both bound by the batched backward pass
    (``benchmarks/speed_extras.py``). "linear", "vmap" and "loop" force one way; "linear" falls back
    to vmap with a warning when the layers' pieces do not add up to the batch gradient.
    """
    if how not in HOWS:
        raise ValueError(f"how must be one of {', '.join(HOWS)}, got {how!r}")
    vectors = backbone.lengths(dataset) is None
    wants_linear = how == "linear" or (how == "auto" and vectors)
    owners = linear_owners(backbone.model) if per_example is not None and wants_linear else None
    if how == "linear" and owners is None:
        raise ValueError("how='linear' needs per_example and every trainable parameter an nn.Linear's")
    job = _Job(backbone, columns(dataset), fn, reduce, relabel, owners, per_example)
    how = "linear" if owners is not None else "loop" if how == "loop" else "vmap"
    linear_step, rows = linear_chunk(backbone, dataset), by_length(backbone, dataset, rows)
    lengths = backbone.lengths(dataset)
    sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in job.params.items()}
    was_training = backbone.model.training
    backbone.model.eval()
    try:
        start = 0
        while start < len(rows):
            chunk = token_bounded(linear_step if how == "linear" else chunk_size(job.params), rows, start, lengths)
            parts, how = job.chunk_sum(list(rows[start : start + chunk]), how)
            if parts is None:  # the pieces did not add up: this chunk again, in vmap's (smaller) chunks
                continue
            for name, value in parts.items():
                sums[name] += value
            start += chunk
    finally:
        backbone.model.train(was_training)
    return {name[len(PREFIX):]: s / max(len(rows), 1) for name, s in sums.items()}


class _Job:
    """What every chunk of one ``per_example_mean`` call shares (keys of sums carry ``PREFIX``)."""

    def __init__(self, backbone: Backbone, data, fn, reduce: str, relabel: Relabel, owners, per_example) -> None:
        self.backbone, self.data, self.reduce, self.relabel = backbone, data, reduce, relabel
        self.owners, self.per_example = owners, per_example
        self.call = _Call(backbone.model, fn)
        self.params = {PREFIX + name: p.detach() for name, p in _live(backbone).items()}

    def chunk_sum(self, part: list[int], how: str) -> tuple[Tensors | None, str]:
        """(Σ over ``part`` of reduce(per-example gradient), the way used): linear, else vmap, else the
        loop; a way that fails on a chunk is dropped for the rest of the call, with a warning naming why.
        When the nn.Linear pieces fail the sums are None: the caller redoes the rows in vmap-sized chunks
        (``chunk_size``: a linear chunk of 256 MLP examples would hold 256 full gradients)."""
        if how in ("linear", "vmap"):
            examples = self.data[part]
            batch = self.backbone.collate(examples if self.relabel is None else self.relabel(examples))
            try:
                if how == "linear":
                    sums = linear_sums(self.owners, self.per_example, batch, self.reduce)
                    return {PREFIX + name: value for name, value in sums.items()}, how
                return _vmapped_sum(self.call, self.params, batch, REDUCE[self.reduce]), how
            except NotLinear as exc:
                warnings.warn(f"per-example importances by nn.Linear pieces failed ({exc}); using vmap", stacklevel=3)
                return None, "vmap"
            except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
                if how == "linear":
                    raise
                warnings.warn(f"per-example gradients by torch.func failed ({exc}); using a loop", stacklevel=3)
        sums = _looped_sum(self.call, _live(self.backbone), self.backbone, self.data, part, REDUCE[self.reduce],
                           self.relabel)
        return sums, "loop"


def _live(backbone: Backbone) -> dict[str, nn.Parameter]:
    return {name: p for name, p in backbone.model.named_parameters() if p.requires_grad}
