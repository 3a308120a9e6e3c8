"""agem, der and derpp: projection, reservoir and losses checked by hand on the tiny digits stream."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._memory import pad_to
from clft.testing import assert_same, extra_loss, start_task, through_checkpoint, tiny, train


@pytest.mark.parametrize("spec", [
    {"name": "agem", "memory_size": 0}, {"name": "agem", "memory_batch_size": 0},
    {"name": "der", "alpha": -1.0}, {"name": "der", "memory_size": 0}, {"name": "der", "buffer_batch_size": 0},
    {"name": "derpp", "beta": -0.1}, {"name": "derpp", "alpha": -0.1},
])
def test_invalid_options(spec):
    with pytest.raises(ConfigError):
        strategies.build(spec)



@pytest.mark.parametrize(("spec", "policy"), [({"name": "replay", "update": "task-end"}, "reservoir"),
                                              ({"name": "rehearsal"}, "task-balanced"),
                                              ({"name": "agem"}, "class-balanced"), ({"name": "gem"}, "task-balanced")],
                         ids=["replay", "rehearsal", "agem", "gem"])
def test_episodic_memory_options_are_shared_and_checked_alike(spec, policy):
    """One MemoryConfig: the same checks and messages for every memory strategy, each with its own
    default policy (the paper's), and its memory built from them."""
    name = spec["name"]
    assert strategies.build(spec).memory.policy == policy
    assert strategies.build({**spec, "memory_size": 7}).memory.capacity == 7
    with pytest.raises(ConfigError, match="memory_size must be at least 1, got 0"):
        strategies.build({"name": name, "memory_size": 0})
    with pytest.raises(ConfigError, match=r"\.policy: 'fifo' is not valid; valid: 'reservoir', 'class-balanced'"):
        strategies.build({"name": name, "policy": "fifo"})
    config_class = type(strategies.build({"name": name})).Config
    with pytest.raises(ValueError, match="policy must be one of reservoir, class-balanced, task-balanced"):
        config_class(policy="fifo")  # built in code, past the YAML type check


# ---------------------------------------------------------------- agem


def agem_after_task_one(memory_batch_size=12):
    backbone, tasks = tiny()
    agem = strategies.build({"name": "agem", "memory_size": 20, "memory_batch_size": memory_batch_size})
    train(backbone, [agem], tasks, stop=1)
    start_task(backbone, [agem], tasks[1], tasks)
    return backbone, tasks, agem


def reference_gradient(agem, backbone, task, memory_batch_size):
    """g_ref recomputed independently, from a copy of the memory's generator."""
    rng = copy.deepcopy(agem.memory.rng)
    rows = np.sort(rng.choice(agem.memory.size, size=memory_batch_size, replace=False)).tolist()
    batch = backbone.collate({k: [v[i] for i in rows] for k, v in agem.memory.buffer.items()})
    return torch.autograd.grad(backbone.loss(batch, task), backbone.trainable_parameters())


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def test_agem_projects_a_conflicting_gradient_by_hand():
    backbone, tasks, agem = agem_after_task_one()
    ref = reference_gradient(agem, backbone, tasks[1], 12)
    params = backbone.trainable_parameters()
    for p, r in zip(params, ref):
        p.grad = -r + 0.1 * torch.randn_like(r)
    g = flat(p.grad for p in params)
    assert g @ flat(ref) < 0
    agem.before_step(backbone, tasks[1])
    expected = g - (g @ flat(ref)) / (flat(ref) @ flat(ref)) * flat(ref)
    torch.testing.assert_close(flat(p.grad for p in params), expected)
    assert abs(float(flat(p.grad for p in params) @ flat(ref))) < 1e-4  # no longer conflicts


def test_agem_leaves_an_agreeing_gradient_and_no_stray_gradients():
    backbone, tasks, agem = agem_after_task_one(memory_batch_size=500)  # larger than the memory: all of it
    ref = reference_gradient(agem, backbone, tasks[1], 20)
    params = backbone.trainable_parameters()
    for p, r in zip(params, ref):
        p.grad = r.clone() * 0.5
    agem.before_step(backbone, tasks[1])
    assert all(torch.equal(p.grad, r * 0.5) for p, r in zip(params, ref))


def test_agem_is_a_no_op_before_any_memory_and_keeps_past_tasks_only():
    backbone, tasks = tiny()
    agem = strategies.build({"name": "agem", "memory_size": 30})
    start_task(backbone, [agem], tasks[0], tasks)
    for p in backbone.trainable_parameters():
        p.grad = torch.ones_like(p)
    agem.before_step(backbone, tasks[0])
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in backbone.trainable_parameters())
    train(backbone, [agem], tasks, stop=2)
    assert set(agem.memory.buffer["task"]) == {0, 1} and agem.memory.size == 30
    assert agem.extra_state_bytes() > 0


