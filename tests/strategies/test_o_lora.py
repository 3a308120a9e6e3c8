"""o-lora as its paper defines it (protect_head off by default), the label of the head-freezing
variant, and o-lora on hf-classifier's label-embedding head; tiny random BERT, real runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from test_peft_strategies import run_recorded

import clft.sweep.run
from clft.config.entries import parse_entries
from clft.config.experiment import load_experiment
from clft.errors import ConfigError
from clft.registry import strategies
from clft.results.staleness import OTHER_CONFIG, TODO
from clft.strategies._peft import adapter_name, adapter_parameters
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK

TRAIN = {"epochs": 2, "batch_size": 8, "lr": 0.02, "max_steps_per_task": 4, "threads": 1}
LABEL_EMBEDDING = {**TINY_TEXT_BACKBONE, "head": "label-embedding"}


def write(path: Path, compare: list, n_tasks: int = 2, backbone: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "o-lora", "seeds": [0], "scenarios": ["class-il"],
        "benchmark": {**TINY_TEXT_BENCHMARK, "n_tasks": n_tasks}, "backbone": backbone or TINY_TEXT_BACKBONE,
        "compare": compare, "train": TRAIN}))
    return path


def run(tmp_path: Path, monkeypatch, compare: list, name: str, on_task_end=None, **options) -> list:
    """[(the Run, its result path)] of every entry, run in process into ``tmp_path / name``."""
    cfg = load_experiment(str(write(tmp_path / f"{name}.yaml", compare, **options)))[0]
    return run_recorded(cfg, tmp_path / name, monkeypatch, on_task_end)


def lora_matrices(backbone, task_id: int) -> dict[str, torch.Tensor]:
    """Every lora_A / lora_B weight of task ``task_id``'s adapter, copied."""
    params = adapter_parameters(backbone, adapter_name(task_id))
    return {n: p.detach().clone() for n, p in params.items() if ".lora_A." in n or ".lora_B." in n}


def test_the_default_is_the_papers_o_lora_and_the_head_freezing_variant_says_so_in_its_label():
    config = strategies.get("o-lora").Config()
    assert config.protect_head is False
    entries = parse_entries(["o-lora", {"name": "o-lora", "protect_head": True},
                             [{"name": "o-lora", "protect_head": True}, "replay"],
                             {"label": "mine", "strategies": {"name": "o-lora", "protect_head": True}}])
    assert [e.label for e in entries] == ["o-lora", "o-lora+frozen-head", "o-lora+frozen-head+replay", "mine"]


def test_a_bad_o_lora_spec_keeps_its_name_as_label_and_preflight_reports_it(tmp_path):
    assert parse_entries([{"name": "o-lora", "protect_head": "sometimes"}])[0].label == "o-lora"
    cfg = load_experiment(str(write(tmp_path / "bad.yaml", [{"name": "o-lora", "protect_head": "sometimes"}])))[0]
    with pytest.raises(ConfigError, match="protect_head"):
        clft.sweep.run.run_experiment(cfg, tmp_path / "bad", progress=False, log=lambda message: None)


@pytest.mark.parametrize("protect_head", [False, True])
def test_old_loras_are_bit_identical_after_later_tasks(tmp_path, monkeypatch, protect_head):
    seen: list[dict] = []  # after task t: {task id: its LoRA matrices} for tasks 0..t
    record = lambda r, task: seen.append({t: lora_matrices(r.backbone, t) for t in range(task.id + 1)})  # noqa: E731
    spec = {"name": "o-lora", "protect_head": protect_head, "lam1": 0.5}
    [(run_, path)] = run(tmp_path, monkeypatch, [spec], "bits", on_task_end=record, n_tasks=3)
    for t in (0, 1):
        assert seen[t][t] and any(".lora_A." in n for n in seen[t][t]) and any(".lora_B." in n for n in seen[t][t])
        assert any(m.abs().sum() > 0 for n, m in seen[t][t].items() if ".lora_B." in n)  # B starts at 0: trained
        for later in seen[t + 1 :]:
            assert sorted(later[t]) == sorted(seen[t][t])
            assert all(torch.equal(later[t][n], seen[t][t][n]) for n in seen[t][t]), (t, protect_head)
    label = "o-lora+frozen-head" if protect_head else "o-lora"
    document = json.loads(path.read_text())
    assert path.parent.name == document["label"] == label and document["strategy"] == "o-lora"


def test_o_lora_runs_class_il_on_the_label_embedding_head_with_nothing_trainable_in_it(tmp_path, monkeypatch):
    heads: list[torch.Tensor] = []
    record = lambda r, task: heads.append(r.backbone.head.label_embeddings.clone())  # noqa: E731
    [(run_, path)] = run(tmp_path, monkeypatch, ["o-lora"], "le", on_task_end=record, backbone=LABEL_EMBEDDING)
    backbone = run_.backbone
    assert list(backbone.head.parameters()) == []
    trainable = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and ".task1." in n for n in trainable)
    assert torch.equal(heads[0], heads[1])
    result = json.loads(path.read_text())
    assert len(result["acc"]) == 2 and result["extra"]["olora_overlap"]["0-1"] > 0
    assert result["config"]["strategies"][0]["protect_head"] is False


def test_protect_head_without_a_linear_head_is_an_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="protect_head freezes rows of a linear classifier head"):
        run(tmp_path, monkeypatch, [{"name": "o-lora", "protect_head": True}], "no-head", backbone=LABEL_EMBEDDING)


def test_results_of_the_old_default_are_another_config_and_the_variant_gets_its_own_folder(tmp_path, monkeypatch):
    """A folder made when protect_head defaulted on: its o-lora runs froze the head rows."""
    old = [{"label": "o-lora", "strategies": {"name": "o-lora", "protect_head": True}}]
    run(tmp_path, monkeypatch, old, "out", n_tasks=2)
    now = load_experiment(str(write(tmp_path / "now.yaml", ["o-lora", {"name": "o-lora", "protect_head": True}])))[0]
    planned = clft.sweep.classify_runs(now, tmp_path / "out")
    assert [(p.plan.label, p.status) for p in planned] == [("o-lora", OTHER_CONFIG), ("o-lora+frozen-head", TODO)]
    assert planned[1].result_path.parent.name == "o-lora+frozen-head"
