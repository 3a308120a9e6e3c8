"""EWC's Fisher and MAS's Ω (vmap of grad, nn.Linear pieces) equal the per-example loop (issue 10),
also on a causal LM, where vmap once failed on transformers' mask check (issue 23)."""

import warnings

import pytest
import torch
from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

from clft.registry import backbones, benchmarks, strategies
from clft.strategies import _importance as importance
from clft.strategies._importance import per_example_mean
from clft.strategies._text import TINY_TEXT_BENCHMARK
from clft.types import LabelSpace

MINILM_LORA = {"name": "hf-classifier", "model": "all-MiniLM-L6-v2", "max_length": 32,
               "peft": {"peft_type": "LORA", "r": 8, "target_modules": ["query", "value"]}}
STREAMS = {
    "mlp": ({"name": "split-digits", "n_tasks": 5}, {"name": "mlp", "hidden": [32, 32]}),
    "minilm-lora": ({**TINY_TEXT_BENCHMARK, "n_tasks": 2}, MINILM_LORA),
}
TEXT2TEXT_LORA = {"causal-lm-lora": {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4,
                                      "target_modules": ["q_proj", "v_proj"]},
                  "seq2seq-lora": {"peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "r": 4,
                                   "target_modules": ["q", "v"]}}
TINY_T5 = {"model_type": "t5", "d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 2, "num_heads": 2,
           "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1}
NO_FALLBACK = "per-example"  # the start of every warning that another way (vmap, the loop) is taken


def text2text_stream(kind: str, folder) -> tuple[dict, dict]:
    """A tiny random Llama (or T5) + LoRA on two instruction tasks of varying lengths (padded in a chunk)."""
    size = save_tokenizer(folder / "tok", chat=True)
    bench = {"name": "instruction-tuning", "files": write_instruction_files(folder / "data")}
    backbone = tiny_llama_backbone(folder / "tok", size, peft=TEXT2TEXT_LORA[kind])
    if kind == "seq2seq-lora":
        backbone.update(name="hf-seq2seq", model_config={**TINY_T5, "vocab_size": size})
    return bench, backbone


def trained_backbone(kind: str, folder=None):
    """The backbone after a few SGD steps on task 0 (so gradients are not those of the init)."""
    bench_spec, backbone_spec = STREAMS[kind] if kind in STREAMS else text2text_stream(kind, folder)
    bench = benchmarks.build(dict(bench_spec))
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(dict(backbone_spec), bench, tasks)
    backbone.label_space = LabelSpace("class-il", len(bench.label_names), {t.id: t.classes for t in tasks})
    backbone.label_space.mark_seen(tasks[0])
    data = backbone.prepare(tasks[0].train)
    optimizer = torch.optim.SGD(backbone.trainable_parameters(), lr=0.1)
    for start in (0, 8, 16):
        optimizer.zero_grad()
        first = start % len(data)  # the causal LM's tasks have 8 examples
        backbone.loss(backbone.collate(data[first : first + 8]), tasks[0]).backward()
        optimizer.step()
    return backbone, tasks[0]


@pytest.mark.parametrize("kind", sorted(STREAMS))
@pytest.mark.parametrize("spec, method", [({"name": "ewc", "fisher_samples": 40}, "fisher"),
                                          ({"name": "mas", "samples": 40}, "sensitivity")])
@pytest.mark.parametrize("how", ["linear", "vmap"])
def test_vectorised_importance_equals_the_per_example_loop(kind, spec, method, how):
    backbone, task = trained_backbone(kind)
    strategy = strategies.build(spec)
    strategy.before_task(backbone, task, [task])
    state = strategy.rng.bit_generator.state
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=NO_FALLBACK)  # no fallback to another way
        fast = getattr(strategy, method)(backbone, task, how=how)
    strategy.rng.bit_generator.state = state  # the same sample of rows
    slow = getattr(strategy, method)(backbone, task, how="loop")
    assert sorted(fast) == sorted(slow) == sorted(n for n, p in backbone.model.named_parameters() if p.requires_grad)
    assert max(float(v.abs().max()) for v in slow.values()) > 1e-4  # not all zeros
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("how", ["linear", "vmap"])
@pytest.mark.parametrize("kind", sorted(TEXT2TEXT_LORA))
def test_text2text_fisher_is_vectorised_and_equals_the_per_example_loop(kind, how, tmp_path):
    backbone, task = trained_backbone(kind, tmp_path)
    data = backbone.prepare(task.train)
    assert len(set(backbone.lengths(data))) > 1  # a chunk pads: the mask matters
    strategy = strategies.build({"name": "ewc"})
    strategy.before_task(backbone, task, [task])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=NO_FALLBACK)  # vmap fell back to the loop before issue 23
        fast = strategy.fisher(backbone, task, how=how)
    slow = strategy.fisher(backbone, task, how="loop")
    assert sorted(fast) == sorted(slow) and all("lora_" in name for name in slow)
    assert max(float(v.abs().max()) for v in slow.values()) > 1e-4
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("kind", sorted(TEXT2TEXT_LORA))
def test_text2text_output_sensitivity_is_vectorised_and_equals_the_per_example_loop(kind, tmp_path):
    """MAS's reduction (|gradient|) of a label-free output norm: the LM's logits at the target positions
    (``mas`` itself needs ``backbone.logits``, which the text-to-text backbones do not have)."""
    backbone, task = trained_backbone(kind, tmp_path)
    data = backbone.prepare(task.train)
    shift = int(kind == "causal-lm-lora")

    def squared_norm(batch):  # mean over the batch of ‖LM logits at the target positions‖²
        lm_logits = backbone.forward(batch, task).extra["lm_logits"]
        real = (batch["lm_labels"][:, shift:] != -100).unsqueeze(-1)
        return (lm_logits.float().pow(2) * real).sum(dim=(1, 2)).mean()

    rows = list(range(len(data)))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=NO_FALLBACK)
        fast = per_example_mean(backbone, data, rows, squared_norm, "abs", how="vmap")
    slow = per_example_mean(backbone, data, rows, squared_norm, "abs", how="loop")
    assert max(float(v.abs().max()) for v in slow.values()) > 1e-4
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-5, atol=1e-5, msg=name)


