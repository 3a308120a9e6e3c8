"""Process settings that keep a training step lean: glibc's malloc keeps freed blocks
(``clft.engine.devices.keep_freed_heap``) and the cyclic collector skips what existed before a task
(``gc.freeze`` in ``clft.engine.runner.execute``); issue 10."""

import gc
import json
import subprocess
import sys
import textwrap

import pytest

import clft.engine.runner
from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.sweep.run import run_experiment

ADAM_STEPS = textwrap.dedent("""
    import resource, sys, torch
    from clft.engine.devices import keep_freed_heap
    assert keep_freed_heap()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 400), torch.nn.ReLU(), torch.nn.Linear(400, 400),
                                torch.nn.ReLU(), torch.nn.Linear(400, 10))
    optimizer = torch.optim.Adam(model.parameters())
    x, y = torch.rand(128, 784), torch.randint(0, 10, (128,))
    def step():
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_an_adam_step_does_not_page_fault_its_temporaries_in_anew():
    """Without the thresholds a fresh process faults in 660-870 pages (2.6-3.4 MB) per step of this
    loop, every step, and runs it 15-25% slower; with them, about one."""
    proc = subprocess.run([sys.executable, "-c", ADAM_STEPS], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip()) < 50


def test_a_run_trains_with_the_collector_frozen_and_unfreezes_it_after(tmp_path, monkeypatch):
    frozen_while_training = []
    train_task = clft.engine.runner.train_task

    def recording(run, task):
        frozen_while_training.append(gc.get_freeze_count())
        train_task(run, task)

    monkeypatch.setattr(clft.engine.runner, "train_task", recording)
    raw = {"seeds": [0], "benchmark": {"name": "split-digits", "n_tasks": 2},
           "backbone": {"name": "mlp", "hidden": [8]}, "strategies": ["finetune"], "train": {"max_steps_per_task": 5}}
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    (path,) = run_experiment(cfg, tmp_path, progress=False, log=lambda m: None)
    assert len(json.loads(path.read_text())["acc"]) == 2
    assert len(frozen_while_training) == 2 and min(frozen_while_training) > 10_000  # the imports' objects
    assert gc.get_freeze_count() == 0
