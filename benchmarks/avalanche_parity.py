"""Split-MNIST through clft (finetune / ewc / replay) and Avalanche (Naive / EWC / Replay): final accuracies.

Same stream (Avalanche's SplitMNIST, 5 experiences, classes in order 0..9, read by clft's
``avalanche`` benchmark), same model (an MLP 784-H-10 with the same initial weights), seed,
optimizer (SGD), learning rate, batch size and epochs. Prints the final average accuracy (ACC)
of each pair and the difference in points, per seed and as a mean over ``--seeds``. Needs
``clft[avalanche]`` and CLFT_DATA_DIR with mnist/.

    CLFT_DATA_DIR=../shared/data python benchmarks/avalanche_parity.py --seeds 0 1 2 3 4   # ~4 min on one core

Measured (2026-11-29, 2000 images per class, 1 epoch, SGD 0.05, batch 32, seeds 0-4): clft - Avalanche
= -0.0 ± 0.0 points (finetune/Naive), +0.1 ± 0.2 (EWC), +0.1 ± 1.4 (replay). With 500 per class the
replay pair varies by ±7 points from seed to seed (few steps per experience), so its mean says little.

Protocol choices aligned on the Avalanche side unless ``--avalanche-defaults``:

- clft's class-IL trains on the logits of the classes seen so far (unseen ones masked out of the
  softmax, in the loss and in EWC's Fisher); Avalanche's strategies use all 10 outputs. On the
  Avalanche side the model is wrapped in ``SeenClassesOnly`` (the same mask in every forward pass), so
  both minimise the same loss and estimate the same Fisher.
- Avalanche's EWC adds ``ewc_lambda · Σ F (θ − θ*)²``, clft's ``(lam / 2) · Σ F (θ − θ*)²``: clft runs with
  ``lam = 2 · --lam`` (both estimate F as the mean over the experience's mini-batches of the squared
  gradient of the batch-mean loss, ``fisher_batch_size`` = the batch size).
- clft's replay adds the memory batch's mean loss to the current batch's (``loss + extra_loss``);
  Avalanche's Replay averages over the concatenated batch, half that gradient. With plain SGD the two
  updates are equal when Avalanche's learning rate is doubled once the memory holds examples
  (``DoubleLrWithMemory``, from the second experience on).
- Avalanche's Replay keeps an experience-balanced buffer and draws one memory mini-batch of
  ``train_mb_size`` per step, the buffer updated after each experience: clft's replay runs with
  ``update: task-end``, ``policy: task-balanced`` and ``replay_batch_size`` = the batch size.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from clft.config.experiment import ExperimentConfig, TrainConfig
from clft.engine.runner import execute
from clft.sweep.build import build_run
from clft.sweep.plan import plan_runs

ORDER = list(range(10))


def clft_final_acc(spec: dict, args) -> tuple[float, torch.nn.Module]:
    """(final ACC, the model's initial weights) of one clft run."""
    cfg = ExperimentConfig(
        name="parity", seeds=[args.seed], backbone={"name": "mlp", "hidden": [args.hidden]},
        benchmark={"name": "avalanche", "benchmark": "SplitMNIST", "train_per_class": args.train_per_class,
                   "kwargs": {"n_experiences": 5, "fixed_class_order": ORDER}},
        strategies=[spec], train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                             optimizer="sgd", threads=1, bucket_by_length=False))
    run = build_run(cfg, plan_runs(cfg)[0], None, progress=False)
    initial = copy.deepcopy(run.backbone.model)
    execute(run)
    return float(np.mean(run.state.acc[-1])), initial


