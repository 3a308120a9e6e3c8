"""The methods of Hsu et al. 2018's table: l2, gem, rehearsal, offline, and the GT-RIPL variants of ewc and mas,
checked by hand on the tiny digits stream; the shared episodic memory's policies."""

from __future__ import annotations

import dataclasses
import itertools

import datasets
import numpy as np
import pytest
import torch
from weights import nudge, params

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._memory import EpisodicMemory
from clft.strategies.gem import project
from clft.testing import extra_loss, start_task, tiny, train


@pytest.mark.parametrize("spec", [
    {"name": "l2", "lam": -1.0}, {"name": "gem", "memory_size": 0}, {"name": "gem", "margin": -0.1},
    {"name": "gem", "eps": 0.0}, {"name": "gem", "policy": "fifo"}, {"name": "rehearsal", "memory_size": 0},
    {"name": "replay", "policy": "lru"}, {"name": "ewc", "fisher_labels": "sampled"},
    {"name": "mas", "output_reduction": "max"},
])
def test_invalid_options(spec):
    with pytest.raises(ConfigError):
        strategies.build(spec)


# ---------------------------------------------------------------- l2


def test_l2_pulls_to_the_last_tasks_parameters_like_ewc_with_a_unit_fisher():
    backbone, tasks = tiny()
    l2 = strategies.build({"name": "l2", "lam": 3.0})
    assert extra_loss(l2, backbone, backbone.collate(tasks[0].train[:4]), tasks[0]) is None
    train(backbone, [l2], tasks, stop=2)
    anchor = params(backbone)  # the anchor is the end of task 2, not task 1
    nudge(backbone)
    batch = backbone.collate(tasks[2].train[:4])
    by_hand = 1.5 * sum(((p - anchor[n]) ** 2).sum() for n, p in params(backbone).items())
    torch.testing.assert_close(extra_loss(l2, backbone, batch, tasks[2]), by_hand)
    ewc = strategies.build({"name": "ewc", "lam": 3.0})
    ewc.terms = [{"fisher": {n: torch.ones_like(a) for n, a in anchor.items()}, "anchor": anchor}]
    torch.testing.assert_close(extra_loss(l2, backbone, batch, tasks[2]), extra_loss(ewc, backbone, batch, tasks[2]))


# ---------------------------------------------------------------- gem's quadratic program


def brute_force_dual(P: np.ndarray, q: np.ndarray, margin: float) -> np.ndarray:
    """min ½vᵀPv + qᵀv s.t. v ≥ margin, by trying every set of multipliers held at the bound (KKT)."""
    n, best, best_value = len(q), None, np.inf
    for size in range(n + 1):
        for bound in itertools.combinations(range(n), size):
            free = [i for i in range(n) if i not in bound]
            v = np.full(n, margin, dtype=float)
            if free:
                rhs = -(q[free] + P[np.ix_(free, list(bound))] @ v[list(bound)])
                v[free] = np.linalg.solve(P[np.ix_(free, free)], rhs)
            gradient = P @ v + q
            if (v >= margin - 1e-9).all() and (gradient[list(bound)] >= -1e-9).all():
                value = 0.5 * v @ P @ v + q @ v
                if value < best_value:
                    best, best_value = v, value
    return best


