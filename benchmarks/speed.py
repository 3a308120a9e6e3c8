"""clft against a hand-written PyTorch loop (and Avalanche 0.6 when installed), in one run.

Usage (a script, not a test; needs ``$CLFT_DATA_DIR/mnist/``, and ``clinc150/`` for the extras)::

    CLFT_DATA_DIR=../shared/data .venv/bin/python benchmarks/speed.py [--reps 3] [--core N] [--no-extras]

Workload (issue 10): class-IL Split-MNIST (real MNIST, 5 tasks of 2 digits), MLP
784-400-400-10, Adam 1e-3, batch 128, 1 epoch per task, the full evaluation
(every test set before training and after each task). Methods: finetune, replay
(500 examples filled after each task, replay batch 128), EWC (λ 100, Fisher from 1,000 examples per task).

Each measurement is a fresh process pinned to one core (``--core``, default the last
one allowed) with one torch thread. For every repetition the clft and hand-loop runs
of a method follow each other (order alternating), so load changes hit both; the
table shows medians over ``--reps`` of

- whole process: wall time of the process, interpreter start and imports included;
- training loop: the sum over tasks of the time from the start of a task to the end
  of its ``after_task`` work (Fisher, buffer update), evaluations excluded (clft's
  ``cost.train_seconds``; the hand loop measures the same span).

and, for each ratio, the paired estimate: the geometric mean of the per-repetition
ratios with its 95% t interval, so "within noise" is a measured statement.

The extras (``benchmarks/speed_extras.py``, in-process) measure EWC/MAS importances
by vmap against the per-example loop (on the pinned core with 1 thread, then again with
one thread per allowed core, unpinned), per-task checkpoint bytes of MiniLM + LoRA
r=8, and the evaluation share and examples/s of a 10-task CLINC150 run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
METHODS = {
    "finetune": ["finetune"],
    # the hand loop and Avalanche's Replay fill their memory after each task: clft's task-end form
    "replay": [{"name": "replay", "memory_size": 500, "replay_batch_size": 128, "update": "task-end"}],
    "ewc": [{"name": "ewc", "lam": 100.0, "fisher_samples": 1000}],
}
AVALANCHE_SKIP = "avalanche is not installed (pip install avalanche-lib==0.6.*)"


def machine() -> str:
    """Cores, torch threads, load, CPU model, versions: one line."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} allowed), {model}; "
            f"torch {torch.__version__} with 1 thread per measured process; load average {load[0]:.2f} (1 min); "
            f"Python {platform.python_version()}")


def experiment_yaml(method: str, folder: Path) -> Path:
    spec = {"name": f"speed-{method}", "seeds": [0], "scenarios": ["class-il"],
            "benchmark": {"name": "split-mnist", "n_tasks": 5},
            "backbone": {"name": "mlp", "hidden": [400, 400]},
            "strategies": METHODS[method],
            "train": {"epochs": 1, "batch_size": 128, "eval_batch_size": 256, "lr": 1e-3, "optimizer": "adam",
                      "threads": 1}}
    path = folder / f"{method}.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def timed(command: list[str], core: int, env: dict) -> tuple[float, str]:
    """(wall seconds, stdout) of ``command`` pinned to ``core``."""
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env,
                          preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def run_clft(method: str, folder: Path, core: int, env: dict) -> dict:
    out = folder / f"out-{method}-{time.monotonic_ns()}"
    wall, _ = timed([sys.executable, "-m", "clft.cli", "run", str(experiment_yaml(method, folder)), "--out", str(out),
                     "--no-plots", "--quiet"], core, env)
    result = json.loads(next(out.rglob("seed0.json")).read_text())
    return {"wall": wall, "train": sum(result["cost"]["train_seconds"]), "final": result["acc"][-1],
            "peak_mb": result["cost"]["peak_memory_mb"]}


def run_hand(method: str, core: int, env: dict) -> dict:
    wall, stdout = timed([sys.executable, str(HERE / "speed_hand.py"), method], core, env)
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": wall, "train": sum(result["train_seconds"]), "final": result["acc"][-1]}


def run_avalanche(method: str, core: int, env: dict) -> dict:
    wall, stdout = timed([sys.executable, str(HERE / "speed_avalanche.py"), method], core, env)
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": wall, "train": sum(result["train_seconds"]), "final": result["acc"][-1]}


def avalanche_available() -> str | None:
    """None when ``avalanche`` imports (in a child, to keep this process light), else why not."""
    proc = subprocess.run([sys.executable, "-c", "import avalanche; print(avalanche.__version__)"],
                          capture_output=True, text=True)
    return None if proc.returncode == 0 else AVALANCHE_SKIP


