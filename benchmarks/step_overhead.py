"""Where clft's training step spends more than a hand-written loop: a bisection in one process.

Usage (a script, not a test; needs ``$CLFT_DATA_DIR/mnist/``)::

    CLFT_DATA_DIR=../shared/data taskset -c 1 python benchmarks/step_overhead.py [--reps 3]

The harness's workload (class-IL Split-MNIST, MLP 784-400-400-10, Adam 1e-3, batch 128, one epoch per
task), tasks 2-5 trained ``--reps`` times by each variant in turn, timed by the thread's CPU time (between
processes the same workload varies by more than 10%, within one process far less). Each variant adds one
piece of clft to the hand loop:

- ``hand``: its own model, batches sliced from tensors, ``F.cross_entropy``, ``loss.backward()``, Adam;
- ``+clft model``: the backbone's ``nn.Module`` instead;
- ``+column batches``: batches from ``clft.data.columns`` through ``backbone.collate``;
- ``+backbone.forward``: the masked per-example loss and ``Outputs.main_loss``;
- ``+accelerate wrappers``: accelerate's ``backward`` and prepared optimizer (clft's path before 6037e55);
- ``+Devices``: clft's ``Devices.backward`` and ``prepare_optimizer`` (fp32 in one process: torch's own);
- ``clft train_task``: the runner's whole task loop (hooks, checks, progress bar).

Prints each variant's seconds, microseconds per step and ratio to ``hand``. ``--hidden 4`` shrinks the
MLP to 784-4-4-10 so the step's arithmetic nearly vanishes and what remains is per-step overhead: the
difference to ``hand`` in microseconds is what each piece of clft adds to every step of any model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

WORKLOAD = {"name": "step-overhead", "seeds": [0], "scenarios": ["class-il"],
            "benchmark": {"name": "split-mnist", "n_tasks": 5}, "backbone": {"name": "mlp", "hidden": [400, 400]},
            "strategies": ["finetune"],
            "train": {"epochs": 1, "batch_size": 128, "eval_batch_size": 256, "lr": 1e-3, "optimizer": "adam",
                      "threads": 1}}


def build(folder: Path):
    """The runner's Run for the workload, every task's classes seen, task 1 trained (imports warmed)."""
    import clft.engine.runner
    from clft.config.experiment import load_experiment
    from clft.sweep.build import build_run
    from clft.sweep.plan import plan_runs

    path = folder / "workload.yaml"
    path.write_text(yaml.safe_dump(WORKLOAD))
    cfg, _ = load_experiment(str(path))
    run = build_run(cfg, plan_runs(cfg)[0], folder, False)
    for task in run.tasks:
        run.backbone.label_space.mark_seen(task)
    clft.engine.runner.train_task(run, run.tasks[0])
    return run


def hand_loop(run, task, model: nn.Module, tensors: dict, columns: bool, forward: bool, devices: str = "") -> None:
    """One epoch of ``task`` the hand-written way, with the chosen pieces of clft swapped in
    (``devices``: "" torch's backward and optimizer, "accelerate" accelerate's wrappers, "clft" Devices)."""
    from clft.data.columns import columns as column_batches

    backbone, data = run.backbone, column_batches(task.train)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    wrapper = {"": None, "accelerate": run.devices.accelerator, "clft": run.devices}[devices]
    optimizer = wrapper.prepare_optimizer(optimizer) if wrapper else optimizer
    allowed = torch.ones(10, dtype=torch.bool)
    order = np.random.default_rng(0).permutation(len(data))
    for indices in np.array_split(order, range(128, len(order), 128)):
        if columns:
            batch = backbone.collate(data[indices])
        else:
            rows = torch.from_numpy(indices)
            batch = {"x": tensors["x"][rows], "label": tensors["label"][rows]}
        if forward:
            loss = backbone.forward(batch, task).main_loss()
        else:
            loss = F.cross_entropy(model(batch["x"]).masked_fill(~allowed, -1e30), batch["label"])
        wrapper.backward(loss) if wrapper else loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=400, help="width of both hidden layers (4: overhead only)")
    args = parser.parse_args()
    WORKLOAD["backbone"]["hidden"] = [args.hidden, args.hidden]
    torch.set_num_threads(1)
    import clft.engine.runner
    from clft.data.columns import columns

    with tempfile.TemporaryDirectory() as folder:
        run = build(Path(folder))
        width = args.hidden
        own = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
        full = {t.id: columns(t.train)[np.arange(len(t.train))] for t in run.tasks}
        model = run.backbone.model
        variants = {
            "hand": lambda t: hand_loop(run, t, own, full[t.id], False, False),
            "+clft model": lambda t: hand_loop(run, t, model, full[t.id], False, False),
            "+column batches": lambda t: hand_loop(run, t, model, full[t.id], True, False),
            "+backbone.forward": lambda t: hand_loop(run, t, model, full[t.id], True, True),
            "+accelerate wrappers": lambda t: hand_loop(run, t, model, full[t.id], True, True, "accelerate"),
            "+Devices": lambda t: hand_loop(run, t, model, full[t.id], True, True, "clft"),
            "clft train_task": lambda t: clft.engine.runner.train_task(run, t),
        }
        seconds = dict.fromkeys(variants, 0.0)
        for _ in range(args.reps):
            for task in run.tasks[1:]:
                for name, train in variants.items():
                    started = time.thread_time()
                    train(task)
                    seconds[name] += time.thread_time() - started
        steps = args.reps * sum(-(-len(t.train) // 128) for t in run.tasks[1:])
    print(f"MLP 784-{args.hidden}-{args.hidden}-10, {steps} steps per variant, thread CPU time")
    for name, value in seconds.items():
        print(f"{name:<20} {value:6.2f} s  {1e6 * value / steps:7.0f} us/step  {value / seconds['hand']:.3f}x")


if __name__ == "__main__":
    main()