# ---------------------------------------------------------------- der / derpp


def test_reservoir_matches_algorithm_r_with_the_same_draws():
    der = strategies.build({"name": "der", "memory_size": 10})
    der.memory.rng = np.random.default_rng(7)
    kept = []  # reference buffer of global example ids
    for start in (0, 6, 40, 90):  # batches of 6, 34, 50, 3 examples
        stop = {0: 6, 6: 40, 40: 90, 90: 93}[start]
        draws = copy.deepcopy(der.memory.rng).integers(0, np.arange(start, stop) + 1)
        for k, j in zip(range(start, stop), draws):
            if k < 10:
                kept.append(k)
            elif j < 10:
                kept[j] = k
        ids = torch.arange(start, stop)
        der.memory.add({"x": ids[:, None].float(), "label": ids})
    assert der.memory.size == 10 and der.memory.n_seen == 93
    assert der.memory.buffer["label"].tolist() == kept


def test_der_stores_the_steps_own_logits_after_the_step_and_matches_its_loss_by_hand():
    backbone, tasks = tiny()
    der = strategies.build({"name": "derpp", "alpha": 0.3, "beta": 0.7, "memory_size": 8, "buffer_batch_size": 4})
    start_task(backbone, [der], tasks[0], tasks)
    batch = backbone.collate(tasks[0].train[:8])
    outputs = backbone.forward(batch, tasks[0])
    assert der.extra_loss(backbone, batch, outputs, tasks[0]) is None and der.memory.size == 0  # empty buffer
    der.after_step(backbone, batch, outputs.detached(), tasks[0])  # no forward pass of its own
    stored = outputs.logits.detach()
    assert torch.equal(der.memory.buffer["__logits__"], stored) and torch.equal(der.memory.buffer["x"], batch["x"])
    train(backbone, [], tasks, stop=1)  # the model moves on; the stored logits do not
    assert torch.equal(der.memory.buffer["__logits__"], stored)

    rng = copy.deepcopy(der.memory.rng)
    first, second = (np.sort(rng.choice(8, size=4, replace=False)).tolist() for _ in range(2))
    new = backbone.collate(tasks[0].train[8:16])
    rows = {k: v[second] for k, v in der.memory.buffer.items() if k != "__logits__"}
    by_hand = 0.3 * F.mse_loss(backbone.logits({"x": der.memory.buffer["x"][first]}), stored[first])
    by_hand = by_hand + 0.7 * backbone.loss(rows, tasks[0])
    outputs = backbone.forward(new, tasks[0])
    torch.testing.assert_close(der.extra_loss(backbone, new, outputs, tasks[0]), by_hand)
    der.after_step(backbone, new, outputs.detached(), tasks[0])
    assert der.memory.n_seen == 16 and der.memory.size == 8


