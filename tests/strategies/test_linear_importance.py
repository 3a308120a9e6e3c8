"""Per-example importances from nn.Linear pieces (``clft.strategies._linear_importance``, issue 10)."""

import warnings

import pytest
import torch
from test_importance import trained_backbone
from torch import nn

import clft.strategies._importance as importance
from clft.strategies._linear_importance import NotLinear, linear_owners, linear_sums


class TwoCalls(nn.Module):
    """A Linear reached twice per example on token sequences [B, T, 3], then a head on the mean."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.head = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.inner(torch.tanh(self.inner(x[..., :3]) @ torch.ones(4, 3))))
        return self.head(hidden.mean(dim=1))


class Tied(nn.Module):
    """The Linear's weight is also used outside its module's forward: its pieces miss that use."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) + x @ self.layer.weight


def brute_force(model: nn.Module, x: torch.Tensor, reduce: str) -> dict:
    """Σ_n reduce(∂ f_n/∂θ) with one autograd call per example, f_n = Σ of example n's outputs squared."""
    params = dict(model.named_parameters())
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    for row in x:
        grads = torch.autograd.grad(model(row[None]).pow(2).sum(), list(params.values()))
        for name, g in zip(params, grads):
            sums[name] += g.pow(2) if reduce == "square" else g.abs()
    return sums


@pytest.mark.parametrize("reduce", ["square", "abs"])
@pytest.mark.parametrize("shape", [(6, 3), (6, 5, 3)])
def test_pieces_equal_brute_force_per_example_gradients(reduce, shape):
    torch.manual_seed(0)
    model = TwoCalls() if len(shape) == 3 else nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(*shape)
    owners = linear_owners(model)
    assert set(owners) == {name for name, _ in model.named_parameters()}
    fast = linear_sums(owners, lambda batch: model(batch["x"]).pow(2).sum(dim=-1), {"x": x}, reduce)
    slow = brute_force(model, x, reduce)
    # the squares of summed per-example gradients differ from the squares of the batch gradient
    batch_grad = torch.autograd.grad(model(x).pow(2).sum(), list(model.parameters()))[0]
    assert not torch.allclose(slow[next(iter(slow))], batch_grad.pow(2) if reduce == "square" else batch_grad.abs())
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-5, atol=1e-6, msg=name)


def test_a_weight_used_outside_its_module_is_caught():
    model = Tied()
    with pytest.raises(NotLinear, match="layer.weight"):
        linear_sums(linear_owners(model), lambda batch: model(batch["x"]).pow(2).sum(dim=-1),
                    {"x": torch.randn(4, 3)}, "square")


def test_only_models_whose_trainable_parameters_are_all_linear_qualify():
    assert linear_owners(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))) is None
    frozen_norm = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    frozen_norm[1].requires_grad_(False)
    assert set(linear_owners(frozen_norm)) == {"0.weight", "0.bias"}
    assert linear_owners(nn.Sequential(nn.LayerNorm(2)).requires_grad_(False)) is None  # nothing trainable


@pytest.mark.parametrize("spec, method", [({"name": "ewc", "fisher_samples": 40}, "fisher"),
                                          ({"name": "mas", "samples": 40}, "sensitivity")])
@pytest.mark.parametrize("how", ["auto", "linear"])
def test_an_mlp_takes_the_linear_path_by_default_and_it_equals_the_loop(spec, method, how, monkeypatch):
    from clft.registry import strategies

    backbone, task = trained_backbone("mlp")
    strategy = strategies.build(spec)
    strategy.before_task(backbone, task, [task])
    state = strategy.rng.bit_generator.state
    slow = getattr(strategy, method)(backbone, task, how="loop")
    strategy.rng.bit_generator.state = state

    def refuse(*args, **kwargs):
        raise AssertionError(f"how={how!r} should not take this way for an MLP")

    monkeypatch.setattr(importance, "_vmapped_sum", refuse)
    monkeypatch.setattr(importance, "_looped_sum", refuse)
    fast = getattr(strategy, method)(backbone, task, how=how)
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-5, atol=1e-5, msg=name)


def test_the_default_falls_back_to_vmap_with_a_warning_when_the_pieces_do_not_add_up(monkeypatch):
    from clft.registry import strategies

    monkeypatch.setattr(importance, "GRADIENT_BUDGET", 8 * 3500)  # vmap chunks of 8 examples for this MLP
    vmapped_rows = []
    vmapped_sum = importance._vmapped_sum
    monkeypatch.setattr(importance, "_vmapped_sum", lambda call, params, batch, reduce: (
        vmapped_rows.append(len(batch["label"])), vmapped_sum(call, params, batch, reduce))[1])
    backbone, task = trained_backbone("mlp")
    layer = backbone.model[0]
    original = layer.forward
    layer.forward = lambda x: original(x) + 0.1 * (x @ layer.weight.T)  # the weight used outside the module call
    strategy = strategies.build({"name": "ewc", "fisher_samples": 40})
    strategy.before_task(backbone, task, [task])
    state = strategy.rng.bit_generator.state
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = strategy.fisher(backbone, task)
    assert any("nn.Linear pieces failed" in str(w.message) for w in caught)
    limit = importance.chunk_size({n: p for n, p in backbone.model.named_parameters()})
    assert sum(vmapped_rows) == 40 and max(vmapped_rows) <= limit < 40  # vmap's own bound, not the linear chunk
    strategy.rng.bit_generator.state = state
    slow = strategy.fisher(backbone, task, how="loop")
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-5, atol=1e-5, msg=name)


def test_the_linear_path_needs_linear_parameters():
    from clft.registry import strategies

    backbone, task = trained_backbone("mlp")
    backbone.model.append(nn.LayerNorm(backbone.model[-1].out_features))
    strategy = strategies.build({"name": "mas", "samples": 8})
    strategy.before_task(backbone, task, [task])
    with pytest.raises(ValueError, match="every trainable parameter an nn.Linear's"):
        strategy.sensitivity(backbone, task, how="linear")


def test_token_sequences_keep_vmap_by_default(monkeypatch):
    """For MiniLM + LoRA the nn.Linear path costs what vmap costs (both bound by the batched backward
    pass), so "auto" keeps vmap there: no committed text result moves."""
    from clft.registry import strategies

    backbone, task = trained_backbone("minilm-lora")
    strategy = strategies.build({"name": "mas", "samples": 8})
    strategy.before_task(backbone, task, [task])
    monkeypatch.setattr(importance, "linear_sums", lambda *a, **k: pytest.fail("auto took the linear path"))
    assert strategy.sensitivity(backbone, task)  # vmap ran
