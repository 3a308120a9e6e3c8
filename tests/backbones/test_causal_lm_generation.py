"""hf-causal-lm on generation tasks, with a tiny random Llama built from a config (offline)."""

from __future__ import annotations

import pytest
import torch
from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

import clft.backbones  # noqa: F401  (registers the backbones)
import clft.benchmarks  # noqa: F401
from clft.backbones.hf_common import clear_prepared_cache
from clft.registry import backbones, benchmarks


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    sizes = {"plain": save_tokenizer(root / "plain"), "chat": save_tokenizer(root / "chat", chat=True)}
    files = write_instruction_files(root / "data")
    bench = benchmarks.build({"name": "instruction-tuning", "files": files, "general_tasks": ["general"]})
    return root, sizes, bench, bench.tasks(0)


def build(setup, chat: bool = False, **options):
    root, sizes, bench, stream = setup
    clear_prepared_cache()
    torch.manual_seed(0)
    kind = "chat" if chat else "plain"
    spec = tiny_llama_backbone(root / kind, sizes[kind], **options)
    return backbones.build(spec, bench, stream), stream


def test_loss_is_on_target_tokens_only(setup):
    backbone, stream = build(setup)
    task = stream[1]
    batch = backbone.collate(backbone.prepare(task.train)[:4])
    labels, ids = batch["lm_labels"], batch["input_ids"]
    targets = backbone.prepare(task.train)[:4]["target_ids"]
    for row, target in zip(range(4), targets):
        kept = labels[row][labels[row] != -100].tolist()
        assert kept == list(target) + [backbone.tokenizer.eos_token_id]  # the output + EOS, nothing of the prompt
        start = int((labels[row] != -100).nonzero()[0])
        assert ids[row, start:start + len(kept)].tolist() == kept
    logits = backbone.model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
    shifted, gold = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    by_hand = torch.nn.functional.cross_entropy(shifted, gold, ignore_index=-100)
    everything = torch.nn.functional.cross_entropy(shifted, ids[:, 1:].reshape(-1))
    loss = backbone.loss(batch, task)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert abs(loss.item() - everything.item()) > 1e-3


def test_left_padded_batched_generation_equals_one_by_one(setup):
    backbone, stream = build(setup, max_new_tokens=6)
    backbone.model.eval()
    task = stream[0]
    data = backbone.prepare(task.test)
    indices = [0, 2, 5, 7]
    batch = backbone.collate(data[indices])
    assert (batch["prompt_mask"][:, 0] == 0).any()  # prompts differ in length: the batch is left-padded
    with torch.inference_mode():
        together = backbone._generate(batch, 6)
        alone = [backbone._generate(backbone.collate(data[[i]]), 6)[0] for i in indices]
    assert together.shape[1] <= 6
    for row, single in zip(together, alone):
        eos = backbone.tokenizer.eos_token_id
        trimmed = row.tolist()[: len(single)]
        assert trimmed == single.tolist()
        assert all(t in (eos, backbone.tokenizer.pad_token_id) for t in row.tolist()[len(single):])


def test_generation_stops_at_eos_and_predict_returns_texts(setup):
    backbone, stream = build(setup, max_new_tokens=5)
    eos = backbone.tokenizer.eos_token_id

    def favour_eos(module, inputs, logits):  # make EOS the argmax everywhere
        logits[..., eos] += 1e4
        return logits

    backbone.model.lm_head.register_forward_hook(favour_eos)
    batch = backbone.collate(backbone.prepare(stream[0].test)[:3])
    with torch.inference_mode():
        assert backbone._generate(batch, 5).shape[1] == 1
        assert backbone.predict(batch, stream[0], "task-il") == ["", "", ""]


def test_chat_template_wraps_the_prompt(setup):
    chat, stream = build(setup, chat=True)
    plain, _ = build(setup, chat=False)
    off, _ = build(setup, chat=True, chat_template=False)
    assert chat.uses_chat_template and not off.uses_chat_template
    tok = chat.tokenizer
    row = chat.prepare(stream[0].train)[:1]
    ids = chat.collate(row)["input_ids"][0].tolist()
    before = tok("<s> user :", add_special_tokens=False)["input_ids"]
    after = tok("</s> <s> bot :", add_special_tokens=False)["input_ids"]
    assert ids[: len(before)] == before
    target = list(row["target_ids"][0]) + [tok.eos_token_id]
    assert ids[-len(target) - len(after): -len(target)] == after
    plain_ids = plain.collate(plain.prepare(stream[0].train)[:1])["input_ids"][0].tolist()
    off_ids = off.collate(off.prepare(stream[0].train)[:1])["input_ids"][0].tolist()
    assert plain_ids == off_ids  # the switch turns the template off entirely
    assert plain_ids[: len(before)] != before


def test_generative_tasks_carry_metric_and_references(setup):
    _, _, bench, stream = setup
    assert [t.name for t in stream] == ["colours", "animals"]
    assert [t.metric for t in stream] == ["rouge-l", "rouge-l"]
    assert stream[0].classes == () and stream[0].generative
    assert bench.general_tasks(0)[0].name == "general"
    assert stream[1].test[0]["references"] == ["a dog barks"]


def test_generation_cap_is_the_longest_training_reference_of_the_task(setup, monkeypatch):
    from dataclasses import replace

    backbone, stream = build(setup)  # no max_new_tokens option
    tok = backbone.tokenizer
    for task, words in zip(stream, (1, 3)):  # colours: "blue"; animals: "a dog barks"
        longest = max(len(tok(" " + ref, add_special_tokens=False)["input_ids"])
                      for refs in task.train["references"] for ref in refs)
        assert task.max_new_tokens == 64 and backbone.new_tokens(task) == longest == words
    assert backbone.new_tokens(replace(stream[1], max_new_tokens=2)) == 2  # the task's cap still bounds it
    fixed, _ = build(setup, max_new_tokens=6)
    assert fixed.new_tokens(stream[0]) == 6  # the option wins
    caps = []
    monkeypatch.setattr(backbone, "_generate", lambda batch, cap=None: caps.append(cap) or torch.zeros(2, 0).long())
    backbone.predict(backbone.collate(backbone.prepare(stream[1].test)[:2]), stream[1], "task-il")
    assert caps == [3]
