"""The Avalanche 0.6 side of ``benchmarks/speed.py``: the same workload with avalanche's strategies.

Split-MNIST class-IL from the same IDX files (``speed_hand.load_tasks``, as tensors:
no torchvision download), ``nc_benchmark`` with the fixed class order 0..9, the
MLP 784-400-400-10, Adam 1e-3, batch 128, 1 epoch, ``eval_mb_size`` 256, and
``Naive`` / ``Replay(mem_size=500)`` / ``EWC(ewc_lambda=100, mode="separate")``.
Evaluation: the whole test stream before training and after each experience (as
clft). No loggers beyond avalanche's default evaluator. Avalanche's EWC computes
its Fisher over the whole experience in minibatches (its own estimate), and its
class-IL head is not masked: both are as a user of avalanche gets them.

Usage: ``python benchmarks/speed_avalanche.py METHOD`` prints one JSON line like ``speed_hand.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_hand import load_tasks  # noqa: E402


class Tensors(torch.utils.data.TensorDataset):
    """(x, y) tensors with the ``targets`` list Avalanche's generators read (0.6 dropped its tensor helper)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__(x, y)
        self.targets = y.tolist()


def main(method: str) -> None:
    from avalanche.benchmarks import nc_benchmark  # avalanche 0.6 (benchmarks.generators before)
    from avalanche.training import EWC, Naive, Replay

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tasks = load_tasks(Path(os.environ["CLFT_DATA_DIR"]) / "mnist")
    train = Tensors(torch.cat([t[1] for t in tasks]), torch.cat([t[2] for t in tasks]))
    test = Tensors(torch.cat([t[3] for t in tasks]), torch.cat([t[4] for t in tasks]))
    bench = nc_benchmark(train, test, n_experiences=5, task_labels=False, fixed_class_order=list(range(10)))
    model = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 10))
    common = {"optimizer": torch.optim.Adam(model.parameters(), lr=1e-3), "criterion": nn.CrossEntropyLoss(),
              "train_mb_size": 128, "train_epochs": 1, "eval_mb_size": 256, "device": "cpu"}
    strategy = {"finetune": lambda: Naive(model=model, **common),
                "replay": lambda: Replay(model=model, mem_size=500, **common),
                "ewc": lambda: EWC(model=model, ewc_lambda=100.0, mode="separate", **common)}[method]()
    baseline = strategy.eval(bench.test_stream)
    seconds, acc = [], []
    for experience in bench.train_stream:
        started = time.perf_counter()
        strategy.train(experience)
        seconds.append(time.perf_counter() - started)
        metrics = strategy.eval(bench.test_stream)
        acc.append([float(v) for k, v in sorted(metrics.items()) if k.startswith("Top1_Acc_Exp/")])
    print(json.dumps({"train_seconds": seconds, "acc": acc, "baseline_acc": len(baseline)}))


if __name__ == "__main__":
    main(sys.argv[1])