def test_sequence_chunks_are_bounded_by_padded_tokens(monkeypatch):
    monkeypatch.setattr(importance, "SEQUENCE_TOKENS", 512)
    lengths = [4, 100, 300, 5, 600, 200]
    rows = sorted(range(len(lengths)), key=lengths.__getitem__)  # 4 5 100 200 300 600
    assert importance.token_bounded(64, rows, 0, lengths) == 3  # 3 x 100 <= 512 < 4 x 200
    assert importance.token_bounded(2, rows, 0, lengths) == 2  # the caller's limit
    assert importance.token_bounded(64, rows, 3, lengths) == 1  # one, however long
    assert importance.token_bounded(64, rows, 5, lengths) == 1  # the last row
    assert importance.token_bounded(64, rows, 0, None) == 6  # feature vectors: no token bound


def test_vmap_chunks_of_a_causal_lm_keep_within_the_token_budget(monkeypatch, tmp_path):
    backbone, task = trained_backbone("causal-lm-lora", tmp_path)
    lengths = backbone.lengths(backbone.prepare(task.train))
    budget = 2 * max(lengths)  # two of the longest, more of the shortest
    monkeypatch.setattr(importance, "SEQUENCE_TOKENS", budget)
    chunks = []
    vmapped_sum = importance._vmapped_sum
    monkeypatch.setattr(importance, "_vmapped_sum", lambda call, params, batch, reduce: (
        chunks.append(batch["input_ids"].shape[0]), vmapped_sum(call, params, batch, reduce))[1])
    strategy = strategies.build({"name": "ewc"})
    strategy.before_task(backbone, task, [task])
    strategy.fisher(backbone, task, how="vmap")
    ordered = sorted(lengths)
    assert sum(chunks) == len(lengths) and len(chunks) > 1
    starts = [sum(chunks[:i]) for i in range(len(chunks))]
    assert all(n * ordered[start + n - 1] <= budget for n, start in zip(chunks, starts))