def brute_force_primal(g: np.ndarray, G: np.ndarray) -> np.ndarray:
    """argmin ½‖z − g‖² s.t. G z ≥ 0, by projecting onto every set of active constraints."""
    best, best_distance = None, np.inf
    for size in range(len(G) + 1):
        for active in itertools.combinations(range(len(G)), size):
            A = G[list(active)]
            z = g - A.T @ np.linalg.solve(A @ A.T, A @ g) if size else g.copy()
            if (G @ z >= -1e-9).all() and np.sum((z - g) ** 2) < best_distance:
                best, best_distance = z, np.sum((z - g) ** 2)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_gem_projection_solves_the_dual_qp_like_a_brute_force_search(seed):
    rng = np.random.default_rng(seed)
    tasks, dim = int(rng.integers(1, 5)), int(rng.integers(5, 9))
    G, g = rng.normal(size=(tasks, dim)), rng.normal(size=dim)
    margin, eps = [0.0, 0.5][seed % 2], 1e-3
    P = G @ G.T + eps * np.eye(tasks)
    expected = G.T @ brute_force_dual(P, G @ g, margin) + g
    np.testing.assert_allclose(project(g, G, margin, eps), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", range(8))
def test_gem_projection_without_margin_is_the_closest_gradient_that_hurts_no_task(seed):
    rng = np.random.default_rng(100 + seed)
    G, g = rng.normal(size=(3, 6)), rng.normal(size=6)
    projected = project(g, G, margin=0.0, eps=1e-10)
    np.testing.assert_allclose(projected, brute_force_primal(g, G), atol=1e-6)
    assert (G @ projected >= -1e-6).all()


def gem_in_task_two(memory_size=20):
    backbone, tasks = tiny()
    gem = strategies.build({"name": "gem", "memory_size": memory_size, "margin": 0.5})
    train(backbone, [gem], tasks, stop=2)
    start_task(backbone, [gem], tasks[2], tasks)
    return backbone, tasks, gem


def memory_gradients(gem, backbone, task) -> np.ndarray:
    """g_k by hand: the loss gradient on all memory rows of task k, for k = 0, 1."""
    rows = []
    for k in (0, 1):
        kept = [i for i, t in enumerate(gem.memory.buffer["task"]) if t == k]
        batch = backbone.collate({c: [v[i] for i in kept] for c, v in gem.memory.buffer.items()})
        grads = torch.autograd.grad(backbone.loss(batch, task), backbone.trainable_parameters())
        rows.append(torch.cat([g.reshape(-1) for g in grads]).double().numpy())
    return np.stack(rows)


def set_gradient(backbone, vector: np.ndarray) -> None:
    offset = 0
    for p in backbone.trainable_parameters():
        p.grad = torch.from_numpy(vector[offset : offset + p.numel()]).float().view_as(p).clone()
        offset += p.numel()


def current_gradient(backbone) -> np.ndarray:
    return torch.cat([p.grad.reshape(-1) for p in backbone.trainable_parameters()]).double().numpy()


def test_gem_projects_a_gradient_that_hurts_a_past_task_and_keeps_one_that_does_not():
    backbone, tasks, gem = gem_in_task_two()
    assert gem.memory.size == 20 and sorted(set(gem.memory.buffer["task"])) == [0, 1]
    G = memory_gradients(gem, backbone, tasks[2])
    conflicting = -G[0] + 0.1 * G[1]
    set_gradient(backbone, conflicting)
    gem.before_step(backbone, tasks[2])
    np.testing.assert_allclose(current_gradient(backbone), project(conflicting, G, 0.5, 1e-3), rtol=1e-4, atol=1e-6)
    assert (G @ conflicting)[0] < -1.0
    assert (G @ current_gradient(backbone) > -2e-3).all()  # ≥ −ε·v: the ridge ε lets a constraint miss by that
    agreeing = G[0] + G[1]
    set_gradient(backbone, agreeing)
    gem.before_step(backbone, tasks[2])
    np.testing.assert_array_equal(current_gradient(backbone), agreeing.astype(np.float32))


def test_gem_is_silent_before_any_memory():
    backbone, tasks = tiny()
    gem = strategies.build({"name": "gem"})
    start_task(backbone, [gem], tasks[0], tasks)
    set_gradient(backbone, np.ones(sum(p.numel() for p in backbone.trainable_parameters())))
    gem.before_step(backbone, tasks[0])
    assert (current_gradient(backbone) == 1).all()


# ---------------------------------------------------------------- the shared memory


def task_data(task_id: int, n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"x": [[float(task_id), float(i)] for i in range(n)],
                                       "label": [i % 2 for i in range(n)], "task": [task_id] * n})


def test_task_balanced_memory_splits_the_capacity_evenly_and_cuts_old_tasks_from_the_end():
    torch.manual_seed(0)
    memory = EpisodicMemory(10, "task-balanced")
    memory.add_task(task_data(0, 30))
    assert memory.size == 10 and set(memory.buffer["task"]) == {0}
    first = [x[1] for x in memory.buffer["x"]]
    assert len(set(first)) == 10 and first != sorted(first)  # a random subset, in random order
    memory.add_task(task_data(1, 4))  # quota min(⌊10/2⌋, 4 new rows) = 4 for every task, as in GT-RIPL's code
    assert [x[1] for x in memory.buffer["x"] if x[0] == 0] == first[:4]
    assert sorted(x[1] for x in memory.buffer["x"] if x[0] == 1) == [0.0, 1.0, 2.0, 3.0]
    memory.add_task(task_data(2, 30))  # ⌊10/3⌋ = 3 each
    assert [len(rows) for rows in memory.task_rows().values()] == [3, 3, 3]
    assert [x[1] for x in memory.buffer["x"] if x[0] == 0] == first[:3]