def test_reservoir_pads_each_column_as_the_backbone_declares_and_round_trips():
    """Rows of widths 3, 5 and 2: every column is widened with its own value on its own side (LM labels
    with -100, ids with the pad id; a left-padded prompt on the left), as ``collate`` would pad them."""
    der = strategies.build({"name": "der", "memory_size": 5})
    der.memory.rng = np.random.default_rng(0)
    padding = {"input_ids": (9, "right"), "lm_labels": (-100, "right"), "prompt_ids": (9, "left")}

    def rows(n, width, fill):
        ids = torch.full((n, width), fill)
        return {"input_ids": ids, "lm_labels": ids.clone(), "prompt_ids": ids.clone(), "label": torch.arange(n)}

    for n, width, fill in [(2, 3, 1), (2, 5, 2), (1, 2, 3)]:
        der.memory.add(rows(n, width, fill), padding)
    assert der.memory.buffer["input_ids"].shape == (5, 5)
    assert der.memory.buffer["input_ids"].tolist() == [[1, 1, 1, 9, 9]] * 2 + [[2] * 5] * 2 + [[3, 3, 9, 9, 9]]
    assert der.memory.buffer["lm_labels"].tolist() == ([[1, 1, 1, -100, -100]] * 2 + [[2] * 5] * 2
                                                       + [[3, 3, -100, -100, -100]])
    assert der.memory.buffer["prompt_ids"].tolist() == [[9, 9, 1, 1, 1]] * 2 + [[2] * 5] * 2 + [[9, 9, 9, 3, 3]]
    copy_ = strategies.build({"name": "der", "memory_size": 5})
    copy_.load_state_dict(through_checkpoint(der.state_dict()))
    assert_same(through_checkpoint(copy_.state_dict()), through_checkpoint(der.state_dict()))
    assert copy_.extra_state_bytes() == der.extra_state_bytes() == 3 * 5 * 5 * 8 + 5 * 8
    assert pad_to(torch.ones(1, 2, 3), (4, 3)).shape == (1, 4, 3)
    assert pad_to(torch.ones(1, 2), (4,), value=-1, side="left").tolist() == [[-1, -1, 1, 1]]


def test_reservoir_refuses_a_width_varying_column_without_declared_padding():
    from clft.strategies._memory import TensorReservoir

    memory = TensorReservoir(4)
    memory.add({"x": torch.ones(2, 3), "label": torch.tensor([0, 1])})
    memory.add({"x": torch.ones(1, 3), "label": torch.tensor([1])})  # the same width: no padding needed
    with pytest.raises(ConfigError, match=r"batch column 'x' changes shape between batches \(\(3,\), then \(4,\)\) "
                       "and the backbone declares no padding for it"):
        memory.add({"x": torch.ones(1, 4), "label": torch.tensor([1])})


def test_der_plain_has_no_label_term():
    backbone, tasks = tiny()
    der = strategies.build({"name": "der", "alpha": 1.0, "memory_size": 8})
    train(backbone, [der], tasks, stop=1, steps=1, batch_size=8)
    rng = copy.deepcopy(der.memory.rng)
    rows = np.sort(rng.choice(8, size=8, replace=False)).tolist()
    batch = backbone.collate(tasks[0].train[8:16])
    expected = F.mse_loss(backbone.logits({"x": der.memory.buffer["x"][rows]}), der.memory.buffer["__logits__"][rows])
    torch.testing.assert_close(extra_loss(der, backbone, batch, tasks[0]), expected)


# ---------------------------------------------------------------- finite rows, online replay


@pytest.mark.parametrize("name", ["der", "derpp"])
def test_der_keeps_non_finite_rows_out_of_its_buffer(name):
    backbone, tasks = tiny()
    der = strategies.build({"name": name, "memory_size": 50})
    start_task(backbone, [der], tasks[0], tasks)
    batch = backbone.collate(tasks[0].train[:8])
    batch["x"][3, 0] = float("nan")  # one poisoned example: its logits are NaN too
    outputs = backbone.forward(batch, tasks[0])
    der.after_step(backbone, batch, outputs.detached(), tasks[0])
    assert der.memory.size == 7 and der.memory.n_seen == 7
    assert all(torch.isfinite(values[:7]).all() for values in der.memory.buffer.values() if values.is_floating_point())
    kept = der.memory.buffer["x"][:7]
    assert torch.equal(kept, torch.cat([batch["x"][:3], batch["x"][4:]]))


