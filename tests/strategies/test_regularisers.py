"""si, mas and lwf against their formulas, computed by hand on a linear model (hidden=())."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from weights import nudge, params

from clft.errors import ConfigError
from clft.registry import strategies
from clft.testing import extra_loss, start_task, step, tiny, train


@pytest.mark.parametrize("spec", [
    {"name": "si", "c": -1.0}, {"name": "si", "xi": 0.0},
    {"name": "mas", "lam": -1.0}, {"name": "mas", "samples": 0}, {"name": "mas", "batch_size": 0},
    {"name": "lwf", "lam": -0.5}, {"name": "lwf", "temperature": 0.0}, {"name": "lwf-vandeven", "lam": -1.0},
])
def test_invalid_options(spec):
    with pytest.raises(ConfigError):
        strategies.build(spec)


# ---------------------------------------------------------------- si


def test_si_path_integral_and_penalty_match_a_hand_computed_run():
    backbone, tasks = tiny(hidden=())
    si = strategies.build({"name": "si", "c": 0.5, "xi": 0.01})
    task = tasks[0]
    start_task(backbone, [si], task, tasks)
    start, omega = params(backbone), {n: torch.zeros_like(p) for n, p in backbone.model.named_parameters()}
    optimizer = torch.optim.Adam(backbone.trainable_parameters(), lr=0.05)  # Δθ ≠ −lr·g: the real update counts
    for i in range(4):
        before = params(backbone)
        step(backbone, [si], task, optimizer, backbone.collate(task.train[i * 16 : (i + 1) * 16]))
        grads = dict(si.prev_grad)
        for n, p in backbone.model.named_parameters():
            omega[n] -= grads[n] * (p.detach() - before[n])
    si.after_task(backbone, task)
    end = params(backbone)
    for n in end:
        expected = omega[n] / ((end[n] - start[n]) ** 2 + 0.01)
        torch.testing.assert_close(si.importance[n], expected, rtol=1e-5, atol=1e-8)
        assert torch.equal(si.anchor[n], end[n])
    assert si.prev_grad is None and si.extra_state_bytes() == 2 * sum(p.numel() * 4 for p in end.values())

    nudge(backbone)
    batch = backbone.collate(tasks[1].train[:8])
    by_hand = 0.5 * sum((si.importance[n] * (p - end[n]) ** 2).sum() for n, p in params(backbone).items())
    torch.testing.assert_close(extra_loss(si, backbone, batch, tasks[1]), by_hand)


def test_si_reads_the_gradient_without_its_own_penalty():
    backbone, tasks = tiny(hidden=())
    si = strategies.build({"name": "si", "c": 10.0})
    train(backbone, [si], tasks, stop=1)
    start_task(backbone, [si], tasks[1], tasks)
    nudge(backbone, 0.2)
    backbone.model.zero_grad(set_to_none=True)
    batch = backbone.collate(tasks[1].train[:16])
    task_loss = backbone.loss(batch, tasks[1])
    expected = torch.autograd.grad(task_loss, backbone.trainable_parameters(), retain_graph=True)
    (task_loss + extra_loss(si, backbone, batch, tasks[1])).backward()
    si.before_step(backbone, tasks[1])
    for (name, p), grad in zip(backbone.model.named_parameters(), expected):
        assert not torch.allclose(p.grad, grad)  # the penalty did contribute to .grad
        torch.testing.assert_close(si.prev_grad[name], grad, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- mas


def hand_mas(backbone, task) -> dict[str, torch.Tensor]:
    """mean_n |∂‖z_A(x_n)‖²/∂θ| for z = Wx + b over the allowed classes A: 2 z_c x and 2 z_c."""
    weight, bias = backbone.model[0].weight.detach(), backbone.model[0].bias.detach()
    allowed = list(backbone.label_space.allowed(task.id))
    x = torch.tensor(task.train["x"])
    z = torch.zeros(len(x), weight.shape[0])
    z[:, allowed] = (x @ weight.T + bias)[:, allowed]
    return {"0.weight": (2 * z[:, :, None] * x[:, None, :]).abs().mean(0), "0.bias": (2 * z).abs().mean(0)}


def test_mas_importance_accumulates_and_penalises_by_hand():
    backbone, tasks = tiny(hidden=())
    mas = strategies.build({"name": "mas", "lam": 3.0})
    train(backbone, [mas], tasks, stop=1)
    first = hand_mas(backbone, tasks[0])
    for name, value in first.items():
        torch.testing.assert_close(mas.importance[name], value, rtol=1e-4, atol=1e-7)
    train(backbone, [mas], tasks, start=1, stop=2)
    second = hand_mas(backbone, tasks[1])  # class-il: the allowed classes are now 0..3
    anchor = params(backbone)
    for name in first:
        torch.testing.assert_close(mas.importance[name], first[name] + second[name], rtol=1e-4, atol=1e-6)
        assert torch.equal(mas.anchor[name], anchor[name])
    nudge(backbone)
    by_hand = 3.0 * sum(((first[n] + second[n]) * (p - anchor[n]) ** 2).sum() for n, p in params(backbone).items())
    penalty = extra_loss(mas, backbone, backbone.collate(tasks[2].train[:4]), tasks[2])
    torch.testing.assert_close(penalty, by_hand, rtol=1e-4, atol=1e-6)


def test_mas_sample_and_batches_leave_training_gradients_alone():
    backbone, tasks = tiny()
    mas = strategies.build({"name": "mas", "samples": 40, "batch_size": 8})
    for p in backbone.trainable_parameters():
        p.grad = torch.ones_like(p)
    start_task(backbone, [mas], tasks[0], tasks)
    mas.after_task(backbone, tasks[0])
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in backbone.trainable_parameters())
    assert backbone.model.training and all((v >= 0).all() for v in mas.importance.values())


# ---------------------------------------------------------------- lwf


def hand_lwf(new, old, groups, lam, t):
    total = 0.0
    for group in groups:
        p_old = F.softmax(old[:, group] / t, dim=1)
        total = total + (p_old * (p_old.log() - F.log_softmax(new[:, group] / t, dim=1))).sum(1).mean()
    return lam * t * t * total


@pytest.mark.parametrize("scenario, groups", [
    ("class-il", [[0, 1, 2, 3]]), ("task-il", [[0, 1], [2, 3]]), ("domain-il", [[0, 1]]),
])
def test_lwf_distils_the_old_model_over_the_old_classes(scenario, groups):
    backbone, tasks = tiny(scenario)
    lwf = strategies.build({"name": "lwf", "lam": 2.0, "temperature": 3.0})
    train(backbone, [lwf], tasks, stop=2)
    old_model = params(backbone)
    start_task(backbone, [lwf], tasks[2], tasks)
    assert lwf.groups == groups
    batch = backbone.collate(tasks[2].train[:16])
    assert extra_loss(lwf, backbone, batch, tasks[2]).item() == 0.0  # old model == current model
    old = backbone.logits(batch).detach()
    nudge(backbone, 0.1)
    new_params = params(backbone)
    outputs = backbone.forward(batch, tasks[2])  # its graph must survive the swap inside extra_loss
    term = lwf.extra_loss(backbone, batch, outputs, tasks[2])
    torch.testing.assert_close(term, hand_lwf(backbone.logits(batch), old, groups, 2.0, 3.0))
    (outputs.main_loss() + term).backward()
    for name, p in backbone.model.named_parameters():
        assert torch.equal(p.detach(), new_params[name]) and p.grad is not None
        assert torch.equal(lwf.old[name], old_model[name])


def test_lwf_is_silent_on_the_first_task():
    backbone, tasks = tiny()
    lwf = strategies.build({"name": "lwf"})
    start_task(backbone, [lwf], tasks[0], tasks)
    assert extra_loss(lwf, backbone, backbone.collate(tasks[0].train[:4]), tasks[0]) is None
    assert np.isclose(lwf.extra_state_bytes(), 0)



@pytest.mark.parametrize("name, needs", [("lwf", "class logits or LM logits at target positions"),
                                         ("lwf-vandeven", "class logits")])
def test_lwf_on_outputs_without_class_logits_is_a_config_error_naming_the_strategy(name, needs):
    """Both variants share one check: a distillation term needs class logits (lwf also distils a text-to-text
    LM's token distributions: tests/strategies/test_lwf_text.py; lwf-vandeven does not)."""
    backbone, tasks = tiny()
    lwf = strategies.build({"name": name})
    train(backbone, [lwf], tasks, stop=1)
    start_task(backbone, [lwf], tasks[1], tasks)
    batch = backbone.collate(tasks[1].train[:4])
    outputs = backbone.forward(batch, tasks[1])
    assert lwf.extra_loss(backbone, batch, outputs, tasks[1]) is not None  # with logits: a term
    outputs.logits = None
    with pytest.raises(ConfigError, match=rf"^{name} distils {needs}; backbone 'mlp' has none"):
        lwf.extra_loss(backbone, batch, outputs, tasks[1])

def hand_van_de_ven(new, old, old_classes, seen, t):
    """van de Ven & Tolias's distillation: targets over ``seen`` with zeros on the new classes."""
    target = torch.zeros(len(new), len(seen))
    target[:, [seen.index(c) for c in old_classes]] = F.softmax(old[:, old_classes] / t, dim=1)
    return -(target * F.log_softmax(new[:, seen] / t, dim=1)).sum(1).mean() * t * t


@pytest.mark.parametrize("scenario, targets_differ", [("class-il", True), ("task-il", False), ("domain-il", False)])
def test_lwf_vandeven_pads_the_targets_and_balances_by_task(scenario, targets_differ):
    # class-IL: the student's softmax covers every seen class (the new task's too), the targets are 0 there;
    # (1/t)·CE + (1 − 1/t)·mean_G D is applied as CE + (t − 1)·mean_G D (t = 3 here: task id 2)
    backbone, tasks = tiny(scenario)
    plain, vdv = (strategies.build({"name": "lwf", "lam": 1.0, "temperature": 2.0, **more})
                  for more in ({}, {"name": "lwf-vandeven"}))
    train(backbone, [plain], tasks, stop=2)
    vdv.load_state_dict(plain.state_dict())
    start_task(backbone, [plain, vdv], tasks[2], tasks)
    batch = backbone.collate(tasks[2].train[:16])
    old = backbone.logits(batch).detach()
    nudge(backbone, 0.1)
    new = backbone.logits(batch).detach()
    outputs = backbone.forward(batch, tasks[2])
    ours, theirs = (lwf.extra_loss(backbone, batch, outputs, tasks[2]) for lwf in (plain, vdv))
    groups = plain.groups
    if targets_differ:
        seen = sorted(backbone.label_space.seen)
        expected = 2 * hand_van_de_ven(new, old, groups[0], seen, 2.0)  # cross-entropy and KL differ by H(target)
        entropy = -(F.softmax(old[:, groups[0]] / 2, 1) * F.log_softmax(old[:, groups[0]] / 2, 1)).sum(1).mean() * 4
        torch.testing.assert_close(theirs, expected - 2 * entropy)
        assert seen == [0, 1, 2, 3, 4, 5] and not torch.isclose(theirs, 2 * ours)
    else:
        torch.testing.assert_close(theirs, ours / len(groups) * 2)
