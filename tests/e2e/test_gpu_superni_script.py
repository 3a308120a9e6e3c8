"""benchmarks/gpu_superni.py end to end on the CPU: a tiny random Llama folder and two SuperNI-format tasks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from llm_helpers import EXAMPLES, INSTRUCTIONS, save_tokenizer, tiny_llama_config

REPO = Path(__file__).resolve().parents[2]


def superni_task(folder: Path, task: str) -> None:
    folder.mkdir(parents=True)
    instances = [{"id": f"{task}-{i}", "input": a, "output": [b]} for i, (a, b) in enumerate(EXAMPLES[task])]
    data = {"Definition": [INSTRUCTIONS[task]], "Instances": instances}
    for split in ("train", "test"):
        (folder / f"{split}.json").write_text(json.dumps(data), encoding="utf-8")


def tiny_model(folder: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    size = save_tokenizer(folder, chat=True)
    options = tiny_llama_config(size)
    config = AutoConfig.for_model(options.pop("model_type"), **options)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)


@pytest.mark.slow
def test_script_writes_results_table_log_and_timing(tmp_path):
    superni_task(tmp_path / "data" / "superni_cl" / "task1572_samsum_summary", "colours")
    superni_task(tmp_path / "data" / "superni_cl" / "task363_sst2_polarity_classification", "animals")
    tiny_model(tmp_path / "model")
    spec = importlib.util.spec_from_file_location("gpu_superni", REPO / "benchmarks" / "gpu_superni.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "out"
    code = script.main(["--model", str(tmp_path / "model"), "--data-dir", str(tmp_path / "data"), "--out", str(out),
                        "--order", "samsum,sst2", "--train-size", "6", "--test-size", "4", "--max-new-tokens", "4",
                        "--batch-size", "4", "--device", "cpu", "--strategies", "finetune,o-lora"])
    assert code == 0
    runs = sorted(p.parent.name for p in (out / "results").rglob("seed0.json"))
    assert runs == ["finetune", "o-lora"]
    result = json.loads((out / "results" / "task-il" / "finetune" / "seed0.json").read_text())
    assert [t["metric"] for t in result["tasks"]] == ["rouge-l", "exact-match"]
    assert [t["n_test"] for t in result["tasks"]] == [4, 4]
    assert "| AP |" in (out / "table.md").read_text()
    assert "wall time" in (out / "log.txt").read_text()
    assert json.loads((out / "timing.json").read_text())["device"] == "cpu"