def test_replay_fills_a_reservoir_every_step_by_default_and_replays_within_the_task():
    """ER (Chaudhry et al. 2019), the default ``update: step``: the step's batch enters the reservoir after
    the step, so the second batch of the first task already replays the first; ``update: task-end``
    offers a task's examples when it ends."""
    backbone, tasks = tiny()
    online = strategies.build({"name": "replay", "memory_size": 20, "replay_batch_size": 4})
    after_task = strategies.build({"name": "replay", "memory_size": 20, "update": "task-end"})
    start_task(backbone, [online, after_task], tasks[0], tasks)
    first = backbone.collate(tasks[0].train[:8])
    outputs = backbone.forward(first, tasks[0])
    assert online.extra_loss(backbone, first, outputs, tasks[0]) is None
    assert after_task.extra_loss(backbone, first, outputs, tasks[0]) is None
    for strategy in (online, after_task):
        strategy.after_step(backbone, first, outputs.detached(), tasks[0])
    assert online.memory.size == 8 and torch.equal(online.memory.buffer["x"][:8], first["x"])
    assert after_task.memory.size == 0  # the after-task memory holds past tasks only

    rng = copy.deepcopy(online.memory.rng)
    rows = np.sort(rng.choice(8, size=4, replace=False)).tolist()
    expected = backbone.loss({k: v[rows] for k, v in online.memory.buffer.items()}, tasks[0])
    second = backbone.collate(tasks[0].train[8:16])
    torch.testing.assert_close(extra_loss(online, backbone, second, tasks[0]), expected)
    assert online.memory.n_seen == 8  # the second batch enters after its step
    online.after_step(backbone, second, backbone.forward(second, tasks[0]).detached(), tasks[0])
    assert online.memory.n_seen == 16
    online.after_task(backbone, tasks[0])
    after_task.after_task(backbone, tasks[0])
    assert online.memory.n_seen == 16 and after_task.memory.n_seen == len(tasks[0].train)


@pytest.mark.parametrize(("spec", "message"), [
    ({"update": "online"}, r"\.update: 'online' is not valid; valid: 'step', 'task-end'"),
    ({"policy": "class-balanced"}, "policy 'class-balanced' needs update: task-end; update: step keeps a reservoir "
     r"\(valid: update step with policy reservoir, or update task-end with policy reservoir, class-balanced, "
     r"task-balanced\)"),
    ({"policy": "task-balanced", "update": "step"}, "policy 'task-balanced' needs update: task-end"),
    ({"online": True}, "online"),  # the bool it replaces is gone
], ids=["unknown-update", "class-balanced-with-step", "task-balanced-with-step", "online-is-gone"])
def test_replay_update_options_are_checked_in_one_line(spec, message):
    with pytest.raises(ConfigError, match=message) as error:
        strategies.build({"name": "replay", **spec})
    assert "\n" not in str(error.value)
    assert strategies.build({"name": "replay", "policy": "task-balanced", "update": "task-end"}).memory.policy == \
        "task-balanced"


def test_replay_default_label_says_which_memory_update_ran():
    replay = type(strategies.build({"name": "replay"}))
    assert replay.default_label(replay.Config()) == "replay"  # ER, the paper's
    assert replay.default_label(replay.Config(update="task-end", policy="class-balanced")) == "replay-task-end"


def test_memory_checkpoints_numeric_columns_as_arrays_and_restores_the_same_rows():
    """A task checkpoint of a 300-row pixel memory used to be 235,200 JSON numbers (seconds per task);
    numeric columns are now arrays (tensors in the checkpoint), ragged and text columns stay lists, and
    a checkpoint round trip gives back exactly the Python values the memory held."""
    import datasets

    from clft.storage.state_io import flatten
    from clft.strategies._memory import EpisodicMemory

    rng = np.random.default_rng(0)
    rows = {"x": rng.random((400, 784), dtype=np.float32).tolist(), "label": rng.integers(0, 10, 400).tolist(),
            "ids": [list(range(i % 7 + 1)) for i in range(400)], "text": [f"t{i}" for i in range(400)]}
    memory = EpisodicMemory(300)
    memory.add_task(datasets.Dataset.from_dict(rows))
    state = memory.state_dict()
    assert isinstance(state["buffer"]["x"], np.ndarray) and state["buffer"]["x"].shape == (300, 784)
    assert isinstance(state["buffer"]["label"], np.ndarray)
    assert isinstance(state["buffer"]["ids"], list) and isinstance(state["buffer"]["text"], list)
    tensors: dict = {}
    flatten(state, tensors)
    assert sum(t.numel() for t in tensors.values()) >= 300 * 785  # pixels and labels left the JSON skeleton
    restored = EpisodicMemory(300)
    restored.load_state_dict(through_checkpoint(state))
    assert restored.buffer == memory.buffer  # the same Python floats, ints, lists and strings
    assert type(restored.buffer["x"][0][0]) is float and type(restored.buffer["label"][0]) is int
    old_format = {**state, "buffer": copy.deepcopy(memory.buffer)}  # checkpoints written before packing
    restored.load_state_dict(through_checkpoint(old_format))
    assert restored.buffer == memory.buffer
