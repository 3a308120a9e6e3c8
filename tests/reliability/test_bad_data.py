"""Bad data: one-line DataError/CheckpointError at the command line (exit 2), never a traceback.

The benchmark modules test each error at the source; this file checks the user's
view through ``clft run`` (in-process ``clft.cli.main``) and the core checks:

| bad data | where it is tested at the source |
|---|---|
| label outside the label set | tests/benchmarks/test_text_classification_benchmark.py::test_label_outside_label_set, test_text_benchmarks.py (clinc, text-cl), test_mnist.py (IDX) |
| empty task | test_text_classification_benchmark.py::test_empty_task; ``clft.data.make_task`` below |
| class repeated across tasks (class-IL) | test_text_classification_benchmark.py::test_class_repeated_across_tasks, test_text_benchmarks.py::test_clinc_repeated_intent_across_domains_is_rejected |
| missing text/label column | test_text_classification_benchmark.py::test_missing_text_or_label_column_names_the_columns_present, test_text_benchmarks.py::test_banking_wrong_header_names_the_columns_present |
| file not UTF-8 | test_text_classification_benchmark.py::test_file_not_utf8, test_text_benchmarks.py::test_banking_ragged_csv_and_bad_encoding |
| corrupt JSON / CSV / IDX | test_text_classification_benchmark.py::test_corrupt_files, test_text_benchmarks.py::test_clinc_corrupt_json_names_file_and_line, test_mnist.py::test_corrupt_idx_files_are_one_line_data_errors |
| checkpoint of another experiment / schema | tests/test_checkpoint.py::test_foreign_or_old_checkpoints_are_refused, tests/e2e/test_cli.py; through resume below |
"""  # noqa: E501

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from reliability_helpers import experiment, forked, one_line_error, run_quietly, write_yaml

from clft.benchmarks.vector_streams import vectors_dataset
from clft.cli import main
from clft.data import check_disjoint_classes, check_labels, make_task
from clft.errors import DataError
from clft.types import Task

TEXT_BACKBONE = {"name": "hf-classifier", "model": "all-MiniLM-L6-v2"}  # never built: the data fails first


def text_files(tmp_path: Path, train: bytes | None = None, ext: str = ".csv") -> dict:
    rows = "".join(f"{kind} {i},{label}\n" for kind in ("a",) for label in ("sports", "world") for i in range(3))
    good = ("text,label\n" + rows).encode()
    (tmp_path / "test.csv").write_bytes(good)
    (tmp_path / f"train{ext}").write_bytes(good if train is None else train)
    return {"train": str(tmp_path / f"train{ext}"), "test": str(tmp_path / "test.csv")}


CASES = {
    "label outside the label set": (lambda p: {"files": text_files(p), "label_names": ["sports"]},
                                    "label 'world' outside the label set"),
    "class repeated across tasks": (lambda p: {"files": text_files(p),
                                               "class_groups": [["sports", "world"], ["world"]]},
                                    "appears in tasks 0 and 1"),
    "empty task": (lambda p: {"files": text_files(p), "label_names": ["sports", "world", "x"],
                              "class_groups": [["sports"], ["x"]]}, "has an empty train split"),
    "missing label column": (lambda p: {"files": text_files(p), "label_column": "category"}, "no column 'category'"),
    "not UTF-8": (lambda p: {"files": text_files(p, "text,label\ncaf\xe9,sports\n".encode("latin-1"))},
                  "not a UTF-8 text file"),
    "corrupt CSV": (lambda p: {"files": text_files(p, b"text,label\na,sports,extra\n")}, "corrupt CSV at line 2"),
    "corrupt JSON": (lambda p: {"files": text_files(p, b'[{"text": "a", "label": "x"},', ".json")}, "corrupt JSON"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_text_data_is_one_line_at_the_cli(case, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLFT_DATA_DIR", raising=False)
    options, fragment = CASES[case]
    exp = write_yaml(tmp_path / "exp.yaml", backbone=TEXT_BACKBONE,
                     benchmark={"name": "text-classification", "scenario": "class-il", **options(tmp_path)})
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]), 2)
    assert fragment in line


def test_corrupt_idx_is_one_line_at_the_cli(tmp_path, capsys):
    (tmp_path / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / "mnist" / f"{name}.gz").write_bytes(gzip.compress(b"\x08\x03\0\0 not idx"))
    exp = write_yaml(tmp_path / "exp.yaml", benchmark={"name": "split-mnist", "data_dir": str(tmp_path)})
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]), 2)
    assert "train-images-idx3-ubyte.gz: not an IDX file" in line


def test_core_checks_on_assembled_tasks():
    data = vectors_dataset(np.zeros((4, 2)), np.asarray([0, 1, 0, 1]))
    with pytest.raises(DataError, match=r"task 3 \('t'\) train split has labels \[1\] outside its classes \[0\]"):
        make_task(3, "t", [0], data, data)
    with pytest.raises(DataError, match=r"task 0 \('t'\) has an empty test split"):
        make_task(0, "t", [0, 1], data, data.select([]))
    with pytest.raises(DataError, match="label 7 outside the label set 0..4"):
        check_labels([1, 7], 5, "file.csv")
    tasks = [Task(i, "t", (0, 1), datasets.Dataset.from_dict({}), None) for i in range(2)]
    with pytest.raises(DataError, match="class 0 appears in tasks 0 and 1; a class-il split needs disjoint classes"):
        check_disjoint_classes(tasks, "class-il")
    check_disjoint_classes(tasks, "domain-il")  # shared labels are the point of domain-IL


@pytest.fixture(scope="module")
def killed_checkpoint(tmp_path_factory):
    """A results folder whose run was SIGKILLed after two tasks, and its experiment file."""
    root = tmp_path_factory.mktemp("killed")
    write_yaml(root / "exp.yaml")
    assert forked(lambda: run_quietly(experiment(), root / "out"), {"CLFT_KILL_AT": "train:task2:step0"}) == -9
    return root


def resume_error(root: Path, exp: Path, capsys) -> str:
    return one_line_error(capsys, main(["run", str(exp), "--out", str(root / "out"), "--quiet", "--resume"]), 2)


def test_resume_refuses_the_checkpoint_of_another_experiment(killed_checkpoint, capsys):
    other = write_yaml(killed_checkpoint / "other.yaml", name="another-experiment")
    assert "another config_hash" in resume_error(killed_checkpoint, other, capsys)


@pytest.mark.parametrize("meta, fragment", [({"schema_version": 99}, "has schema_version 99, this clft needs 1"),
                                            (None, "meta.json is damaged")])
def test_resume_refuses_another_schema_or_a_corrupt_checkpoint(killed_checkpoint, capsys, meta, fragment):
    path = next((killed_checkpoint / "out" / ".checkpoints").rglob("meta.json"))
    original = path.read_text()
    path.write_text("{not json" if meta is None else json.dumps({**json.loads(original), **meta}))
    try:
        assert fragment in resume_error(killed_checkpoint, killed_checkpoint / "exp.yaml", capsys)
    finally:
        path.write_text(original)
