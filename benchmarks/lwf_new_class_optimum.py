"""Can a new class ever win under van de Ven & Tolias's class-IL LwF loss? The per-example optimum, over free logits.

At task t (1-based) their loss on a new-task example of class y is

    L(z) = (1/t)·CE(z, y) + (1 − 1/t)·w·KD(z),   KD(z) = −Σ_i target_i · log softmax(z / T)_i,

with the target softmax(z_old[old] / T) on the 2(t − 1) old classes and 0 on the 2 new ones, and w = T² in
their code (clft ``lwf-vandeven`` with λ = 1; λ scales w by λ). This script minimises L over the 2t logits
directly (no network: the best any network could do on that example) and prints the new class's probability
and whether it is the arg max, for w = T² and smaller weights. Used in
``experiments/hsu2018-lwf-vandeven-no-t2.yaml``: with w = T² = 4 the new class never wins, so the tasks after
the first are not learned.

    python benchmarks/lwf_new_class_optimum.py [--old-target 0.7]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

TEMPERATURE = 2.0


def optimum(t: int, old_target: float, weight: float, steps: int = 3000) -> torch.Tensor:
    """softmax(z*) for z* = argmin L(z) at task t; the target puts ``old_target`` on old class 0, the rest on 1."""
    logits = torch.zeros(2 * t, requires_grad=True)
    target = torch.zeros(2 * t)
    target[0], target[1] = old_target, 1 - old_target
    label = torch.tensor([2 * t - 2])  # the first class of the new task
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        distillation = -(target * F.log_softmax(logits / TEMPERATURE, dim=0)).sum()
        loss = F.cross_entropy(logits[None], label) / t + (1 - 1 / t) * weight * distillation
        loss.backward()
        optimizer.step()
    return F.softmax(logits.detach(), dim=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-target", type=float, default=0.7, help="the old model's probability of old class 0")
    args = parser.parse_args()
    print("| KD weight w | t = 2: p(new), wins | t = 3 | t = 5 |\n|---|---|---|---|")
    for weight in (TEMPERATURE**2, 1.0, 0.5):
        cells = []
        for t in (2, 3, 5):
            probabilities = optimum(t, args.old_target, weight)
            new = 2 * t - 2
            cells.append(f"{probabilities[new]:.2f}, {'yes' if int(probabilities.argmax()) == new else 'no'}")
        print(f"| {weight:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