def test_reservoir_and_class_balanced_policies_keep_their_contracts():
    torch.manual_seed(0)
    reservoir, balanced = EpisodicMemory(8, "reservoir"), EpisodicMemory(8, "class-balanced")
    for task_id in range(3):
        reservoir.add_task(task_data(task_id, 10))
        balanced.add_task(task_data(task_id, 10))
    assert reservoir.size == 8 and reservoir.n_seen == 30
    groups = {}
    for t, label in zip(balanced.buffer["task"], balanced.buffer["label"]):
        groups[(t, label)] = groups.get((t, label), 0) + 1
    assert sorted(groups.values()) == [1, 1, 1, 1, 2, 2]  # 8 slots over 6 (task, label) groups, round robin


# ---------------------------------------------------------------- rehearsal


def test_rehearsal_trains_on_the_task_plus_the_memory_repeated_to_about_one_to_one():
    backbone, tasks = tiny()
    rehearsal = strategies.build({"name": "rehearsal", "memory_size": 30})
    assert rehearsal.train_data(tasks[0], tasks[:1]) is tasks[0].train
    train(backbone, [rehearsal], tasks, stop=2)
    assert [len(rows) for rows in rehearsal.memory.task_rows().values()] == [15, 15]
    data = rehearsal.train_data(tasks[2], tasks[:3])
    repeats = len(tasks[2].train) // 30
    assert repeats > 1 and len(data) == len(tasks[2].train) + repeats * 30
    assert data["task"].count(2) == len(tasks[2].train) and data["task"].count(0) == repeats * 15
    assert data.features == tasks[2].train.features


# ---------------------------------------------------------------- offline vs joint


@pytest.mark.parametrize("name, restarts", [("offline", True), ("joint", False)])
def test_offline_starts_every_task_from_the_initial_model_and_joint_does_not(name, restarts):
    backbone, tasks = tiny()
    strategy = strategies.build({"name": name})
    initial = params(backbone)
    train(backbone, [strategy], tasks, stop=1)
    trained = params(backbone)
    start_task(backbone, [strategy], tasks[1], tasks)
    now = params(backbone)
    for n in initial:
        assert torch.equal(now[n], initial[n] if restarts else trained[n]), n
    assert len(strategy.train_data(tasks[1], tasks[:2])) == len(tasks[0].train) + len(tasks[1].train)


# ---------------------------------------------------------------- GT-RIPL's ewc and mas variants


def test_ewc_fisher_from_predicted_labels_uses_the_models_argmax():
    backbone, tasks = tiny(hidden=())
    train(backbone, [], tasks, stop=1, steps=1)  # barely trained: predictions often differ from labels
    task = tasks[0]
    backbone.label_space.mark_seen(task)
    rows = list(range(24))
    predicted_ewc = strategies.build({"name": "ewc", "fisher_labels": "predicted", "fisher_samples": None})
    true_ewc = strategies.build({"name": "ewc"})
    small = dataclasses.replace(task, train=task.train.select(rows))
    predicted, true = predicted_ewc.fisher(backbone, small), true_ewc.fisher(backbone, small)
    sums = {n: torch.zeros_like(p) for n, p in backbone.model.named_parameters()}
    for i in rows:
        batch = backbone.collate(task.train[i : i + 1])
        with torch.no_grad():
            label = backbone.predict(batch, task, "class-il")
        loss = backbone.loss({**batch, "label": label}, task)
        grads = torch.autograd.grad(loss, backbone.trainable_parameters())
        for (n, _), g in zip(backbone.model.named_parameters(), grads):
            sums[n] += g**2
    for n in sums:
        torch.testing.assert_close(predicted[n], sums[n] / len(rows), rtol=1e-4, atol=1e-8)
    assert any(not torch.allclose(predicted[n], true[n]) for n in sums)


def test_mas_mean_reduction_divides_the_importance_by_the_number_of_allowed_outputs():
    backbone, tasks = tiny()
    summed = strategies.build({"name": "mas"})
    averaged = strategies.build({"name": "mas", "output_reduction": "mean"})
    train(backbone, [], tasks, stop=2, steps=2)
    start_task(backbone, [summed, averaged], tasks[1], tasks)  # class-il after 2 tasks: 4 allowed outputs
    first, second = summed.sensitivity(backbone, tasks[1]), averaged.sensitivity(backbone, tasks[1])
    for n in first:
        torch.testing.assert_close(second[n], first[n] / 4)


def test_adagrad_and_sgd_optimizers_are_built_from_the_train_block():
    from clft.config.experiment import TrainConfig
    from clft.engine.runner import build_optimizer

    backbone, _ = tiny()
    adagrad = build_optimizer(backbone, TrainConfig(optimizer="adagrad", lr=0.01))
    assert isinstance(adagrad, torch.optim.Adagrad) and adagrad.param_groups[0]["lr"] == 0.01
    assert isinstance(build_optimizer(backbone, TrainConfig(optimizer="sgd", lr=0.01)), torch.optim.SGD)

