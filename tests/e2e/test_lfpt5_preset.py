"""Every row of the lfpt5-fewshot-smollm2 presets runs on a causal LM: the presets as written, with
SmolLM2 swapped for a tiny random Llama (tests/llm_helpers), LFPT5-format files of a few examples
per class, and 2 steps per task; each run must end with the full 4 x 4 accuracy matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_helpers import save_tokenizer, tiny_llama_backbone

from clft.benchmarks.lfpt5 import DATASETS, SEED_FOLDERS
from clft.config import make_dataclass_instance
from clft.config.entries import parse_entries
from clft.config.experiment import ExperimentConfig
from clft.config.yaml_safe import safe_load_bounded
from clft.sweep.run import run_experiment

CHECKOUT = Path(__file__).resolve().parents[2]
PRESETS = ("lfpt5-fewshot-smollm2.yaml", "lfpt5-fewshot-smollm2-isolation.yaml")


def preset(name: str) -> dict:
    return safe_load_bounded((CHECKOUT / "experiments" / name).read_text(encoding="utf-8"))


ROWS = [(name, index, entry.label)
        for name in PRESETS for index, entry in enumerate(parse_entries(preset(name)["compare"]))]


def write_lfpt5_files(root: Path) -> str:
    """LFPT5's layout (``<dataset>_csv/<sample>/{train,valid,test}.txt``): 2 / 1 / 1 examples per class."""
    for folder, labels, _ in DATASETS.values():
        for sample in SEED_FOLDERS.values():
            base = root / "lfpt5_fewshot" / folder / sample
            base.mkdir(parents=True, exist_ok=True)
            for split, n in (("train", 2), ("valid", 1), ("test", 1)):
                lines = [f"{label} text number {i}\t{label}" for label in labels for i in range(n)]
                (base / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(root)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lfpt5-preset")
    words = " ".join(label for _, labels, instruction in DATASETS.values() for label in (*labels, instruction))
    size = save_tokenizer(root / "tok", words=f"{words} text number 0 1")
    return root, write_lfpt5_files(root / "data"), size


def test_the_presets_run_every_row_of_the_issue():
    labels = [label for _, _, label in ROWS]
    assert labels == ["seq-lora", "replay", "ewc", "lwf", "offline", "o-lora", "progressive-prompts",
                      "adapter-per-task"]
    for name in PRESETS:
        raw = preset(name)
        assert raw["name"] == "lfpt5-fewshot-smollm2" and raw["seeds"] == [0, 1, 2]
        assert raw["train"]["eval_scope"] == "seen" and raw["train"]["lr"] == 1.0e-3
        assert raw["benchmark"]["split_seed"] == "seed" and raw["benchmark"]["order"] == "lfpt5"
        assert raw["backbone"]["model"] == "smollm2-135m-instruct" and raw["backbone"]["dtype"] == "float32"
        assert raw["backbone"]["decode"] == "rank"
    assert "peft" in preset(PRESETS[0])["backbone"] and "peft" not in preset(PRESETS[1])["backbone"]
    prompts = preset(PRESETS[1])["compare"][1]
    assert prompts["strategies"]["name"] == "progressive-prompts" and prompts["train"] == {"lr": 0.03}


@pytest.mark.parametrize("name, index, label", ROWS, ids=[label for _, _, label in ROWS])
def test_each_row_runs_on_a_tiny_causal_lm_and_fills_the_accuracy_matrix(tiny_setup, name, index, label, tmp_path):
    root, data_dir, size = tiny_setup
    raw = preset(name)
    swapped = {k: v for k, v in raw["backbone"].items() if k not in ("name", "model")}
    raw.update(seeds=[0], compare=[raw["compare"][index]], published={},
               backbone=tiny_llama_backbone(root / "tok", size, **swapped),
               benchmark={**raw["benchmark"], "data_dir": data_dir, "test_per_class": 1},
               train={**raw["train"], "max_steps_per_task": 2, "batch_size": 4})
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    (path,) = run_experiment(cfg, tmp_path / "out", progress=False, log=lambda *_: None)
    result = json.loads(path.read_text())
    assert result["label"] == label
    assert [t["name"] for t in result["tasks"]] == ["dbpedia", "amazon", "yahoo", "ag_news"]  # sample 0's order
    acc = result["acc"]
    evaluated = [[x is not None for x in row] for row in acc]  # eval_scope seen: tasks 1..i, all after the last
    assert evaluated == [[j <= i or i == 3 for j in range(4)] for i in range(4)]
    assert all(0.0 <= x <= 1.0 for row in acc for x in row if x is not None)
    assert result["baseline_acc"] == [None] * 4
