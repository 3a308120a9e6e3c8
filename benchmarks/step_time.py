"""Per-step wall time of LwF and DER++ (split-digits MLP; MiniLM + LoRA on CLINC150).

Usage (a script, not a test; the CLINC150 rows need ``$CLFT_DATA_DIR/clinc150``)::

    CLFT_DATA_DIR=../shared/data python benchmarks/step_time.py [--digits-steps 60] [--text-steps 8] [--json out.json]

Each setup runs two tasks through the real sweep (``clft.sweep.build_run`` + ``clft.engine.runner.execute``,
one thread) for ``--*-steps`` optimizer steps per task and reports the second task's training time
per step (``train_seconds[1]`` / steps: the old model of LwF and DER++'s buffer are in use there;
evaluation is not included), as wall time and as the training thread's CPU time. Run the same
script against two checkouts (``PYTHONPATH=<checkout>``) and divide: before the step contract,
LwF and DER ran a second forward pass of the trained model on every batch. Best of
``--repeats`` runs, to damp other load on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

DIGITS = ({"name": "split-digits", "n_tasks": 2}, {"name": "mlp", "hidden": [256, 256]})
TEXT = ({"name": "clinc150", "split": "chunks", "n_tasks": 2, "train_per_class": 30, "test_per_class": 2},
        {"name": "hf-classifier", "model": "all-MiniLM-L6-v2", "max_length": 64,
         "peft": {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                  "target_modules": ["query", "value"]}})
STRATEGIES = {"lwf": {"name": "lwf"}, "derpp": {"name": "derpp", "memory_size": 200}}


def step_seconds(benchmark: dict, backbone: dict, strategy: dict, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per optimizer step in the second task of a two-task run.

    CPU time (of the one training thread) is reported too: on a machine shared with other
    jobs it varies far less than wall time, and with one thread it is the work done."""
    import torch

    import clft.engine.runner
    from clft.config.experiment import load_experiment
    from clft.engine.runner import execute
    from clft.sweep.build import build_run
    from clft.sweep.plan import plan_runs

    cpu: list[float] = []
    train_task = clft.engine.runner.train_task

    def timed_train_task(run, task):
        started = time.thread_time()
        train_task(run, task)
        cpu.append(time.thread_time() - started)

    torch.set_num_threads(1)
    raw = {"name": "step-time", "seeds": [0], "scenarios": ["class-il"], "benchmark": benchmark,
           "backbone": backbone, "strategies": [strategy],
           "train": {"epochs": 1, "batch_size": 32, "eval_batch_size": 256, "lr": 1e-3, "threads": 1,
                     "max_steps_per_task": steps}}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exp.yaml"
        path.write_text(yaml.safe_dump(raw))
        cfg, _ = load_experiment(str(path))
        run = build_run(cfg, plan_runs(cfg)[0], Path(folder), False)
        clft.engine.runner.train_task = timed_train_task
        try:
            state = execute(run)
        finally:
            clft.engine.runner.train_task = train_task
    return state.train_seconds[1] / steps, cpu[1] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits-steps", type=int, default=60)
    parser.add_argument("--text-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import datasets

    import clft

    datasets.disable_progress_bars()

    setups = [("split-digits/mlp", *DIGITS, args.digits_steps)]
    if not args.skip_text:
        setups.append(("clinc150/minilm-lora", *TEXT, args.text_steps))
    numbers = {}
    print(f"clft from {Path(clft.__file__).parent}", file=sys.stderr)
    for label, benchmark, backbone, steps in setups:
        for name, strategy in STRATEGIES.items():
            times = [step_seconds(benchmark, backbone, strategy, steps) for _ in range(args.repeats)]
            wall, cpu = min(t[0] for t in times), min(t[1] for t in times)
            numbers[f"{label}/{name}"] = {"wall_s": wall, "cpu_s": cpu}
            print(f"{label:<22} {name:<6} wall {1000 * wall:8.2f} ms/step  cpu {1000 * cpu:8.2f} ms/step  "
                  f"({steps} steps, best of {args.repeats})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
