"""The runner's step in miniature, for unit tests of hooks: a tiny digits backbone, one step
through the same ``clft.engine.runner.step_loss`` and hook order, and a few tasks of SGD."""

from __future__ import annotations

import numpy as np
import torch

from clft.engine.runner import overrides, step_loss
from clft.registry import backbones, benchmarks
from clft.types import LabelSpace


def tiny(scenario: str = "class-il", hidden=(16,), n_tasks: int = 5):
    """(mlp backbone on the CPU, split-digits tasks), seeded."""
    bench = benchmarks.build({"name": "split-digits", "scenario": scenario, "n_tasks": n_tasks})
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build({"name": "mlp", "hidden": list(hidden)}, bench, tasks)
    backbone.label_space = LabelSpace(scenario, len(bench.label_names), {t.id: t.classes for t in tasks})
    return backbone.to("cpu"), tasks


def start_task(backbone, strats, task, tasks, seed: int = 0) -> None:
    """The runner's task start: seed, mark the task's classes seen, ``before_task`` hooks."""
    torch.manual_seed(seed * 1000 + task.id)
    backbone.label_space.mark_seen(task)
    for s in strats:
        s.before_task(backbone, task, tasks)


def training_data(strats, task, tasks):
    """As the runner: the strategy overriding ``train_data`` decides, else the task's own data."""
    overriding = [s for s in strats if overrides(type(s), "train_data")]
    return overriding[0].train_data(task, tasks[: task.id + 1]) if overriding else task.train


def extra_loss(strategy, backbone, batch, task):
    """``strategy.extra_loss`` on the outputs of one forward pass over ``batch``."""
    return strategy.extra_loss(backbone, batch, backbone.forward(batch, task), task)


def step(backbone, strats, task, optimizer, batch) -> None:
    """One runner step: forward, loss (+ terms), backward, before_step, optimizer step, after_step."""
    optimizer.zero_grad(set_to_none=True)
    outputs = backbone.forward(batch, task)
    step_loss(strats, backbone, batch, outputs, task).backward()
    for s in strats:
        s.before_step(backbone, task)
    optimizer.step()
    for s in strats:
        s.after_step(backbone, batch, outputs.detached(), task)


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
