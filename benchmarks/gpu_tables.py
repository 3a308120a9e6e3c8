"""On a GPU: the lfpt5-fewshot table and SuperNI order 1 on SmolLM2-135M-Instruct in bf16, with throughput and MFU.

One prepared script for a lent GPU machine (issue 23, section 4). Three stages, each a subprocess with its own
time limit, run in this order; a stage that fails or runs out of time is recorded and the next one still runs:

1. ``throughput``: ``benchmarks/gpu_check.py --only causal`` with the real SmolLM2 (one epoch of LoRA r 8 on
   CLINC150 in bf16 autocast): training tokens/s and MFU (see ``mfu``).
2. ``lfpt5``: ``clft run`` of ``lfpt5-fewshot-smollm2`` and ``lfpt5-fewshot-smollm2-isolation`` (8 rows x 3
   seeds) at full test data (100 per class, the published test sets) in bf16: ``backbone.dtype=auto`` (frozen
   weights bfloat16 on CUDA, LoRA float32), ``train.mixed_precision=bf16``, several runs at once on the GPU
   (``--jobs``); then ``clft table --ci`` (``table.md``) and
   ``clft table --reference`` (``reference.md``: ours beside the papers' T5-large numbers once ``published:`` has them).
3. ``superni``: ``benchmarks/gpu_superni.py`` on order 1, 15 tasks at SAPT's sizes (1000 train, 100 test per
   task), the strategies given by ``--superni-strategies``.

Usage on the GPU machine (the model folder made here and carried, or the .gguf converted there)::

    python -m clft.backbones.packaged_llm smollm2-135m-instruct --dtype bfloat16 --out .gpu-carry/smollm2
    python benchmarks/gpu_tables.py --model .gpu-carry/smollm2 --data-dir DATA --out OUT [--budget 540]

Writes ``OUT/summary.json`` (per stage: command, exit status, wall seconds; the throughput and MFU) and
``OUT/lfpt5/table.md``, ``OUT/superni/table.md``; prints the tables and the summary. ``--dry-run`` prints the
commands only. Stage limits: ``--budget`` seconds in all, split 10% / 55% / 35%; time a stage leaves
unused passes to the next.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
"""Dense bf16 tensor-core peak per GPU (vendor data sheets, without sparsity), by the name's model part."""

LFPT5_PRESETS = ("lfpt5-fewshot-smollm2", "lfpt5-fewshot-smollm2-isolation")
BF16_OVERRIDES = ("backbone.dtype=auto", "train.mixed_precision=bf16", "train.device=cuda", "train.threads=null",
                  "benchmark.test_per_class=null", "train.eval_batch_size=128")
STAGE_SHARES = {"throughput": 0.10, "lfpt5": 0.55, "superni": 0.35}


def mfu(tokens_per_s: float, n_params: int, device_name: str) -> float | None:
    """Model FLOPs utilisation of PEFT training: tokens/s x 4 N / peak, or None for an unknown GPU.

    4 N FLOPs per token: 2 N in the forward pass and 2 N for the gradients of the activations in the backward
    pass; the frozen weights get no gradient (the 2 N of full fine-tuning's weight gradients are absent; LoRA's
    own are negligible). N counts every weight used in a matrix product (the tied embedding once, as the LM
    head); attention's score products are left out, as in Kaplan et al.'s 6 N convention.
    """
    peak = next((flops for model, flops in PEAK_BF16_FLOPS.items() if model in device_name), None)
    return None if peak is None else tokens_per_s * 4 * n_params / peak


def stage_commands(args: argparse.Namespace) -> dict[str, list[list[str]]]:
    """Stage name -> the commands it runs, in order."""
    out, python, clft = Path(args.out), sys.executable, [sys.executable, "-m", "clft"]
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    lfpt5_out = str(out / "lfpt5")
    overrides = [*BF16_OVERRIDES, f"backbone.model={args.model}"]
    return {
        "throughput": [[python, str(ROOT / "benchmarks" / "gpu_check.py"), "--only", "causal",
                        "--causal-model-dir", args.model, *data, "--out", str(out / "throughput.json")]],
        "lfpt5": [*([*clft, "run", preset, "--out", lfpt5_out, "--quiet", "--no-plots", "--jobs", str(args.jobs),
                     *overrides] for preset in LFPT5_PRESETS),
                  [*clft, "table", lfpt5_out, "--ci", "--output", f"{lfpt5_out}/table.md"],
                  [*clft, "table", lfpt5_out, "--reference", "--output", f"{lfpt5_out}/reference.md"]],
        "superni": [[python, str(ROOT / "benchmarks" / "gpu_superni.py"), "--model", args.model, *data,
                     "--out", str(out / "superni"), "--train-size", "1000", "--test-size", "100",
                     "--strategies", args.superni_strategies, "--eval-batch-size", "128"]],
    }


def run_stage(commands: list[list[str]], seconds: float, log) -> dict:
    """Run the commands in turn until one fails or ``seconds`` run out; exit status and wall time."""
    started, status = time.perf_counter(), 0
    for command in commands:
        left = seconds - (time.perf_counter() - started)
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        try:
            status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=max(left, 1)).returncode
        except subprocess.TimeoutExpired:
            status = "timeout"
        if status != 0:
            break
    return {"status": status, "wall_seconds": round(time.perf_counter() - started, 1)}


def throughput_summary(path: Path) -> dict:
    """Tokens/s, examples/s and MFU of the causal check (empty when it wrote nothing)."""
    if not path.is_file():
        return {}
    report = json.loads(path.read_text(encoding="utf-8"))
    causal = report.get("causal", {})
    n_params = causal.get("total_params")
    tokens = causal.get("tokens_per_s")
    value = mfu(tokens, n_params, report["device"]) if tokens and n_params else None
    return {"device": report["device"], "tokens_per_s": tokens, "examples_per_s": causal.get("examples_per_s"),
            "params": n_params, "mfu": None if value is None else round(value, 4)}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a converted SmolLM2-135M-Instruct folder")
    parser.add_argument("--data-dir", default=os.environ.get("CLFT_DATA_DIR"), help="the shared data folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all stages together")
    parser.add_argument("--jobs", type=int, default=6, help="lfpt5 runs at once on the one GPU")
    parser.add_argument("--superni-strategies", default="finetune,o-lora")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    commands = stage_commands(args)
    if args.dry_run:
        for stage, lines in commands.items():
            print("\n".join(f"[{stage}] {' '.join(line)}" for line in lines))
        return {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env_data = {"CLFT_DATA_DIR": args.data_dir} if args.data_dir else {}
    os.environ.update({"HF_HUB_OFFLINE": "1", **env_data})
    summary, started, carried = {"budget_seconds": args.budget}, time.perf_counter(), 0.0
    with open(out / "log.txt", "a", encoding="utf-8") as log:
        for stage, share in STAGE_SHARES.items():
            limit = share * args.budget + carried  # a stage's share plus what the earlier ones left unused
            summary[stage] = {"commands": [" ".join(c) for c in commands[stage]],
                              **run_stage(commands[stage], limit, log)}
            carried = max(limit - summary[stage]["wall_seconds"], 0.0)
    summary["throughput"].update(throughput_summary(out / "throughput.json"))
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for table in (out / "lfpt5" / "table.md", out / "superni" / "table.md"):
        print(table.read_text(encoding="utf-8") if table.is_file() else f"{table}: not written")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
