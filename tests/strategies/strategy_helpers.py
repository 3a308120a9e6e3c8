"""Helpers for the strategy tests: a tiny digits backbone, the runner's loop in miniature,
a checkpoint round trip, and exact comparison of state dicts."""

from __future__ import annotations

import json

import numpy as np
import torch

import clft.backbones  # noqa: F401  (registers the built-ins)
import clft.benchmarks  # noqa: F401
import clft.strategies  # noqa: F401
from clft.registry import backbones, benchmarks
from clft.state_io import flatten, unflatten
from clft.types import LabelSpace, Strategy


def tiny(scenario: str = "class-il", hidden=(16,), n_tasks: int = 5):
    """(mlp backbone on the CPU, split-digits tasks), seeded."""
    bench = benchmarks.build({"name": "split-digits", "scenario": scenario, "n_tasks": n_tasks})
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build({"name": "mlp", "hidden": list(hidden)}, bench, tasks)
    backbone.label_space = LabelSpace(scenario, len(bench.label_names), {t.id: t.classes for t in tasks})
    return backbone.to("cpu"), tasks


def start_task(backbone, strats, task, tasks, seed: int = 0) -> None:
    torch.manual_seed(seed * 1000 + task.id)
    backbone.label_space.mark_seen(task)
    for s in strats:
        s.before_task(backbone, task, tasks)


def training_data(strats, task, tasks):
    """As the runner: the first strategy overriding ``train_data`` decides, else the task's own data."""
    overriding = [s for s in strats if type(s).train_data is not Strategy.train_data]
    return overriding[0].train_data(task, tasks[: task.id + 1]) if overriding else task.train


def step(backbone, strats, task, optimizer, batch) -> None:
    """One runner step: loss + extra losses, backward, after_backward hooks, optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    loss = backbone.loss(batch, task)
    for s in strats:
        term = s.extra_loss(backbone, batch, task)
        loss = loss if term is None else loss + term
    loss.backward()
    for s in strats:
        s.after_backward(backbone, task)
    optimizer.step()


def train(backbone, strats, tasks, start=0, stop=None, steps=4, batch_size=16, lr=0.05, seed=0):
    """The runner's loop in miniature (seeding, hooks, ``train_data``, SGD), over ``tasks[start:stop]``."""
    for task in tasks[start:stop]:
        start_task(backbone, strats, task, tasks, seed)
        data = backbone.prepare(training_data(strats, task, tasks))
        optimizer = torch.optim.SGD(backbone.trainable_parameters(), lr=lr)
        order = np.random.default_rng([seed, task.id]).permutation(len(data))
        backbone.model.train()
        for i in range(steps):
            rows = order[i * batch_size : (i + 1) * batch_size].tolist()
            step(backbone, strats, task, optimizer, backbone.collate(data[rows]))
        for s in strats:
            s.after_task(backbone, task)


def through_checkpoint(state: dict) -> dict:
    """What a state dict looks like after clft.state_io's JSON + tensors round trip."""
    tensors: dict = {}
    skeleton = json.loads(json.dumps(flatten(state, tensors)))
    return unflatten(skeleton, {k: v.clone() for k, v in tensors.items()})


def assert_same(a, b, path: str = "state") -> None:
    """Exact equality of nested states: tensors/arrays bit for bit (dtype and shape too)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()), path
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype, path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}.{i}")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def without_rng(state):
    """``state`` minus every ``rng`` entry (a generator alone is not 'extra state')."""
    if isinstance(state, dict):
        return {k: without_rng(v) for k, v in state.items() if k != "rng"}
    if isinstance(state, list):
        return [without_rng(v) for v in state]
    return state


def differs(a, b) -> bool:
    try:
        assert_same(a, b)
    except AssertionError:
        return True
    return False


def overrides(cls: type, method: str) -> bool:
    return getattr(cls, method) is not getattr(Strategy, method)
