"""The hand-written PyTorch loop that ``benchmarks/speed.py`` times clft against.

What a researcher would write for class-IL Split-MNIST without a framework: IDX
files read with numpy, tensors sliced per batch, an MLP 784-400-400-10, Adam 1e-3
rebuilt per task, batch 128, 1 epoch per task, logits of classes not yet seen
masked out (class-IL, as clft's label space), and the same evaluations as clft:
every test set before training and after every task (T(T+1) passes, batches of
256 under ``inference_mode``). Methods, matching clft's configs in ``speed.py``:

- ``finetune``: the plain loop;
- ``replay``: + the loss on a random batch of 128 from a 500-example reservoir
  buffer (Algorithm R), updated after each task;
- ``ewc``: + (λ/2) Σ F (θ − θ*)², λ = 100, one (Fisher, anchor) per past task, the
  Fisher from per-example gradients of 1,000 random training examples by
  ``torch.func.vmap(grad)``.

Usage: ``python benchmarks/speed_hand.py METHOD`` prints one JSON line:
``{"train_seconds": [...], "acc": [[...]], "baseline_acc": [...]}``.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BATCH, EVAL_BATCH, LR, MEMORY, FISHER_SAMPLES, LAM = 128, 256, 1e-3, 500, 1000, 100.0
NEG = torch.finfo(torch.float32).min / 2


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_tasks(root: Path) -> list[tuple]:
    def split(prefix: str):
        x = read_idx(root / f"{prefix}-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
        labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return torch.from_numpy(x), torch.from_numpy(labels)

    (xtr, ytr), (xte, yte) = split("train"), split("t10k")
    tasks = []
    for pair in ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)):
        tr, te = (ytr == pair[0]) | (ytr == pair[1]), (yte == pair[0]) | (yte == pair[1])
        tasks.append((pair, xtr[tr], ytr[tr], xte[te], yte[te]))
    return tasks


def masked_logits(model: nn.Module, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return model(x).masked_fill(~allowed, NEG)


@torch.inference_mode()
def evaluate(model: nn.Module, tasks: list[tuple], allowed: torch.Tensor) -> list[float]:
    model.eval()
    accs = []
    for _, _, _, x, y in tasks:
        correct = sum(int((masked_logits(model, x[i:i + EVAL_BATCH], allowed).argmax(1) == y[i:i + EVAL_BATCH]).sum())
                      for i in range(0, len(y), EVAL_BATCH))
        accs.append(correct / len(y))
    model.train()
    return accs


def fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor, allowed: torch.Tensor, rng) -> dict:
    rows = torch.from_numpy(np.sort(rng.choice(len(y), size=min(FISHER_SAMPLES, len(y)), replace=False)))
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(p, xi, yi):
        logits = torch.func.functional_call(model, p, (xi[None],)).masked_fill(~allowed, NEG)
        return F.cross_entropy(logits, yi[None])

    model.eval()
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(0, len(rows), 128):
        grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x[rows[i:i + 128]],
                                                                            y[rows[i:i + 128]])
        for n, g in grads.items():
            total[n] += g.pow(2).sum(0)
    model.train()
    return {n: t / len(rows) for n, t in total.items()}


def reservoir(buffer: list, n_seen: int, x: torch.Tensor, y: torch.Tensor, rng) -> int:
    """Algorithm R over the task's examples, draws vectorised."""
    ks = np.arange(n_seen, n_seen + len(y))
    draws = rng.integers(0, ks + 1)
    for i in np.flatnonzero((ks < MEMORY) | (draws < MEMORY)).tolist():
        if len(buffer) < MEMORY:
            buffer.append((x[i], y[i]))
        else:
            buffer[int(draws[i])] = (x[i], y[i])
    return n_seen + len(y)


def main(method: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tasks = load_tasks(Path(os.environ["CLFT_DATA_DIR"]) / "mnist")
    model = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 10))
    allowed = torch.ones(10, dtype=torch.bool)
    baseline = evaluate(model, tasks, allowed)
    allowed = torch.zeros(10, dtype=torch.bool)
    acc, seconds, buffer, n_seen, terms = [], [], [], 0, []
    for pair, x, y, _, _ in tasks:
        started = time.perf_counter()
        allowed[list(pair)] = True
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        memory = (torch.stack([b[0] for b in buffer]), torch.stack([b[1] for b in buffer])) if buffer else None
        for idx in torch.from_numpy(rng.permutation(len(y))).split(BATCH):
            loss = F.cross_entropy(masked_logits(model, x[idx], allowed), y[idx])
            if method == "replay" and memory is not None:
                pick = torch.from_numpy(np.sort(rng.choice(len(memory[1]), size=BATCH, replace=False)))
                loss = loss + F.cross_entropy(masked_logits(model, memory[0][pick], allowed), memory[1][pick])
            if method == "ewc" and terms:
                params = dict(model.named_parameters())
                loss = loss + LAM / 2 * sum((f[n] * (params[n] - a[n]).pow(2)).sum() for f, a in terms for n in f)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if method == "ewc":
            anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
            terms.append((fisher(model, x, y, allowed, rng), anchor))
        if method == "replay":
            n_seen = reservoir(buffer, n_seen, x, y, rng)
        seconds.append(time.perf_counter() - started)
        acc.append(evaluate(model, tasks, allowed))
    print(json.dumps({"train_seconds": seconds, "acc": acc, "baseline_acc": baseline}))


if __name__ == "__main__":
    main(sys.argv[1])
