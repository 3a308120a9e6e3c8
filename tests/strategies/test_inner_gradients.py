"""``torch.autograd.grad(..., retain_graph=True, create_graph=True)`` inside ``extra_loss``: exact with
gradient accumulation and with clft's data parallelism; refused with one line under fp16."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from fake_distribution import write_distribution

from clft.config.experiment import load_experiment
from clft.data.columns import columns
from clft.engine.devices import INNER_GRADIENTS_UNDER_FP16
from clft.engine.runner import forward_backward
from clft.errors import ConfigError
from clft.registry import strategies
from clft.sweep.build import build_run
from clft.sweep.plan import plan_runs

PENALTY = '''
from dataclasses import dataclass

import torch

from clft.types import Strategy


class GradNormPenalty(Strategy):
    """A gradient-norm penalty: lam * ||d main_loss / d theta||^2 (Drucker & LeCun 1992, double backpropagation)."""

    name = "grad-norm-penalty"

    @dataclass
    class Config:
        lam: float = 0.5
        """Weight of the penalty."""

    def extra_loss(self, backbone, batch, outputs, task):
        params = backbone.trainable_parameters()
        grads = torch.autograd.grad(outputs.main_loss(), params, retain_graph=True, create_graph=True)
        return self.config.lam * sum((g ** 2).sum() for g in grads)
'''
namespace: dict = {}
exec(compile(textwrap.dedent(PENALTY), "grad_norm_penalty", "exec"), namespace)  # noqa: S102
GradNormPenalty = namespace["GradNormPenalty"]
TRAIN = {"epochs": 1, "batch_size": 8, "lr": 0.05, "grad_accumulation_steps": 2, "max_steps_per_task": 3,
         "threads": 1}


@pytest.fixture
def penalty_run(write_experiment):
    """A built run of grad-norm-penalty (accumulating 2 micro-batches of 8), its first task started."""
    with strategies.registered(GradNormPenalty):
        cfg, _ = load_experiment(str(write_experiment(strategies=["grad-norm-penalty"], train=TRAIN)))
        run = build_run(cfg, plan_runs(cfg)[0], None, False)
        task = run.tasks[0]
        run.backbone.label_space.mark_seen(task)
        yield run, task, columns(run.backbone.prepare(task.train))


def by_hand(backbone, task, micro_batches, lam):
    """Σ_k ∇[(L_k + lam·‖∇L_k‖²) / K] over the micro-batches, with fresh autograd calls."""
    params = backbone.trainable_parameters()
    for p in params:
        p.grad = None
    for examples in micro_batches:
        loss = backbone.forward(backbone.collate(examples), task).main_loss()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        ((loss + lam * sum((g ** 2).sum() for g in grads)) / len(micro_batches)).backward()
    return [p.grad.clone() for p in params]


def test_with_gradient_accumulation_the_step_is_the_sum_over_micro_batches(penalty_run):
    run, task, data = penalty_run
    micro = [data[list(range(0, 8))], data[list(range(8, 16))]]
    for examples in micro:
        forward_backward(run, task, examples, 0, [])
    runner = [p.grad.clone() for p in run.backbone.trainable_parameters()]
    expected = by_hand(run.backbone, task, micro, lam=0.5)
    for got, want in zip(runner, expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-8)
    plain = by_hand(run.backbone, task, micro, lam=0.0)
    assert any(not torch.allclose(a, b) for a, b in zip(runner, plain))  # the penalty's gradient counts


def test_a_sweep_with_accumulation_trains_through_it(write_experiment, tmp_path):
    from clft.sweep.run import run_experiment

    with strategies.registered(GradNormPenalty):
        cfg, _ = load_experiment(str(write_experiment(strategies=["grad-norm-penalty"], train=TRAIN)))
        [path] = run_experiment(cfg, tmp_path / "out", progress=False, log=lambda m: None)
    assert len(json.loads(path.read_text())["acc"]) == 5


def test_under_fp16_it_is_refused_with_one_line(penalty_run):
    run, task, data = penalty_run
    run.devices.mixed_precision = "fp16"  # fp16 needs CUDA; the guard is the same on a CPU
    original = torch.autograd.grad
    with pytest.raises(ConfigError) as refused:
        forward_backward(run, task, data[list(range(8))], 0, [])
    assert str(refused.value) == INNER_GRADIENTS_UNDER_FP16 and "\n" not in INNER_GRADIENTS_UNDER_FP16
    assert "bf16" in INNER_GRADIENTS_UNDER_FP16 and torch.autograd.grad is original  # restored
    run.strategies = []  # a strategy that does not differentiate trains as before
    assert forward_backward(run, task, data[list(range(8))], 0, []) is not None


@pytest.mark.slow
def test_two_gloo_processes_give_the_single_process_matrix(write_experiment, tmp_path):
    """clft's data parallelism (not DDP): extra_loss sees the global batch on every process, its term is
    scaled 1/P and the gradients summed, so the inner gradients are the single process's."""
    site = tmp_path / "site"
    write_distribution(site, "gradpenalty", "1.0", textwrap.dedent(PENALTY),
                       {"clft.strategies": {"grad-norm-penalty": "gradpenalty:GradNormPenalty"}})
    exp = write_experiment(strategies=["grad-norm-penalty"], backbone={"name": "mlp", "hidden": [32]},
                           train={**TRAIN, "batch_size": 15, "grad_accumulation_steps": 1, "max_steps_per_task": 6})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["run", str(exp), "-v", "--no-plots", "--out"]
    single = subprocess.run([sys.executable, "-m", "clft", *common, str(one)], capture_output=True, text=True,
                            env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "clft",
                               *common, str(two)], capture_output=True, text=True, env=env, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stderr.count("on 2 processes") == 1
    [a], [b] = (list(folder.rglob("seed*.json")) for folder in (one, two))
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    assert np.abs(np.array(first["acc"]) - np.array(second["acc"])).max() <= 1e-4
    assert first["code"]["plugins"][0]["name"] == "gradpenalty"