class SeenClassesOnly(torch.nn.Module):
    """The model with the logits of classes not yet seen masked out (clft's class-IL label space), in every
    forward pass: training loss, EWC's Fisher and evaluation alike."""

    def __init__(self, model: torch.nn.Module, n_classes: int = 10) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("unseen", torch.ones(n_classes, dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).masked_fill(self.unseen, float("-inf"))


def mark_seen_plugin(masked: SeenClassesOnly):
    """An Avalanche plugin that unmasks an experience's classes before training on it."""
    from avalanche.core import SupervisedPlugin

    class MarkSeen(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs) -> None:
            masked.unseen[list(strategy.experience.classes_in_this_experience)] = False

    return MarkSeen()


def double_lr_with_memory_plugin(lr: float):
    """An Avalanche plugin: learning rate 2·lr from the second experience on (replay's loss convention)."""
    from avalanche.core import SupervisedPlugin

    class DoubleLrWithMemory(SupervisedPlugin):
        def before_training_epoch(self, strategy, **kwargs) -> None:
            if strategy.clock.train_exp_counter > 0:
                for group in strategy.optimizer.param_groups:
                    group["lr"] = 2 * lr

    return DoubleLrWithMemory()


def avalanche_final_acc(name: str, model: torch.nn.Module, args) -> float:
    from avalanche.benchmarks.classic import SplitMNIST
    from avalanche.training import EWC, Naive, Replay
    from avalanche.training.plugins import EvaluationPlugin

    from clft.benchmarks.avalanche_stream import AvalancheStream, _dataset_root

    model = torch.nn.Sequential(torch.nn.Flatten(), model)  # Avalanche feeds [B, 1, 28, 28] images
    plugins = []
    if not args.avalanche_defaults:
        model = SeenClassesOnly(model)
        plugins.append(mark_seen_plugin(model))
        if name == "replay":
            plugins.append(double_lr_with_memory_plugin(args.lr))
    root = _dataset_root(AvalancheStream.Config(benchmark="SplitMNIST"))
    stream = SplitMNIST(5, seed=args.seed, fixed_class_order=ORDER, dataset_root=str(root),
                        train_transform=None, eval_transform=None)
    common = {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=args.lr),
              "criterion": torch.nn.CrossEntropyLoss(), "train_mb_size": args.batch_size,
              "train_epochs": args.epochs, "eval_mb_size": 512, "evaluator": EvaluationPlugin(),
              "plugins": plugins}
    strategy = {"naive": lambda: Naive(**common), "ewc": lambda: EWC(ewc_lambda=args.lam, **common),
                "replay": lambda: Replay(mem_size=args.memory, **common)}[name]()
    torch.manual_seed(args.seed)
    for experience in stream.train_stream:
        experience.dataset = _subsample(experience.dataset, args.train_per_class, args.seed)
        strategy.train(experience)
    return _accuracy(model, stream.test_stream)


def _subsample(dataset, per_class, seed):
    if per_class is None:
        return dataset
    from clft.benchmarks.text_common import subsample

    labels = np.asarray([int(y) for y in dataset.targets])
    rows, _ = subsample((list(range(len(labels))), labels), per_class, seed)
    return dataset.subset(rows)


@torch.inference_mode()
def _accuracy(model, test_stream) -> float:
    model.eval()
    accs = []
    for experience in test_stream:
        loader = torch.utils.data.DataLoader(experience.dataset, batch_size=1024)
        correct = total = 0
        for x, y, *_ in loader:
            correct += int((model(x).argmax(-1) == y).sum())
            total += len(y)
        accs.append(correct / total)
    return float(np.mean(accs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--avalanche-defaults", action="store_true",
                        help="Avalanche unmasked and clft's replay with its default policy (the protocols differ)")
    for flag, kind, default in [("--hidden", int, 100), ("--epochs", int, 1),
                                ("--batch-size", int, 32), ("--lr", float, 0.05), ("--lam", float, 100.0),
                                ("--memory", int, 500), ("--train-per-class", int, 2000)]:
        parser.add_argument(flag, type=kind, default=default)
    args = parser.parse_args()
    torch.set_num_threads(1)
    replay = {"name": "replay", "memory_size": args.memory, "update": "task-end"}  # as Avalanche's, per experience
    if not args.avalanche_defaults:
        replay.update(policy="task-balanced", replay_batch_size=args.batch_size)
    ewc = {"name": "ewc", "lam": 2 * args.lam, "fisher_batch_size": args.batch_size}
    pairs = [({"name": "finetune"}, "naive"), (ewc, "ewc"), (replay, "replay")]
    print(f"{'seed':<5} {'clft':<10} {'ACC':>6}   {'avalanche':<10} {'ACC':>6}   diff (points)")
    diffs: dict[str, list[float]] = {}
    for seed in args.seeds:
        args.seed = seed
        for spec, name in pairs:
            ours, initial = clft_final_acc(spec, args)
            theirs = avalanche_final_acc(name, initial, args)
            diff = 100 * (ours - theirs)
            diffs.setdefault(spec["name"], []).append(diff)
            print(f"{seed:<5} {spec['name']:<10} {ours:6.3f}   {name:<10} {theirs:6.3f}   {diff:+.1f}")
    for method, values in diffs.items():
        print(f"mean difference {method:<10} {np.mean(values):+.1f} points over {len(values)} seeds "
              f"(std {np.std(values, ddof=1) if len(values) > 1 else 0.0:.1f})")


if __name__ == "__main__":
    main()
