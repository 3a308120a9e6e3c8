"""finetune, joint, replay and ewc: their contracts, checked on the tiny digits stream.

``train_stream`` is the runner's loop in miniature (``clft.testing.train``, seeding
included), so these tests do not depend on ``clft.engine.runner``.
"""

from __future__ import annotations

from collections import Counter

import datasets
import numpy as np
import pytest
import torch

import clft.backbones  # noqa: F401  (registers the built-ins)
import clft.benchmarks  # noqa: F401
import clft.strategies  # noqa: F401
from clft.data import make_task
from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._memory import balanced_quotas
from clft.testing import assert_same, extra_loss, through_checkpoint, tiny, train
from clft.types import Backbone, Outputs

BUILT_INS = ["finetune", "joint", "replay", "ewc"]


def make(scenario: str = "class-il", hidden=(16,)):
    return tiny(scenario, hidden)


def train_stream(backbone, strats, tasks, start=0, stop=None, seed=0, steps=6, batch_size=32):
    """The runner's loop in miniature (``clft.testing.train``) with this file's budget: SGD lr 0.1."""
    train(backbone, strats, tasks, start, stop, steps=steps, batch_size=batch_size, lr=0.1, seed=seed)


# ---------------------------------------------------------------- all strategies


@pytest.mark.parametrize("name", BUILT_INS)
def test_builds_with_defaults_and_round_trips_empty_state(name):
    strategy = strategies.build({"name": name})
    assert strategy.extra_state_bytes() == 0
    strategy.load_state_dict(through_checkpoint(strategy.state_dict()))
    assert strategy.extra_state_bytes() == 0


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "replay", "memory_size": 0},
        {"name": "replay", "replay_batch_size": 0},
        {"name": "ewc", "lam": -1.0},
        {"name": "ewc", "gamma": 1.5},
        {"name": "ewc", "mode": "both"},
        {"name": "ewc", "fisher_samples": 0},
        {"name": "finetune", "lr": 1},
    ],
)
def test_invalid_options(spec):
    with pytest.raises(ConfigError):
        strategies.build(spec)


def test_finetune_is_a_no_op():
    backbone, tasks = make()
    strategy = strategies.build({"name": "finetune"})
    assert strategy.train_data(tasks[1], tasks[:2]) is tasks[1].train
    assert extra_loss(strategy, backbone, backbone.collate(tasks[0].train[:4]), tasks[0]) is None


def test_joint_trains_on_the_union_of_seen_tasks():
    _, tasks = make()
    joint = strategies.build({"name": "joint"})
    for i, task in enumerate(tasks):
        data = joint.train_data(task, tasks[: i + 1])
        assert len(data) == sum(len(t.train) for t in tasks[: i + 1])
        assert set(data["label"]) == {c for t in tasks[: i + 1] for c in t.classes}
        assert set(data["task"]) == set(range(i + 1))


# ---------------------------------------------------------------- replay


def test_reservoir_is_capped_and_keeps_training_rows():
    backbone, tasks = make()
    replay = strategies.build({"name": "replay", "memory_size": 100, "update": "task-end"})
    seen = 0
    for task in tasks:
        replay.before_task(backbone, task, tasks)
        replay.after_task(backbone, task)
        seen += len(task.train)
        assert replay.memory.size == 100 and replay.memory.n_seen == seen
        assert set(replay.memory.buffer) == set(task.train.column_names)
    assert replay.extra_state_bytes() > 100 * 64 * 4
    training_rows = {tuple(x) for t in tasks for x in t.train["x"]}
    assert all(tuple(x) in training_rows for x in replay.memory.buffer["x"])


def test_reservoir_keeps_everything_until_full_then_spreads_over_tasks():
    backbone, tasks = make()
    replay = strategies.build({"name": "replay", "memory_size": 300, "update": "task-end"})
    replay.after_task(backbone, tasks[0])
    assert replay.memory.buffer["x"] == tasks[0].train["x"]  # 269 < 300: every row, in order
    for task in tasks[1:]:
        replay.after_task(backbone, task)
    per_task = Counter(replay.memory.buffer["task"])
    assert sorted(per_task) == [0, 1, 2, 3, 4] and all(25 <= n <= 100 for n in per_task.values())


def test_balanced_quotas_round_robin():
    assert balanced_quotas({"a": 1, "b": 10, "c": 10}, 9) == {"a": 1, "b": 4, "c": 4}
    assert balanced_quotas({0: 2, 1: 2}, 10) == {0: 2, 1: 2}
    assert balanced_quotas({0: 5, 1: 5, 2: 5}, 7) == {0: 3, 1: 2, 2: 2}


def test_class_balanced_buffer_has_equal_slots_per_seen_class():
    backbone, tasks = make()
    replay = strategies.build({"name": "replay", "memory_size": 7, "policy": "class-balanced", "update": "task-end"})
    replay.after_task(backbone, tasks[0])
    assert Counter(replay.memory.buffer["label"]) == {0: 4, 1: 3}
    replay.after_task(backbone, tasks[1])
    assert Counter(replay.memory.buffer["label"]) == {0: 2, 1: 2, 2: 2, 3: 1}
    big = strategies.build({"name": "replay", "memory_size": 10, "policy": "class-balanced", "update": "task-end"})
    for task in tasks:
        big.after_task(backbone, task)
    assert Counter(big.memory.buffer["label"]) == dict.fromkeys(range(10), 1)


