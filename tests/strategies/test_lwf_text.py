"""lwf on text-to-text backbones: the old model's next-token distributions distilled at the
target positions of the step's batch, checked by hand on a tiny random Llama + LoRA
(tests/llm_helpers) and a tiny random T5 + LoRA."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

from clft.registry import backbones, benchmarks, strategies
from clft.testing import extra_loss, start_task, step, train
from clft.types import LabelSpace

LLAMA_LORA = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
              "target_modules": ["q_proj", "v_proj"]}
T5 = {"name": "hf-seq2seq", "tokenizer": "all-MiniLM-L6-v2", "max_length": 32,
      "peft": {"peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "r": 4, "lora_alpha": 8, "target_modules": ["q", "v"]},
      "model_config": {"model_type": "t5", "vocab_size": 30522, "d_model": 32, "d_ff": 64, "d_kv": 16,
                       "num_layers": 2, "num_heads": 2, "decoder_start_token_id": 0, "pad_token_id": 0,
                       "eos_token_id": 102, "dropout_rate": 0.0}}


def tiny_text(kind: str, tmp_path):
    """(backbone with LoRA on the CPU, tasks): a causal LM on two generation tasks, or a T5 on labels."""
    if kind == "causal":
        size = save_tokenizer(tmp_path / "tok", chat=True)
        bench = benchmarks.build({"name": "instruction-tuning", "files": write_instruction_files(tmp_path / "data")})
        spec = tiny_llama_backbone(tmp_path / "tok", size, peft=LLAMA_LORA)
    else:
        bench = benchmarks.build({"name": "synthetic-text", "n_tasks": 2, "train_per_class": 8, "test_per_class": 2})
        spec = T5
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(spec, bench, tasks)
    backbone.label_space = LabelSpace("task-il", len(bench.label_names), {t.id: t.classes for t in tasks})
    return backbone.to("cpu"), tasks


def trainable(backbone) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in backbone.model.named_parameters() if p.requires_grad}


def token_logits(model, batch, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits at the target positions [M, V], by hand: shifted for a causal LM), the model as it is."""
    if causal:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["lm_labels"][:, 1:]
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       labels=batch["lm_labels"]).logits
        labels = batch["lm_labels"]
    return logits[labels != -100], labels[labels != -100]


def hand_lwf(backbone, old_params, batch, causal, lam, t) -> torch.Tensor:
    """λ T² · mean over target tokens of Σ_v p_old log(p_old / p_new), with the old model rebuilt by hand."""
    old_model = copy.deepcopy(backbone.model).eval()
    with torch.no_grad():
        for name, param in old_model.named_parameters():
            if name in old_params:
                param.copy_(old_params[name])
        old, _ = token_logits(old_model, batch, causal)
    new, _ = token_logits(backbone.model, batch, causal)
    p_old = F.softmax(old / t, dim=-1)
    return lam * t * t * (p_old * (p_old.log() - F.log_softmax(new / t, dim=-1))).sum(-1).mean()


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_lwf_distils_the_old_models_token_distributions_at_the_target_positions(kind, tmp_path):
    backbone, tasks = tiny_text(kind, tmp_path)
    lwf = strategies.build({"name": "lwf", "lam": 2.0, "temperature": 3.0})
    start_task(backbone, [lwf], tasks[0], tasks)
    batch = backbone.collate(tasks[0].train[:4])
    assert extra_loss(lwf, backbone, batch, tasks[0]) is None  # no old model at the first task
    train(backbone, [lwf], tasks, stop=1, steps=2, batch_size=4, lr=0.5)
    old_params = trainable(backbone)
    assert old_params and all(".lora_" in name for name in old_params)  # θ_old: the LoRA matrices only
    start_task(backbone, [lwf], tasks[1], tasks)
    batch = backbone.collate(tasks[1].train[:4])
    assert abs(extra_loss(lwf, backbone, batch, tasks[1]).item()) < 1e-6  # old model == current model
    with torch.no_grad():
        for p in backbone.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.3)
    moved = trainable(backbone)
    outputs = backbone.forward(batch, tasks[1])  # its graph must survive the swap inside extra_loss
    term = lwf.extra_loss(backbone, batch, outputs, tasks[1])
    expected = hand_lwf(backbone, old_params, batch, kind == "causal", 2.0, 3.0)
    assert expected.item() > 1e-4
    torch.testing.assert_close(term, expected, rtol=1e-4, atol=1e-6)
    (outputs.main_loss() + term).backward()
    for name, p in backbone.model.named_parameters():
        if p.requires_grad:  # the current parameters are back in place, with gradients; θ_old untouched
            assert torch.equal(p.detach(), moved[name]) and p.grad is not None, name
            assert torch.equal(lwf.old[name], old_params[name]), name


def test_lwf_on_text_keeps_the_old_model_frozen_while_training(tmp_path):
    backbone, tasks = tiny_text("causal", tmp_path)
    lwf = strategies.build({"name": "lwf", "lam": 1.0})
    train(backbone, [lwf], tasks, stop=1, steps=2, batch_size=4, lr=0.5)
    snapshot = {n: t.clone() for n, t in lwf.old.items()}
    batch = backbone.collate(tasks[1].train[:4])
    old_before = lwf.old_model(backbone, lambda: backbone.forward(batch, tasks[1])).extra["lm_logits"]
    start_task(backbone, [lwf], tasks[1], tasks)
    optimizer = torch.optim.SGD(backbone.trainable_parameters(), lr=0.5)
    for rows in (slice(0, 4), slice(4, 8)):  # steps with lwf's term; the gradient reaches only θ
        step(backbone, [lwf], tasks[1], optimizer, backbone.collate(tasks[1].train[rows]))
    assert all(torch.equal(lwf.old[n], snapshot[n]) for n in snapshot)
    old_after = lwf.old_model(backbone, lambda: backbone.forward(batch, tasks[1])).extra["lm_logits"]
    torch.testing.assert_close(old_after, old_before)
    assert not torch.allclose(backbone.forward(batch, tasks[1]).extra["lm_logits"], old_before)  # θ moved
