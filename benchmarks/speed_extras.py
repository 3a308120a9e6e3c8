"""The in-process measurements of ``benchmarks/speed.py`` (run by it; also alone).

Usage: ``CLFT_DATA_DIR=../shared/data .venv/bin/python benchmarks/speed_extras.py [--before PATH]
[--threads N] [--importances-only]``

1. Per-example importances: EWC's Fisher and MAS's Ω three ways (``how=``): the
   per-example loop, ``torch.func.vmap(grad)``, and the nn.Linear pieces of one
   batched backward pass (``clft.strategies._linear_importance``, ``how="linear"``),
   and the plain batch gradient of the same chunks (the floor of any per-example way),
   batches read from the same pre-extracted columns, on the MLP
   over Split-MNIST task 0 (1,000 examples) and
   on MiniLM + LoRA r=8 over CLINC150 task 0 (all its training examples); the
   faster of two timings each, and the largest absolute difference from the loop.
   ``--threads N`` runs this part with N torch threads (a user's run on N cores: the
   per-example loop's small products gain little from threads, batched ones more).
2. Checkpoint size: the per-task checkpoint's model tensors (``clft.sweep``'s
   trainable + buffers selection) against the full model's state dict, MiniLM +
   LoRA r=8, both written as safetensors.
3. A 10-task CLINC150 run (MiniLM + LoRA r=8, 10 test examples per intent, 5
   training steps of 32 per task): the share of the run spent in evaluation
   (``runner.evaluate_stream``, timed by wrapping it), and training / evaluation
   examples per second of wall time and per second of process CPU time
   (``runner.train_task`` wrapped too; CPU time does not count the time other
   processes of a shared machine held the core), and their ratio. ``--before PATH``
   also runs the throughput part on another clft checkout (e.g. the commit before
   issue 10) in a child process, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MINILM_LORA = {"name": "hf-classifier", "model": "all-MiniLM-L6-v2", "max_length": 64,
               "peft": {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                        "target_modules": ["query", "value"]}}
CLINC = {"file": "benchmarks/clinc150-by-domain.yaml", "train_per_class": 30, "test_per_class": 10}
ROOT = Path(__file__).resolve().parent.parent


def build(benchmark: dict, backbone: dict):
    """(backbone, tasks) as the runner builds them, class-IL, task 0 marked seen."""
    import clft.backbones  # noqa: F401
    import clft.benchmarks  # noqa: F401
    from clft.config.experiment import resolve_spec
    from clft.registry import backbones, benchmarks
    from clft.types import LabelSpace

    bench = benchmarks.build(resolve_spec(dict(benchmark), ROOT))
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    model = backbones.build(dict(backbone), bench, tasks)
    model.label_space = LabelSpace(bench.scenario, len(bench.label_names), {t.id: t.classes for t in tasks})
    model.label_space.mark_seen(tasks[0])
    return model, tasks


def batch_gradient_seconds(model, task, strategy, method: str) -> float:
    """Seconds for the plain gradient of Σ_n f_n over the same rows, in the same length-sorted chunks:
    the batched forward and backward every per-example way has to do at least once (its floor)."""
    from clft.data.columns import columns
    from clft.strategies._importance import by_length, linear_chunk

    data = model.prepare(task.train)
    state = strategy.rng.bit_generator.state
    rows = by_length(model, data, strategy.sample_rows(len(data)))
    strategy.rng.bit_generator.state = state
    params, table, allowed = model.trainable_parameters(), columns(data), list(model.label_space.allowed(task.id))
    model.model.eval()
    started = time.perf_counter()
    chunk = linear_chunk(model, data)
    for start in range(0, len(rows), chunk):
        batch = model.collate(table[rows[start : start + chunk]])
        if method == "fisher":
            values = model.forward(batch, task).example_loss
        else:
            values = model.logits(batch)[:, allowed].pow(2).sum(1)
        torch.autograd.grad(values.sum(), params, allow_unused=True)
    seconds = time.perf_counter() - started
    model.model.train()
    return seconds


def importances() -> list[str]:
    from clft.registry import strategies

    lines = ["| model | importance | examples | loop (s) | vmap (s) | nn.Linear pieces (s) | vmap speed-up | "
             "pieces speed-up | batch gradient (s) | loop / batch gradient | max abs diff vmap / pieces |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cases = [("MLP 784-400-400-10", {"name": "split-mnist"}, {"name": "mlp", "hidden": [400, 400]}, 1000),
             ("MiniLM + LoRA r=8", CLINC, MINILM_LORA, None)]
    for label, bench, backbone, samples in cases:
        model, tasks = build(bench, backbone)
        for name, method, key in (("ewc", "fisher", "fisher_samples"), ("mas", "sensitivity", "samples")):
            strategy = strategies.build({"name": name, key: samples})
            strategy.before_task(model, tasks[0], tasks)
            times, values = {"loop": [], "vmap": [], "linear": []}, {}
            for how in ("linear", "vmap", "loop") * 2:
                state = strategy.rng.bit_generator.state
                started = time.perf_counter()
                values[how] = getattr(strategy, method)(model, tasks[0], how=how)
                times[how].append(time.perf_counter() - started)
                strategy.rng.bit_generator.state = state
            diff = {how: max(float((values[how][k] - values["loop"][k]).abs().max()) for k in values["loop"])
                    for how in ("vmap", "linear")}
            best = {how: min(t) for how, t in times.items()}
            best["floor"] = min(batch_gradient_seconds(model, tasks[0], strategy, method) for _ in range(2))
            n = min(samples or len(tasks[0].train), len(tasks[0].train))
            lines.append(f"| {label} | {name} | {n} | {best['loop']:.2f} | {best['vmap']:.2f} | {best['linear']:.2f} | "
                         f"{best['loop'] / best['vmap']:.1f}x | {best['loop'] / best['linear']:.1f}x | "
                         f"{best['floor']:.2f} | "
                         f"{best['loop'] / best['floor']:.1f}x | "
                         f"{diff['vmap']:.1e} / {diff['linear']:.1e} |")
    return lines


def checkpoint_bytes() -> list[str]:
    from clft.storage.state_io import save_tensors

    model, _ = build(CLINC, MINILM_LORA)
    net = model.model
    kept = {n for n, p in net.named_parameters() if p.requires_grad} | {n for n, _ in net.named_buffers()}
    state = net.state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        save_tensors(Path(tmp) / "task.safetensors", {k: v.contiguous() for k, v in state.items() if k in kept})
        save_tensors(Path(tmp) / "full.safetensors", {k: v.contiguous() for k, v in state.items()})
        task, full = (Path(tmp) / "task.safetensors").stat().st_size, (Path(tmp) / "full.safetensors").stat().st_size
    return [f"per-task checkpoint model tensors, MiniLM + LoRA r=8 (query, value) + 150-way head: {task:,} bytes "
            f"vs the full model {full:,} bytes = {100 * task / full:.2f}%"]


def clinc_run(steps: int = 5) -> dict:
    """Evaluation share and examples/s of a 10-task CLINC150 run (module docstring, item 3)."""
    from clft.config.experiment import ExperimentConfig, TrainConfig
    from clft.engine import runner
    from clft.sweep.build import build_run
    from clft.sweep.plan import RunPlan

    cfg = ExperimentConfig(name="speed-clinc", benchmark=dict(CLINC), backbone=dict(MINILM_LORA),
                           train=TrainConfig(epochs=1, batch_size=32, eval_batch_size=256, lr=3e-3, threads=1,
                                             max_steps_per_task=steps))
    run = build_run(cfg, RunPlan([{"name": "finetune"}], "class-il", 0), ROOT, progress=False)
    spent = {"eval": 0.0, "eval_cpu": 0.0, "eval_examples": 0, "train_cpu": 0.0}
    evaluate, train_task = runner.evaluate_stream, runner.train_task

    def timed_evaluate(r, *args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        out = evaluate(r, *args, **kwargs)
        spent["eval"] += time.perf_counter() - started
        spent["eval_cpu"] += time.process_time() - cpu
        spent["eval_examples"] += sum(len(t.test) for t, score in zip(r.tasks, out) if score is not None)
        return out

    def timed_train(r, task):
        cpu = time.process_time()
        train_task(r, task)
        spent["train_cpu"] += time.process_time() - cpu

    runner.evaluate_stream, runner.train_task = timed_evaluate, timed_train
    try:
        started = time.perf_counter()
        runner.execute(run)
        total = time.perf_counter() - started
    finally:
        runner.evaluate_stream, runner.train_task = evaluate, train_task
    train = sum(run.state.train_seconds)
    trained = sum(min(steps * 32, len(t.train)) for t in run.tasks)
    return {"total": total, "eval": spent["eval"], "train": train, "tasks": len(run.tasks),
            "eval_per_s": spent["eval_examples"] / spent["eval"], "train_per_s": trained / train,
            "eval_per_cpu_s": spent["eval_examples"] / spent["eval_cpu"],
            "train_per_cpu_s": trained / spent["train_cpu"]}


CLINC_HEADER = ("| code | tasks | run (s) | evaluation (s) | evaluation share | train examples/s | eval examples/s | "
                "eval / train | train examples/CPU s | eval examples/CPU s | eval / train (CPU) |")


def clinc_lines(result: dict, label: str) -> list[str]:
    """One table row; the CPU-time columns (process CPU seconds) are steadier than wall time on a shared machine."""
    return [f"| {label} | {result['tasks']} | {result['total']:.1f} | {result['eval']:.1f} | "
            f"{100 * result['eval'] / result['total']:.0f}% | {result['train_per_s']:.1f} | "
            f"{result['eval_per_s']:.1f} | {result['eval_per_s'] / result['train_per_s']:.2f} | "
            f"{result['train_per_cpu_s']:.1f} | {result['eval_per_cpu_s']:.1f} | "
            f"{result['eval_per_cpu_s'] / result['train_per_cpu_s']:.2f} |"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="another clft checkout to measure the CLINC150 run on, for before/after")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the importances (default 1)")
    parser.add_argument("--importances-only", action="store_true", help="only item 1")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(clinc_run()))
        return
    torch.set_num_threads(args.threads)
    print("\nPer-example importances: the per-example loop, torch.func vmap(grad), nn.Linear pieces "
          f"({args.threads} thread{'s' if args.threads > 1 else ''})\n")
    print("\n".join(importances()))
    if args.importances_only:
        return
    print("\n" + "\n".join(checkpoint_bytes()))
    print("\nCLINC150 by domain, 10 tasks, MiniLM + LoRA r=8, 5 steps x 32 per task, 10 test examples per intent\n")
    print(CLINC_HEADER)
    print("|---|" + "---:|" * (CLINC_HEADER.count("|") - 2))
    checkouts = [("this checkout", str(ROOT))] + ([(f"before ({args.before})", args.before)] if args.before else [])
    for label, path in checkouts:
        env = {**os.environ, "PYTHONPATH": path, "CLFT_STREAM_CACHE": "0"}
        proc = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, env=env, cwd=path)
        if proc.returncode:
            reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
            print(f"| {label} | failed: {reason} |")
            continue
        print("\n".join(clinc_lines(json.loads(proc.stdout.strip().splitlines()[-1]), label)), flush=True)


if __name__ == "__main__":
    main()
