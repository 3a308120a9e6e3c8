"""Per-example importances of ``nn.Linear`` parameters from one batched backward pass.

For an ``nn.Linear`` y = a Wᵀ + b that example n reaches with inputs a_{n,t} (t over its
tokens and over repeated calls; a single t for a feature vector), and g_{n,t} = ∂f_n/∂y_{n,t}:

    ∂f_n/∂W = Σ_t g_{n,t} a_{n,t}ᵀ          ∂f_n/∂b = Σ_t g_{n,t}

The g_{n,t} of every example come from one backward pass of Σ_n f_n when the examples do not
interact in the forward pass (eval mode, padding masked out). With a single t the square and the
absolute value factor over the outer product, so no per-example gradient is ever formed:

    Σ_n (g_n a_nᵀ)² = (g²)ᵀ (a²)            Σ_n |g_n a_nᵀ| = |g|ᵀ |a|

(one matrix product per layer; BackPACK's ``SumGradSquared`` uses the same identity for the
square). With several t the per-example gradients are formed by ``einsum`` for a few examples
at a time (``GRADIENT_BUDGET`` floats) and reduced. This is what makes the importances of an MLP
and of LoRA fast: ``vmap(grad)`` materialises every example's full gradient, which is
memory-bound on a CPU (``benchmarks/speed_extras.py`` measures the three ways).

Written by hand rather than with BackPACK: BackPACK has the square but not MAS's absolute
value, and it must wrap the model; the identity is a line per case here.

``linear_owners`` says whether the path applies (every trainable parameter is the weight or
bias of an ``nn.Linear``: MLPs, LoRA's A and B, classifier heads). ``linear_sums`` also checks
the assumption it cannot see (a parameter used outside its module's forward, tied weights,
examples that interact): Σ_n ∂f_n/∂θ assembled from the pieces must equal autograd's batch
gradient, else it raises ``NotLinear`` and the caller falls back to ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Tensors = dict[str, torch.Tensor]
GRADIENT_BUDGET = 2**23
"""Floats of per-example weight gradients formed at once in the several-token case (32 MB)."""


class NotLinear(RuntimeError):
    """The batch gradient assembled from the layers' pieces does not match autograd's."""


def linear_owners(model: nn.Module) -> dict[str, tuple[nn.Linear, str]] | None:
    """{parameter name: (its nn.Linear, "weight" | "bias")} for every trainable parameter of
    ``model`` (names as ``model.named_parameters()``), or None when one is not an nn.Linear's."""
    owners = {}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            for attr in ("weight", "bias"):
                param = getattr(module, attr)
                if param is not None and param.requires_grad:
                    owners[f"{module_name}.{attr}" if module_name else attr] = (module, attr)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return owners if trainable and set(owners) == trainable else None


def linear_sums(owners: dict[str, tuple[nn.Linear, str]], per_example: Callable[[dict], torch.Tensor],
                batch: dict, reduce: str) -> Tensors:
    """Σ_n reduce(∂f_n/∂θ) per parameter (``reduce``: "square" or "abs"), f = ``per_example(batch)`` [B]."""
    modules = list({id(m): m for m, _ in owners.values()}.values())
    values, recorded = _record_calls(modules, per_example, batch)
    outputs = [y for m in modules for _, y in recorded[m]]
    params = [getattr(m, attr) for m, attr in owners.values()]
    grads = torch.autograd.grad(values.sum(), outputs + params, allow_unused=True)
    out_grads, batch_grads = iter(grads[: len(outputs)]), dict(zip(owners, grads[len(outputs) :]))
    pieces = {m: _stack(recorded[m], out_grads, len(values)) for m in modules if recorded[m]}
    sums = {}
    for name, (module, attr) in owners.items():
        if module not in pieces:  # not reached by this batch: no gradient
            sums[name] = torch.zeros_like(getattr(module, attr), dtype=torch.float32)
            continue
        inputs, gradients = pieces[module]
        total, reduced = _weight(inputs, gradients, reduce) if attr == "weight" else _bias(gradients, reduce)
        _check(name, total, batch_grads[name])
        sums[name] = reduced
    return sums


def _record_calls(modules: list[nn.Module], per_example: Callable, batch: dict) -> tuple[torch.Tensor, dict]:
    """(``per_example(batch)``, {module: [(input, output) per call]})."""
    record: dict[nn.Module, list] = {m: [] for m in modules}

    def hook(module, inputs, output):
        record[module].append((inputs[0].detach(), output))

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.enable_grad():
            values = per_example(batch)
    finally:
        for handle in handles:
            handle.remove()
    if values.dim() != 1:
        raise NotLinear(f"per_example must return one value per example, got shape {tuple(values.shape)}")
    return values, record


def _stack(calls: list, out_grads, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs [n, T, in], output gradients [n, T, out]) over every call and token of one module, float32."""
    inputs, grads = [], []
    for a, _ in calls:
        g = next(out_grads)
        if a.shape[0] != n:
            raise NotLinear(f"a layer's input has {a.shape[0]} rows for {n} examples")
        inputs.append(a.float().reshape(n, -1, a.shape[-1]))
        grads.append(g.float().reshape(n, -1, g.shape[-1]))
    return torch.cat(inputs, dim=1), torch.cat(grads, dim=1)


def _weight(a: torch.Tensor, g: torch.Tensor, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_n ∂f_n/∂W, Σ_n reduce(∂f_n/∂W)) for inputs a [n, T, in] and output gradients g [n, T, out]."""
    total = torch.einsum("nto,nti->oi", g, a)
    if a.shape[1] == 1:  # the outer product factors
        power = (lambda x: x.pow(2)) if reduce == "square" else torch.abs
        return total, power(g[:, 0]).T @ power(a[:, 0])
    step = max(1, GRADIENT_BUDGET // (g.shape[-1] * a.shape[-1]))
    reduced = torch.zeros_like(total)
    for start in range(0, a.shape[0], step):
        per_example = torch.einsum("nto,nti->noi", g[start : start + step], a[start : start + step])
        reduced += (per_example.pow(2) if reduce == "square" else per_example.abs()).sum(dim=0)
    return total, reduced


def _bias(g: torch.Tensor, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_n ∂f_n/∂b, Σ_n reduce(∂f_n/∂b)) with ∂f_n/∂b = Σ_t g_{n,t}."""
    per_example = g.sum(dim=1)
    return per_example.sum(dim=0), per_example.pow(2).sum(dim=0) if reduce == "square" else per_example.abs().sum(0)


def _check(name: str, assembled: torch.Tensor, autograd: torch.Tensor | None) -> None:
    if autograd is None:
        raise NotLinear(f"{name}: the layer ran but the parameter got no gradient")
    scale = float(autograd.abs().max()) + 1e-12
    if assembled.shape != autograd.shape or float((assembled - autograd.float()).abs().max()) > 1e-4 * scale:
        raise NotLinear(f"{name}: the layer's pieces do not add up to its batch gradient")
