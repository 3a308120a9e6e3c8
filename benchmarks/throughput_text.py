"""Training throughput of MiniLM + LoRA on CLINC150: dynamic padding + length bucketing vs. padding to 128.

Usage (a script, not a test; reads ``$CLFT_DATA_DIR/clinc150/data_full.json``, in-scope train)::

    CLFT_DATA_DIR=../shared/data .venv/bin/python benchmarks/throughput_text.py [--steps 20] [--batch-size 32]

Both variants build the same ``hf-classifier`` (all-MiniLM-L6-v2, LoRA r=8 on
query/value, one head over the 150 intents), tokenise once (``prepare``, timed
apart), run ``--warmup`` untimed steps, then time ``--steps`` AdamW steps of
``--batch-size`` examples (collate + forward + backward + step) with batches from
``clft.data.sampling.train_batches``. The variants take turns step by step, so a
change of machine load during the run affects all of them alike:

- ``padded-128``: shuffled batches, every batch padded to ``max_length`` = 128;
- ``dynamic``: the same shuffled batches, each padded to its longest example;
- ``bucketed``: sort-within-chunks length bucketing, each batch padded to its longest.

The tokenised dataset is cached after the first variant (``prepare`` ~0 s later).

Prints examples/s of each, the mean padded batch width, and the speed-up ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import numpy as np
import torch

import clft.backbones  # noqa: F401  (registers hf-classifier)
from clft.data import data_dir
from clft.data.sampling import train_batches
from clft.registry import backbones
from clft.types import Benchmark, LabelSpace, Task

VARIANTS = (("padded-128", "max_length", False), ("dynamic", "longest", False), ("bucketed", "longest", True))
LORA = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["query", "value"]}


class Clinc150Train(Benchmark):
    """One task holding CLINC150's in-scope training queries (label ids: sorted intents)."""

    name = "clinc150-train"

    def __init__(self, path: Path) -> None:
        pairs = json.loads(path.read_text(encoding="utf-8"))["train"]
        self.scenario = "class-il"
        self.label_names = sorted({intent for _, intent in pairs})
        ids = {name: i for i, name in enumerate(self.label_names)}
        labels = [ids[intent] for _, intent in pairs]
        texts = [text for text, _ in pairs]
        data = datasets.Dataset.from_dict({"text": texts, "label": labels, "task": [0] * len(pairs)})
        self.task = Task(0, "all", tuple(range(len(self.label_names))), data, data)


class Variant:
    """One configuration: its backbone, prepared data, batches, optimizer and timings."""

    def __init__(self, benchmark: Clinc150Train, padding: str, bucket: bool, batch_size: int) -> None:
        torch.manual_seed(0)
        spec = {"name": "hf-classifier", "model": "all-MiniLM-L6-v2", "peft": LORA, "max_length": 128,
                "padding": padding}
        self.task = benchmark.task
        self.backbone = backbones.build(spec, benchmark, [self.task]).to("cpu")
        self.backbone.label_space = LabelSpace("class-il", len(benchmark.label_names), {0: self.task.classes})
        started = time.perf_counter()
        self.data = self.backbone.prepare(self.task.train)
        self.prepare_s = time.perf_counter() - started
        lengths = self.backbone.lengths(self.data)
        self.batches = train_batches(len(self.data), batch_size, np.random.default_rng(0), lengths, bucket)
        self.optimizer = torch.optim.AdamW(self.backbone.trainable_parameters(), lr=5e-4)
        self.backbone.model.train()
        self.seconds, self.examples, self.widths = 0.0, 0, []

    def step(self, i: int, timed: bool) -> None:
        """Collate + forward + backward + optimizer step on batch ``i``; timed when ``timed``."""
        started = time.perf_counter()
        batch = self.backbone.collate(self.data[self.batches[i]])
        loss = self.backbone.loss(batch, self.task)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if timed:
            self.seconds += time.perf_counter() - started
            self.examples += len(self.batches[i])
            self.widths.append(batch["input_ids"].shape[1])

    def summary(self) -> str:
        return (f"{self.examples / self.seconds:8.1f} examples/s  ({self.seconds:.2f} s, "
                f"mean batch width {np.mean(self.widths):.1f} tokens, prepare {self.prepare_s:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = data_dir()
    path = root / "clinc150" / "data_full.json" if root else None
    if path is None or not path.is_file():
        raise SystemExit("set CLFT_DATA_DIR to the folder holding clinc150/data_full.json")
    benchmark = Clinc150Train(path)
    variants = {name: Variant(benchmark, padding, bucket, args.batch_size) for name, padding, bucket in VARIANTS}
    for i in range(args.warmup + args.steps):  # interleaved, so load changes hit every variant alike
        for variant in variants.values():
            variant.step(i, timed=i >= args.warmup)
    print(f"CLINC150 train ({len(benchmark.task.train)} queries), MiniLM-L6 + LoRA r=8 (query, value), "
          f"{args.steps} steps x batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    for name, variant in variants.items():
        print(f"  {name:>10}: {variant.summary()}")
    base = variants["padded-128"]
    speed = {name: v.examples / v.seconds / (base.examples / base.seconds) for name, v in variants.items()}
    print(f"  speed-up bucketed / padded-128: {speed['bucketed']:.2f}x (dynamic / padded-128: {speed['dynamic']:.2f}x)")


if __name__ == "__main__":
    main()