def test_class_balanced_domain_il_balances_task_and_label():
    backbone, tasks = make("domain-il")
    replay = strategies.build({"name": "replay", "memory_size": 12, "policy": "class-balanced", "update": "task-end"})
    for task in tasks[:3]:
        replay.after_task(backbone, task)
    assert Counter(zip(replay.memory.buffer["task"], replay.memory.buffer["label"])) == {
        (t, label): 2 for t in range(3) for label in (0, 1)
    }


def record_collate(backbone):
    sizes = []
    original = backbone.collate

    def collate(examples):
        sizes.append(len(examples["label"]))
        return original(examples)

    backbone.collate = collate
    return sizes


@pytest.mark.parametrize("replay_batch_size, expected", [(None, 32), (8, 8), (500, 50)])
def test_replay_loss_is_a_finite_scalar_with_grad(replay_batch_size, expected):
    backbone, tasks = make()
    replay = strategies.build({"name": "replay", "memory_size": 50, "replay_batch_size": replay_batch_size,
                               "update": "task-end"})
    batch = backbone.collate(tasks[1].train[:32])
    assert extra_loss(replay, backbone, batch, tasks[1]) is None  # empty buffer
    train_stream(backbone, [replay], tasks, stop=1)
    backbone.label_space.mark_seen(tasks[1])
    sizes = record_collate(backbone)
    loss = extra_loss(replay, backbone, batch, tasks[1])
    assert sizes == [expected] and loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    assert all(p.grad is not None for p in backbone.trainable_parameters())


def test_task_il_replay_masks_each_row_by_its_own_task():
    backbone, tasks = make("task-il")
    replay = strategies.build({"name": "replay", "memory_size": 20, "replay_batch_size": 5, "update": "task-end"})
    train_stream(backbone, [replay], tasks, stop=1)
    state = replay.memory.rng.bit_generator.state
    batch = backbone.collate(tasks[1].train[:32])
    loss = extra_loss(replay, backbone, batch, tasks[1])
    replay.memory.rng.bit_generator.state = state
    rows = np.sort(replay.memory.rng.choice(20, size=5, replace=False)).tolist()
    replayed = backbone.collate({k: [v[i] for i in rows] for k, v in replay.memory.buffer.items()})
    assert replayed["task"].tolist() == [0] * 5
    assert torch.allclose(loss, backbone.loss(replayed, tasks[1]))
    assert set(backbone.predict(replayed, tasks[1], "task-il").tolist()) <= {0, 1}


class TextBackbone(Backbone):
    """A stand-in for a text model: prepare adds a length column, collate uses it."""

    def __init__(self):
        self.model = torch.nn.Linear(1, 2)
        self.device = "cpu"

    def prepare(self, dataset):
        return dataset.map(lambda row: {"length": float(len(row["text"]))})

    def collate(self, examples):
        return {"length": torch.tensor(examples["length"]).unsqueeze(1), "label": torch.tensor(examples["label"])}

    def forward(self, batch, task):
        logits = self.model(batch["length"])
        return Outputs(torch.nn.functional.cross_entropy(logits, batch["label"], reduction="none"), logits)


def test_replay_buffer_works_for_text_columns():
    words = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"]
    split = datasets.Dataset.from_dict({"text": words, "label": [0, 1] * 3})
    task = make_task(0, "text", (0, 1), split, split)
    backbone = TextBackbone()
    replay = strategies.build({"name": "replay", "memory_size": 4, "replay_batch_size": 2, "update": "task-end"})
    replay.after_task(backbone, task)
    assert replay.memory.size == 4 and all(text in words for text in replay.memory.buffer["text"])
    copy = strategies.build({"name": "replay", "memory_size": 4, "replay_batch_size": 2, "update": "task-end"})
    copy.load_state_dict(through_checkpoint(replay.state_dict()))
    assert copy.memory.buffer == replay.memory.buffer
    batch = {"label": torch.zeros(2)}
    assert torch.equal(replay.extra_loss(backbone, batch, None, task), copy.extra_loss(backbone, batch, None, task))


# ---------------------------------------------------------------- ewc


def hand_fisher(backbone, task) -> dict[str, np.ndarray]:
    """Per-example squared gradients of −log softmax over the allowed logits, for a linear model."""
    weight = backbone.model[0].weight.detach().double().numpy()
    bias = backbone.model[0].bias.detach().double().numpy()
    allowed = list(backbone.label_space.allowed(task.id))
    x, y = np.asarray(task.train["x"], dtype=np.float64), np.asarray(task.train["label"])
    z = (x @ weight.T + bias)[:, allowed]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = np.zeros((len(x), weight.shape[0]))
    g[:, allowed] = p - (np.asarray(allowed)[None, :] == y[:, None])
    return {"0.weight": np.mean(g[:, :, None] ** 2 * x[:, None, :] ** 2, axis=0), "0.bias": np.mean(g**2, axis=0)}


