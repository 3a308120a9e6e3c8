"""EWC's Fisher and MAS's Ω (vmap of grad, nn.Linear pieces) equal the per-example loop (issue 10)."""

import warnings

import pytest
import torch

from clft.registry import backbones, benchmarks, strategies
from clft.strategies._text import TINY_TEXT_BENCHMARK
from clft.types import LabelSpace

MINILM_LORA = {"name": "hf-classifier", "model": "all-MiniLM-L6-v2", "max_length": 32,
               "peft": {"peft_type": "LORA", "r": 8, "target_modules": ["query", "value"]}}
STREAMS = {
    "mlp": ({"name": "split-digits", "n_tasks": 5}, {"name": "mlp", "hidden": [32, 32]}),
    "minilm-lora": ({**TINY_TEXT_BENCHMARK, "n_tasks": 2}, MINILM_LORA),
}


def trained_backbone(kind: str):
    """The backbone after a few SGD steps on task 0 (so gradients are not those of the init)."""
    bench = benchmarks.build(STREAMS[kind][0])
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(dict(STREAMS[kind][1]), bench, tasks)
    backbone.label_space = LabelSpace("class-il", len(bench.label_names), {t.id: t.classes for t in tasks})
    backbone.label_space.mark_seen(tasks[0])
    data = backbone.prepare(tasks[0].train)
    optimizer = torch.optim.SGD(backbone.trainable_parameters(), lr=0.1)
    for start in (0, 8, 16):
        optimizer.zero_grad()
        backbone.loss(backbone.collate(data[start : start + 8]), tasks[0]).backward()
        optimizer.step()
    return backbone, tasks[0]


@pytest.mark.parametrize("kind", sorted(STREAMS))
@pytest.mark.parametrize("spec, method", [({"name": "ewc", "fisher_samples": 40}, "fisher"),
                                          ({"name": "mas", "samples": 40}, "sensitivity")])
@pytest.mark.parametrize("how", ["linear", "vmap"])
def test_vectorised_importance_equals_the_per_example_loop(kind, spec, method, how):
    backbone, task = trained_backbone(kind)
    strategy = strategies.build(spec)
    strategy.before_task(backbone, task, [task])
    state = strategy.rng.bit_generator.state
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="per-example")  # no fallback to another way
        fast = getattr(strategy, method)(backbone, task, how=how)
    strategy.rng.bit_generator.state = state  # the same sample of rows
    slow = getattr(strategy, method)(backbone, task, how="loop")
    assert sorted(fast) == sorted(slow) == sorted(n for n, p in backbone.model.named_parameters() if p.requires_grad)
    assert max(float(v.abs().max()) for v in slow.values()) > 1e-4  # not all zeros
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-5, atol=1e-5, msg=name)
