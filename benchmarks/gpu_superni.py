"""SuperNI order 1 with SmolLM2-135M-Instruct in bf16 on a GPU: results folder + log under ``--out``.

Usage (a script, not a test)::

    python benchmarks/gpu_superni.py --model PATH --data-dir DATA --out OUT [--train-size 500] [--test-size 50]
        [--epochs 1] [--strategies finetune,replay,o-lora,adapter-per-task] [--device auto] [--n-tasks 15]

``--model`` is a converted transformers folder of SmolLM2 (``python -m clft.backbones.packaged_llm
smollm2-135m-instruct --dtype bfloat16 --out DIR``) or the ``.gguf`` file itself (then converted once into
``OUT/model``; needs the ``gguf`` package). ``DATA`` holds ``superni_cl/``. Needs ``datasets`` and
``rouge-score`` besides torch/transformers/peft. Starts from ``experiments/superni-order1.yaml`` (LoRA r=8
on q/k/v/o, dtype auto: bf16 frozen weights on CUDA, fp32 LoRA, bf16 autocast) and overrides the sizes,
epochs, strategies and device from the options. Writes ``OUT/results/<scenario>/<strategy>/seed0.json``,
``OUT/table.md``, ``OUT/log.txt`` (everything printed) and ``OUT/timing.json`` (wall seconds, device).
Defaults are sized to finish in a few minutes on an H200 with one strategy; SAPT's full sizes are
``--train-size 1000 --test-size 100``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Tee:
    """Write to the terminal and a log file."""

    def __init__(self, stream, log) -> None:
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        if not self.log.closed:
            self.log.write(text)
            self.log.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
        if not self.log.closed:
            self.log.flush()

    def close(self) -> None:
        """The terminal stream stays open; the log is closed by its owner."""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="converted SmolLM2 folder or its .gguf file")
    parser.add_argument("--data-dir", default=os.environ.get("CLFT_DATA_DIR"), help="folder holding superni_cl/")
    parser.add_argument("--out", required=True)
    parser.add_argument("--order", default="1")
    parser.add_argument("--n-tasks", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--strategies", default="finetune", help="comma-separated: finetune,replay,o-lora,...")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args(argv)


def model_folder(path: Path, out: Path) -> Path:
    """``path`` itself, or for a .gguf file its converted copy under ``out/model`` (made once)."""
    if path.suffix != ".gguf":
        return path
    from clft.backbones.packaged_llm import convert

    target = out / "model"
    return target if (target / "config.json").is_file() else convert(path, target, "float32")


STRATEGY_BLOCKS = {
    "replay": {"name": "replay", "memory_size": 300},
    "o-lora": {"name": "o-lora", "r": 8, "lora_alpha": 16, "lam1": 0.5,
               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
}


def experiment(args: argparse.Namespace, model: Path) -> dict:
    from clft.config import load_yaml

    raw = load_yaml(str(ROOT / "experiments" / "superni-order1.yaml"))
    order = int(args.order) if args.order.isdigit() else args.order.split(",")
    raw["benchmark"].update(order=order, n_tasks=args.n_tasks, train_size=args.train_size,
                            test_size=args.test_size, max_new_tokens=args.max_new_tokens, data_dir=args.data_dir)
    raw["backbone"]["model"] = str(model)
    by_name = {(e if isinstance(e, str) else e["name"]): e for e in raw["compare"]}
    raw["compare"] = [by_name.get(n, STRATEGY_BLOCKS.get(n, n)) for n in args.strategies.split(",")]
    raw["train"].update(epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
                        lr=args.lr, device=args.device, threads=args.threads)
    raw["name"] = f"superni-order{args.order}-gpu" if args.order in ("1", "2") else "superni-custom-order-gpu"
    return raw


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = sys.stdout, sys.stderr
    with open(out / "log.txt", "a", encoding="utf-8") as log:
        sys.stdout, sys.stderr = Tee(saved[0], log), Tee(saved[1], log)
        try:
            return run(args, out)
        finally:
            sys.stdout, sys.stderr = saved


def run(args: argparse.Namespace, out: Path) -> int:
    import torch

    from clft.config import make_dataclass_instance
    from clft.config.experiment import ExperimentConfig
    from clft.results.tables import render_table
    from clft.sweep.run import run_experiment

    started = time.perf_counter()
    model = model_folder(Path(args.model), out)
    raw = experiment(args, model)
    print(json.dumps(raw, indent=1))
    config = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    paths = run_experiment(config, out / "results", progress=False, overwrite=True)
    wall = time.perf_counter() - started
    table = render_table(out / "results")
    (out / "table.md").write_text(table, encoding="utf-8")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    timing = {"wall_seconds": wall, "device": device, "torch": torch.__version__, "results": [str(p) for p in paths]}
    (out / "timing.json").write_text(json.dumps(timing, indent=1), encoding="utf-8")
    print(table)
    print(f"wall time {wall:.1f} s on {device}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
