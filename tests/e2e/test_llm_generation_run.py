"""Two-task continual instruction tuning of a tiny random Llama, one run per strategy."""

from __future__ import annotations

import json

import pytest
from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.results.tables import render_table
from clft.sweep.run import run_experiment

LORA = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16,
        "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"]}
STRATEGIES = {
    "finetune": "finetune",
    "replay": {"name": "replay", "memory_size": 4},
    "ewc": {"name": "ewc", "lam": 10.0},
    "o-lora": {"name": "o-lora", "r": 4, "target_modules": ["q_proj", "v_proj"]},
    "adapter-per-task": {"name": "adapter-per-task", "peft": LORA},
}


def experiment(root, strategies: list) -> ExperimentConfig:
    size = save_tokenizer(root / "tok", chat=True)
    raw = {"name": "tiny-llm", "seeds": [0],
           "benchmark": {"name": "instruction-tuning", "files": write_instruction_files(root / "data"),
                         "general_tasks": ["general"]},
           "backbone": tiny_llama_backbone(root / "tok", size, peft=LORA, max_new_tokens=4),
           "compare": strategies,
           "train": {"epochs": 8, "batch_size": 4, "lr": 0.05, "eval_batch_size": 8}}
    return make_dataclass_instance(ExperimentConfig, raw, where="experiment")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm-run")
    paths = run_experiment(experiment(root, list(STRATEGIES.values())), root / "out", progress=False,
                           log=lambda *_: None)
    return root / "out", {path.parent.name: json.loads(path.read_text()) for path in paths}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_strategy_runs_two_generation_tasks(results, strategy):
    _, runs = results
    run = runs[strategy]
    assert [(t["name"], t["metric"]) for t in run["tasks"]] == [("colours", "rouge-l"), ("animals", "rouge-l")]
    acc = run["acc"]
    assert len(acc) == 2 and all(len(row) == 2 and all(0.0 <= x <= 1.0 for x in row) for row in acc)
    general = run["general"]
    assert general["tasks"] == [{"name": "general", "metric": "rouge-l", "n_test": 4}]
    assert len(general["scores"]) == 3  # before training, after task 1, after task 2
    assert acc[0][0] > run["baseline_acc"][0]  # training on task 1 raised its ROUGE-L


def test_memory_strategies_keep_state(results):
    _, runs = results
    for name in ("replay", "ewc", "o-lora", "adapter-per-task"):
        assert runs[name]["cost"]["extra_state_bytes"] > 0, name


def test_table_names_ap_and_general_ability(results):
    out, runs = results
    table = render_table(out)
    header = table.splitlines()[0]
    assert "| AP |" in header and "| ACC |" not in header
    assert "general before" in header and "general after" in header
    before = runs["finetune"]["general"]["scores"][0][0]
    assert f"| {before:.3f} |" in table.splitlines()[2]  # one seed: the mean alone


def test_same_seed_same_score_matrix(results, tmp_path):
    _, runs = results
    (path,) = run_experiment(experiment(tmp_path, ["finetune"]), tmp_path / "out", progress=False,
                             log=lambda *_: None)
    again = json.loads(path.read_text())
    assert again["acc"] == runs["finetune"]["acc"] and again["general"] == runs["finetune"]["general"]
