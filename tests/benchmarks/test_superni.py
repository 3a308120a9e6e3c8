"""superni-cl on the real SAPT copy of SuperNI (``CLFT_DATA_DIR/superni_cl``; skipped without it),
and the instruction-tuning benchmark's errors on small files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import clft.benchmarks  # noqa: F401  (registers the built-ins)
from clft.benchmarks.superni import ORDERS
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks

DATA = os.environ.get("CLFT_DATA_DIR")


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.realdata
def test_orders_have_the_15_tasks_with_published_sizes(order):
    if not (DATA and (Path(DATA) / "superni_cl").is_dir()):
        pytest.skip("CLFT_DATA_DIR with superni_cl/ is not set")
    bench = benchmarks.build({"name": "superni-cl", "order": order})
    stream = bench.tasks(0)
    assert [t.name.split("_", 1)[1].startswith(short) for t, short in zip(stream, ORDERS[order])] == [True] * 15
    sizes = {t.name: (len(t.train), len(t.test)) for t in stream}
    assert sizes["task1572_samsum_summary"] == (160, 20)
    assert sizes["task639_multi_woz_user_utterance_generation"] == (142, 18)
    assert sizes["task363_sst2_polarity_classification"] == (1000, 100)
    metrics = {t.name for t in stream if t.metric == "exact-match"}
    assert metrics == {"task363_sst2_polarity_classification", "task1687_sentiment140_classification",
                       "task875_emotion_classification"}


@pytest.mark.realdata
def test_sizes_subset_general_and_determinism():
    if not (DATA and (Path(DATA) / "superni_cl").is_dir()):
        pytest.skip("CLFT_DATA_DIR with superni_cl/ is not set")
    spec = {"name": "superni-cl", "order": ["xsum", "sst2"], "train_size": 20, "test_size": 5, "val_size": 4,
            "general_tasks": ["sciq"], "general_test_size": 7}
    bench = benchmarks.build(spec)
    first, again, other = bench.tasks(0), benchmarks.build(spec).tasks(0), bench.tasks(1)
    assert [t.name for t in first] == ["task1290_xsum_summarization", "task363_sst2_polarity_classification"]
    assert [(len(t.train), len(t.test), len(t.val)) for t in first] == [(20, 5, 4)] * 2
    assert first[0].train["text"] == again[0].train["text"] and first[0].train["text"] != other[0].train["text"]
    assert not set(first[0].val["text"]) & set(first[0].train["text"])  # validation drawn apart from training
    row = first[1].train[0]
    assert row["instruction"].startswith("In this task, you are given sentences from movie reviews")
    assert row["target"] == row["references"][0] and row["target"] in ("POS", "NEG")
    general = bench.general_tasks(0)
    assert [(t.id, t.name, len(t.test)) for t in general] == [(2, "task591_sciq_answer_generation", 7)]
    with pytest.raises(ConfigError, match="also in the stream"):
        benchmarks.build({**spec, "general_tasks": ["sst2"]})
    with pytest.raises(ConfigError, match="unknown; tasks: task002_quoref"):
        benchmarks.build({**spec, "order": ["nope"]})


def test_superni_without_data_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="no folder superni_cl/"):
        benchmarks.build({"name": "superni-cl", "data_dir": str(tmp_path)})


def test_instruction_tuning_csv_single_task_and_errors(tmp_path):
    (tmp_path / "train.csv").write_text("instruction,question,answer\nadd,1+1,2\nadd,2+2,4\n", encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(json.dumps({"instruction": "add", "question": "3+3", "answer": ["6", "six"]})
                                         + "\n", encoding="utf-8")
    files = {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.jsonl")}
    bench = benchmarks.build({"name": "instruction-tuning", "files": files, "metric": "exact-match",
                              "columns": {"input": "question", "output": "answer"}})
    (task,) = bench.tasks(0)
    assert (task.name, task.metric, len(task.train)) == ("task", "exact-match", 2)
    assert task.test[0]["references"] == ["6", "six"] and task.train["target"] == ["2", "4"]
    with pytest.raises(DataError, match="no column 'input', 'output'; columns present: 'instruction', 'question'"):
        benchmarks.build({"name": "instruction-tuning", "files": files})
    with pytest.raises(ConfigError, match="files needs train and test"):
        benchmarks.build({"name": "instruction-tuning", "files": {"train": files["train"]}})
