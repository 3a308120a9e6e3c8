"""replay (ER, ``update: step``) on text-to-text backbones: rows of different lengths in the reservoir.

A tiny random Llama (``hf-causal-lm``, tests/llm_helpers.py) and a tiny random T5 (``hf-seq2seq``) on the
helper's instruction-tuning tasks: short prompts with one-word targets, long prompts, three-word targets.
Every stored row must read as the same row collated afresh in a batch as wide as the reservoir: LM labels
padded with -100 (never token 0), ids with the pad id, masks with 0, a causal LM's decoding prompt on the
left. So no padded position of a replayed row is a target, and a replayed batch's loss is the loss of the
same rows collated afresh.
"""

from __future__ import annotations

import pytest
import torch
from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

import clft.backbones  # noqa: F401  (registers the backbones)
import clft.benchmarks  # noqa: F401
from clft.backbones.hf_common import clear_prepared_cache
from clft.registry import backbones, benchmarks, strategies
from clft.testing import assert_same

# (task index, rows) per training batch, in the order they enter the reservoir: widths grow, then shrink
BATCHES = [(0, [0, 2]), (0, [3, 7]), (1, [0, 1]), (0, [4, 6])]  # sky/snow; coal/leaf; woof/meow; blood/sun


def t5_spec(tokenizer_dir, vocab_size: int) -> dict:
    return {"name": "hf-seq2seq", "tokenizer": str(tokenizer_dir),
            "model_config": {"model_type": "t5", "vocab_size": vocab_size, "d_model": 32, "d_ff": 64, "d_kv": 16,
                             "num_layers": 2, "num_heads": 2, "decoder_start_token_id": 0, "pad_token_id": 0,
                             "eos_token_id": 1, "dropout_rate": 0.0}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay-text")
    size = save_tokenizer(root / "tok")
    bench = benchmarks.build({"name": "instruction-tuning", "files": write_instruction_files(root / "data"),
                              "general_tasks": ["general"]})
    return {"hf-causal-lm": tiny_llama_backbone(root / "tok", size), "hf-seq2seq": t5_spec(root / "tok", size)}, bench


def build(setup, name):
    specs, bench = setup
    clear_prepared_cache()
    torch.manual_seed(0)
    stream = bench.tasks(0)
    backbone = backbones.build(specs[name], bench, stream)
    backbone.tokenizer.pad_token = "<unk>"  # pad id 2, not 0: padding with the pad id is told apart from zeros
    return backbone, stream


def fresh(backbone, stream, picks: list[tuple[int, int]]):
    """The (task, row) pairs collated afresh in one batch."""
    prepared = [backbone.prepare(task.train) for task in stream]
    columns = [prepared[task][row] for task, row in picks]
    return backbone.collate({key: [example[key] for example in columns] for key in columns[0]})


def fill(backbone, stream, replay) -> list[tuple[int, int]]:
    """Every batch of BATCHES through ``after_step`` (the reservoir is big enough to keep them all, in order)."""
    picks = []
    for task_index, rows in BATCHES:
        batch = fresh(backbone, stream, [(task_index, row) for row in rows])
        replay.after_step(backbone, batch, None, stream[task_index])
        picks += [(task_index, row) for row in rows]
    return picks


@pytest.mark.parametrize("name", ["hf-causal-lm", "hf-seq2seq"])
def test_replayed_rows_are_the_rows_collated_afresh(setup, name):
    backbone, stream = build(setup, name)
    replay = strategies.build({"name": "replay", "memory_size": 8, "replay_batch_size": 8})
    picks = fill(backbone, stream, replay)
    assert replay.memory.size == 8
    replayed, expected = replay.memory.sample(8), fresh(backbone, stream, picks)
    assert set(replayed) == set(expected)
    assert_same(replayed, expected)  # lm_labels -100, ids the pad id, masks 0, prompts left-padded
    widths = {len([t for t in labels if t != -100]) for labels in replayed["lm_labels"].tolist()}
    assert len(widths) > 1  # targets of different lengths did enter
    if name == "hf-causal-lm":  # the decoding prompt stays left-padded: its last token is the prompt's last
        assert (replayed["prompt_mask"][:, -1] == 1).all() and (replayed["prompt_mask"][:, 0] == 0).any()
        padded = replayed["attention_mask"] == 0
        assert padded.any() and (replayed["lm_labels"][padded] == -100).all()
        assert (replayed["input_ids"][padded] == backbone.tokenizer.pad_token_id).all()
    loss = replay.extra_loss(backbone, expected, None, stream[0])
    torch.testing.assert_close(loss, backbone.loss(expected, stream[0]))


@pytest.mark.parametrize("name", ["hf-causal-lm", "hf-seq2seq"])
def test_short_rows_replayed_after_long_ones_have_the_fresh_loss(setup, name):
    """The two shortest rows (sky, snow: one-word targets), stored first and widened by the longer rows
    that came after: the added padding is no target (-100), so their loss is that of the two rows
    collated afresh at their own width."""
    backbone, stream = build(setup, name)
    replay = strategies.build({"name": "replay", "memory_size": 8})
    picks = fill(backbone, stream, replay)
    replayed = {column: values[:2] for column, values in replay.memory.buffer.items()}
    chosen = fresh(backbone, stream, picks[:2])
    width = chosen["lm_labels"].shape[1]
    assert replayed["lm_labels"].shape[1] > width  # widened by the later rows
    assert torch.equal(replayed["lm_labels"][:, :width], chosen["lm_labels"])
    assert (replayed["lm_labels"][:, width:] == -100).all()
    with torch.no_grad():
        torch.testing.assert_close(backbone.loss(replayed, stream[0]), backbone.loss(chosen, stream[0]),
                                   rtol=1e-5, atol=1e-6)


def test_der_buffer_keeps_a_classifier_rows_as_collated_on_the_tokenizer_side():
    """hf-classifier pads on its tokenizer's side: with left padding, rows widened in DER's buffer stay
    left-padded (pad id, mask 0), the same tensors as the rows collated afresh in one batch."""
    from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK

    bench = benchmarks.build(TINY_TEXT_BENCHMARK)
    stream = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(TINY_TEXT_BACKBONE, bench, stream)
    backbone.tokenizer.padding_side = "left"
    backbone.tokenizer.pad_token = "[UNK]"  # a pad id other than 0
    der = strategies.build({"name": "der", "memory_size": 16})
    prepared = backbone.prepare(stream[0].train)[:12]
    # the synthetic texts have one length: cut row i to 3 + i % 6 tokens, so batches differ in width
    rows = {"input_ids": [ids[: 3 + i % 6] for i, ids in enumerate(prepared["input_ids"])],
            "label": prepared["label"], "task": prepared["task"]}
    batches = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]  # widths 5, 8, 5, 8
    for picked in batches:
        batch = backbone.collate({column: [values[i] for i in picked] for column, values in rows.items()})
        der.after_step(backbone, batch, backbone.forward(batch, stream[0]).detached(), stream[0])
    expected = backbone.collate(rows)
    stored = {column: values[:12] for column, values in der.memory.buffer.items() if column != "__logits__"}
    assert (expected["attention_mask"][:, 0] == 0).any() and (expected["attention_mask"][:, -1] == 1).all()
    assert_same(stored, expected)