def measure(reps: int, core: int, with_avalanche: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    samples: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="clft-speed-") as tmp:
        env.setdefault("CLFT_CACHE_DIR", str(Path(tmp) / "cache"))
        folder = Path(tmp)
        run_clft("finetune", folder, core, env)  # warm the stream cache (a sweep's first run), untimed
        for rep in range(reps):
            for method in METHODS:
                runners = [("clft", lambda m=method: run_clft(m, folder, core, env)),
                           ("hand", lambda m=method: run_hand(m, core, env))]
                if with_avalanche:
                    runners.append(("avalanche", lambda m=method: run_avalanche(m, core, env)))
                for name, runner in runners if rep % 2 == 0 else runners[::-1]:
                    samples.setdefault((method, name), []).append(runner())
                    print(f"  rep {rep + 1} {method:<8} {name:<9} wall {samples[(method, name)][-1]['wall']:6.2f} s "
                          f"train {samples[(method, name)][-1]['train']:6.2f} s", flush=True)
    return samples


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def ratio_interval(numerator: list[dict], denominator: list[dict], key: str) -> str:
    """The paired ratios r_i = a_i / b_i of one repetition each, as exp(mean log r) and its 95% t interval
    exp(mean ± t·sd/√n) over the repetitions (``clft.results.stats.t_interval`` on log r): a ratio whose whole
    interval lies under a target meets it beyond this machine's run-to-run noise."""
    from clft.results.stats import t_interval

    logs = [math.log(a[key] / b[key]) for a, b in zip(numerator, denominator)]
    interval = t_interval(logs)
    centre = math.exp(statistics.mean(logs))
    if interval is None:
        return f"{centre:.2f}x"
    return f"{centre:.2f}x [{math.exp(interval[0]):.2f}, {math.exp(interval[1]):.2f}]"


def report(samples: dict, reps: int, with_avalanche: bool) -> str:
    lines = ["| method | clft train (s) | hand train (s) | train ratio | paired train ratio [95% CI] | "
             "clft whole (s) | hand whole (s) | whole ratio | paired whole ratio [95% CI] | clft peak RSS (MB) | "
             "final ACC clft / hand |", "|---|" + "---:|" * 10]
    for method in METHODS:
        clft, hand = samples[(method, "clft")], samples[(method, "hand")]
        acc = f"{statistics.mean(clft[0]['final']):.3f} / {statistics.mean(hand[0]['final']):.3f}"
        lines.append(f"| {method} | {median(clft, 'train'):.2f} | {median(hand, 'train'):.2f} | "
                     f"{median(clft, 'train') / median(hand, 'train'):.2f}x | {ratio_interval(clft, hand, 'train')} | "
                     f"{median(clft, 'wall'):.2f} | {median(hand, 'wall'):.2f} | "
                     f"{median(clft, 'wall') / median(hand, 'wall'):.2f}x | {ratio_interval(clft, hand, 'wall')} | "
                     f"{median(clft, 'peak_mb'):.0f} | {acc} |")
    if with_avalanche:
        lines += ["", "| method | avalanche whole (s) | clft / avalanche whole | paired [95% CI] | "
                  "final ACC avalanche |", "|---|---:|---:|---:|---:|"]
        for method in METHODS:
            clft, ava = samples[(method, "clft")], samples[(method, "avalanche")]
            lines.append(f"| {method} | {median(ava, 'wall'):.2f} | "
                         f"{median(clft, 'wall') / median(ava, 'wall'):.2f}x | "
                         f"{ratio_interval(clft, ava, 'wall')} | {statistics.mean(ava[0]['final']):.3f} |")
    return "\n".join(lines) + (f"\n\nmedians of {reps} interleaved repetitions; paired: the geometric mean of the "
                               "per-repetition ratios, with its 95% t interval")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--no-extras", action="store_true", help="only the Split-MNIST comparison")
    args = parser.parse_args()
    if "CLFT_DATA_DIR" not in os.environ:
        raise SystemExit("set CLFT_DATA_DIR to the folder holding mnist/ (and clinc150/ for the extras)")
    print("machine:", machine(), f"; measured processes pinned to core {args.core}")
    skip = avalanche_available()
    if skip:
        print("Avalanche comparison skipped:", skip)
    samples = measure(args.reps, args.core, skip is None)
    print("\nSplit-MNIST class-IL, MLP 784-400-400-10, Adam 1e-3, batch 128, 1 epoch/task, full 5x5 evaluation\n")
    print(report(samples, args.reps, skip is None))
    if not args.no_extras:
        subprocess.run([sys.executable, str(HERE / "speed_extras.py")], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)},
                       preexec_fn=lambda: os.sched_setaffinity(0, {args.core}))
        cores = len(os.sched_getaffinity(0))
        if cores > 1:  # the importances again as a run on every allowed core would compute them
            subprocess.run([sys.executable, str(HERE / "speed_extras.py"), "--importances-only",
                            "--threads", str(cores)], check=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    print("machine at the end:", machine())


if __name__ == "__main__":
    main()
