"""The mlp backbone: shapes, masking per scenario, training reduces the loss."""

from __future__ import annotations

import pytest
import torch

import clft.backbones  # noqa: F401  (registers the built-ins)
import clft.benchmarks  # noqa: F401
from clft.errors import ConfigError
from clft.registry import backbones, benchmarks
from clft.types import LabelSpace


def setup(scenario: str = "class-il", **options):
    bench = benchmarks.build({"name": "split-digits", "scenario": scenario})
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build({"name": "mlp", "hidden": [16], **options}, bench, tasks)
    backbone.label_space = LabelSpace(scenario, len(bench.label_names), {t.id: t.classes for t in tasks})
    return backbone.to("cpu"), tasks


def test_collate_and_logits_shapes():
    backbone, tasks = setup()
    batch = backbone.collate(tasks[1].train[:5])
    assert batch["x"].shape == (5, 64) and batch["x"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["task"].tolist() == [1] * 5
    assert backbone.logits(batch).shape == (5, 10)
    assert len(backbone.trainable_parameters()) == 4  # two linear layers


def force_class_9(backbone):
    """Make digit 9 win every unmasked argmax."""
    with torch.no_grad():
        backbone.model[-1].bias[9] = 1e4


def test_task_il_predicts_only_the_examples_own_task_classes():
    backbone, tasks = setup("task-il")
    force_class_9(backbone)
    for task in tasks[:4]:
        batch = backbone.collate(task.test[:20])
        assert set(backbone.predict(batch, task, "task-il").tolist()) <= set(task.classes)
    # a mixed batch: every row is masked by its own task column
    first, third = tasks[0].test[:3], tasks[2].test[:3]
    rows = {column: first[column] + third[column] for column in first}
    predicted = backbone.predict(backbone.collate(rows), tasks[0], "task-il").tolist()
    assert set(predicted[:3]) <= {0, 1} and set(predicted[3:]) <= {4, 5}


def test_class_il_predicts_seen_classes_only_once_something_is_seen():
    backbone, tasks = setup("class-il")
    force_class_9(backbone)
    batch = backbone.collate(tasks[0].test[:20])
    assert set(backbone.predict(batch, tasks[0], "class-il").tolist()) == {9}  # baseline: all allowed
    backbone.label_space.mark_seen(tasks[0])
    backbone.label_space.mark_seen(tasks[1])
    assert set(backbone.predict(batch, tasks[0], "class-il").tolist()) <= {0, 1, 2, 3}


def test_domain_il_uses_the_whole_shared_label_set():
    backbone, tasks = setup("domain-il")
    assert backbone.logits(backbone.collate(tasks[0].train[:2])).shape == (2, 2)
    assert backbone.label_space.mask([0, 3]).all()


def test_masked_loss_is_finite_and_ignores_masked_logits():
    backbone, tasks = setup("task-il")
    batch = backbone.collate(tasks[0].train[:8])
    before = backbone.loss(batch, tasks[0])
    force_class_9(backbone)  # a masked logit: the task-IL loss must not see it
    after = backbone.loss(batch, tasks[0])
    assert torch.isfinite(after) and torch.allclose(before, after)


@pytest.mark.parametrize("options", [{}, {"activation": "gelu", "dropout": 0.1}, {"hidden": []}])
def test_training_reduces_the_loss(options):
    backbone, tasks = setup("class-il", **options)
    backbone.label_space.mark_seen(tasks[0])
    data, task = tasks[0].train, tasks[0]
    full = backbone.collate(data[:])
    optimizer = torch.optim.Adam(backbone.trainable_parameters(), lr=0.01)
    with torch.no_grad():
        start = backbone.loss(full, task).item()
    backbone.model.train()
    for step in range(30):
        rows = [(step * 32 + i) % len(data) for i in range(32)]
        optimizer.zero_grad()
        backbone.loss(backbone.collate(data[rows]), task).backward()
        optimizer.step()
    backbone.model.eval()
    with torch.no_grad():
        assert backbone.loss(full, task).item() < start / 2
        accuracy = (backbone.predict(full, task, "class-il") == full["label"]).float().mean()
    assert accuracy > 0.9


@pytest.mark.parametrize("options", [{"dropout": 1.0}, {"hidden": [0]}, {"activation": "tanh"}, {"width": 3}])
def test_invalid_options(options):
    bench = benchmarks.build({"name": "split-digits"})
    with pytest.raises(ConfigError):
        backbones.build({"name": "mlp", **options}, bench, bench.tasks(0))
