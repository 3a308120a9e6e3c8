"""One CPU process (fp32): no accelerate; the loop calls torch's backward and optimizer directly."""

from __future__ import annotations

import json

import pytest
import torch

from clft.config import make_dataclass_instance
from clft.devices import Devices
from clft.experiment import ExperimentConfig
from clft.sweep import run_experiment


def test_one_cpu_process_builds_no_accelerator_and_steps_with_torch():
    devices = Devices("cpu")
    assert devices.accelerator is None and devices.plain and devices.device == torch.device("cpu")
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    assert devices.prepare_optimizer(optimizer) is optimizer  # not an AcceleratedOptimizer
    devices.backward((weight * torch.tensor([1.0, -2.0])).sum())
    assert torch.equal(weight.grad, torch.tensor([1.0, -2.0]))


def test_a_cpu_run_trains_without_accelerate(tmp_path):
    raw = {"seeds": [0], "benchmark": {"name": "split-digits"}, "backbone": {"name": "mlp", "hidden": [8]},
           "strategies": ["finetune"], "train": {"max_steps_per_task": 20}}
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    (path,) = run_experiment(cfg, tmp_path, progress=False, log=lambda m: None)
    result = json.loads(path.read_text())
    assert result["acc"][0][0] > result["baseline_acc"][0] + 0.2  # it trained


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cpu_runs_stay_fp32_and_plain_whatever_precision_is_asked(precision):
    assert Devices("cpu", precision).mixed_precision == "no" and Devices("cpu", precision).plain
