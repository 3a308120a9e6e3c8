"""fp32 in one process: the loop calls torch's backward and optimizer directly, not accelerate's wrappers."""

from __future__ import annotations

import json

import pytest
import torch

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.engine.devices import Devices
from clft.sweep.run import run_experiment


def test_a_cpu_fp32_run_bypasses_accelerates_wrappers(tmp_path, monkeypatch):
    devices = Devices("cpu")
    assert devices.plain
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    assert devices.prepare_optimizer(optimizer) is optimizer  # not an AcceleratedOptimizer

    def refuse(*args, **kwargs):
        raise AssertionError("accelerate's backward ran")

    monkeypatch.setattr(type(devices.accelerator), "backward", refuse)
    raw = {"seeds": [0], "benchmark": {"name": "split-digits"}, "backbone": {"name": "mlp", "hidden": [8]},
           "strategies": ["finetune"], "train": {"max_steps_per_task": 20}}
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    (path,) = run_experiment(cfg, tmp_path, progress=False, log=lambda m: None)
    result = json.loads(path.read_text())
    assert result["acc"][0][0] > result["baseline_acc"][0] + 0.2  # it trained, without accelerate's backward


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cpu_runs_stay_fp32_and_plain_whatever_precision_is_asked(precision):
    assert Devices("cpu", precision).mixed_precision == "no" and Devices("cpu", precision).plain
