"""A new text dataset as YAML only: local CSV files + a benchmark file + an experiment, no code."""

import json

import yaml

from clft.strategies._text import TINY_TEXT_BACKBONE


def write_csv(path, rows):
    path.write_text("utterance,intent\n" + "".join(f'"{text}",{label}\n' for text, label in rows), encoding="utf-8")


def test_yaml_benchmark_over_local_csv_runs_through_the_cli(cli, tmp_path):
    words = {"book": "travel", "fly": "travel", "pay": "bank", "card": "bank", "cook": "food", "bake": "food",
             "song": "music", "play": "music"}
    rows = [(f"please {word} now number {i}", label) for i in range(6) for word, label in words.items()]
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data" / "train.csv", rows)
    write_csv(tmp_path / "data" / "test.csv", rows[:16])
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "my-intents.yaml").write_text(yaml.safe_dump({
        "name": "text-classification", "files": {"train": "data/train.csv", "test": "data/test.csv"},
        "text_column": "utterance", "label_column": "intent", "n_tasks": 2, "scenario": "class-il",
        "data_dir": str(tmp_path)}))
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(yaml.safe_dump({
        "name": "my-intents", "benchmark": {"file": "benchmarks/my-intents.yaml"},
        "backbone": TINY_TEXT_BACKBONE, "strategies": ["finetune"], "train": {"epochs": 1, "batch_size": 8}}))
    proc = cli("run", str(experiment), "--out", str(tmp_path / "out"), "--quiet", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out" / "class-il" / "finetune" / "seed0.json").read_text())
    assert [len(task["classes"]) for task in result["tasks"]] == [2, 2]
    assert sum(task["n_train"] for task in result["tasks"]) == len(rows)
    assert result["config"]["benchmark"]["label_column"] == "intent"