def test_ewc_fisher_and_penalty_match_the_formula_by_hand():
    backbone, tasks = make(hidden=())
    ewc = strategies.build({"name": "ewc", "lam": 7.0})
    batch = backbone.collate(tasks[1].train[:8])
    assert extra_loss(ewc, backbone, batch, tasks[1]) is None
    train_stream(backbone, [ewc], tasks, stop=1)
    expected = hand_fisher(backbone, tasks[0])
    for name, value in expected.items():
        np.testing.assert_allclose(ewc.terms[0]["fisher"][name].numpy(), value, rtol=1e-4, atol=1e-9)
    assert extra_loss(ewc, backbone, batch, tasks[1]).item() == 0.0  # at the anchor
    anchor = {n: p.detach().double().numpy().copy() for n, p in backbone.model.named_parameters()}
    with torch.no_grad():
        for p in backbone.model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    penalty = extra_loss(ewc, backbone, batch, tasks[1])
    moved = {n: p.detach().double().numpy() for n, p in backbone.model.named_parameters()}
    by_hand = 7.0 / 2 * sum((expected[n] * (moved[n] - anchor[n]) ** 2).sum() for n in moved)
    assert penalty.item() > 0 and penalty.requires_grad
    assert penalty.item() == pytest.approx(by_hand, rel=1e-4)


def test_ewc_after_task_leaves_training_gradients_alone():
    backbone, tasks = make()
    ewc = strategies.build({"name": "ewc", "fisher_batch_size": 16, "fisher_samples": 40})
    for p in backbone.trainable_parameters():
        p.grad = torch.ones_like(p)
    backbone.label_space.mark_seen(tasks[0])
    ewc.after_task(backbone, tasks[0])
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in backbone.trainable_parameters())
    assert backbone.model.training  # mode restored


def test_online_combines_fishers_and_keeps_one_anchor():
    backbone, tasks = make()
    separate = strategies.build({"name": "ewc", "lam": 1.0})
    online = strategies.build({"name": "ewc", "lam": 1.0, "mode": "online", "gamma": 0.5})
    train_stream(backbone, [separate, online], tasks, stop=2, steps=3)
    assert len(separate.terms) == 2 and len(online.terms) == 1
    for name, f in online.terms[0]["fisher"].items():
        combined = 0.5 * separate.terms[0]["fisher"][name] + separate.terms[1]["fisher"][name]
        assert torch.allclose(f, combined)
        assert torch.equal(online.terms[0]["anchor"][name], separate.terms[1]["anchor"][name])
    with torch.no_grad():
        for p in backbone.model.parameters():
            p.add_(0.05)
    batch = backbone.collate(tasks[2].train[:4])
    by_term = [
        sum((t["fisher"][n] * (p - t["anchor"][n]) ** 2).sum() for n, p in backbone.model.named_parameters())
        for t in separate.terms
    ]
    assert torch.allclose(extra_loss(separate, backbone, batch, tasks[2]), 0.5 * (by_term[0] + by_term[1]))
    assert separate.extra_state_bytes() == 2 * online.extra_state_bytes() > 0


# ---------------------------------------------------------------- resume


def snapshot(backbone, strats):
    model = {n: t.clone() for n, t in backbone.model.state_dict().items()}
    return model, [through_checkpoint(s.state_dict()) for s in strats]


@pytest.mark.parametrize(("scenario", "update"), [("class-il", "step"), ("task-il", "step"), ("class-il", "task-end")])
def test_resumed_stream_is_identical_to_an_uninterrupted_one(scenario, update):
    specs = [
        {"name": "replay", "memory_size": 40, "policy": "reservoir", "update": update},
        {"name": "ewc", "lam": 5.0, "fisher_samples": 30, "mode": "online", "gamma": 0.9},
    ]
    backbone, tasks = make(scenario)
    straight = [strategies.build(dict(s)) for s in specs]
    train_stream(backbone, straight, tasks, stop=2)
    model_state, strategy_states = snapshot(backbone, straight)
    train_stream(backbone, straight, tasks, start=2)

    resumed_backbone, _ = make(scenario)
    resumed_backbone.model.load_state_dict(model_state)
    for task in tasks[:2]:
        resumed_backbone.label_space.mark_seen(task)
    resumed = [strategies.build(dict(s)) for s in specs]
    for strategy, state in zip(resumed, strategy_states):
        strategy.load_state_dict(state)
    train_stream(resumed_backbone, resumed, tasks, start=2)

    for (name, a), b in zip(backbone.model.state_dict().items(), resumed_backbone.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert_same(through_checkpoint(straight[0].state_dict()), through_checkpoint(resumed[0].state_dict()))
    assert straight[0].memory.n_seen == resumed[0].memory.n_seen > 0
    for name, f in straight[1].terms[0]["fisher"].items():
        assert torch.equal(f, resumed[1].terms[0]["fisher"][name])
