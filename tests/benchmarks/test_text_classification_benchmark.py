"""The generic ``text-classification`` benchmark on tiny CSV/TSV/JSON/JSONL/Parquet files."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import clft.benchmarks  # noqa: F401  (registers the built-ins)
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks

LABELS = ["sports", "business", "world", "science"]


@pytest.fixture(autouse=True)
def no_env_data_dir(monkeypatch):
    monkeypatch.delenv("CLFT_DATA_DIR", raising=False)


def records(labels, per_label, tag="x"):
    return [{"text": f"{tag} {label} {i}", "label": label} for label in labels for i in range(per_label)]


def write(path: Path, data: list[dict]) -> Path:
    """Write records in the format of ``path``'s extension."""
    if path.suffix in (".csv", ".tsv"):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(data[0]), delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(data)
    elif path.suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(data), path)
    return path


def files(tmp_path: Path, ext: str = ".csv", labels=LABELS, val: bool = False, tag: str = "d") -> dict[str, str]:
    out = {
        "train": str(write(tmp_path / f"{tag}-train{ext}", records(labels, 4, "train"))),
        "test": str(write(tmp_path / f"{tag}-test{ext}", records(labels, 2, "test"))),
    }
    if val:
        out["val"] = str(write(tmp_path / f"{tag}-val{ext}", records(labels, 1, "val")))
    return out


def build(**options):
    return benchmarks.build({"name": "text-classification", **options})


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_format_gives_the_same_stream(tmp_path, ext):
    bench = build(files=files(tmp_path, ext, val=True), n_tasks=2)
    stream = bench.tasks(0)
    assert bench.label_names == sorted(LABELS) and bench.scenario == "class-il"
    assert [t.classes for t in stream] == [(0, 1), (2, 3)]
    assert [len(t.train) for t in stream] == [8, 8] and len(stream[0].val) == 2
    assert stream[0].train["instruction"][0] == "Classify this text."


def test_relative_paths_resolve_under_data_dir(tmp_path):
    files(tmp_path)
    bench = build(files={"train": "d-train.csv", "test": "d-test.csv"}, data_dir=str(tmp_path))
    assert len(bench.tasks(0)) == 1


def test_class_groups_by_name_or_id_with_subsampling_and_determinism(tmp_path):
    bench = build(files=files(tmp_path), class_groups=[["world", 0], ["science"]], train_per_class=3, test_per_class=1)
    stream = bench.tasks(5)
    assert [t.classes for t in stream] == [(3, 0), (1,)]  # sorted: business science sports world
    assert Counter(stream[0].train["label"]) == {3: 3, 0: 3} and len(stream[1].test) == 1
    assert [t.train.to_dict() for t in stream] == [t.train.to_dict() for t in bench.tasks(5)]


def test_shuffled_chunks_depend_on_the_seed(tmp_path):
    bench = build(files=files(tmp_path), n_tasks=4, shuffle_order=True)
    orders = {tuple(t.classes for t in bench.tasks(seed)) for seed in range(6)}
    assert len(orders) > 1


def test_integer_labels_and_given_label_names(tmp_path):
    data = [{"text": f"t{i}", "label": i % 3 + 1} for i in range(12)]
    paths = {"train": str(write(tmp_path / "a.json", data)), "test": str(write(tmp_path / "b.json", data))}
    assert build(files=paths).label_names == ["1", "2", "3"]
    zero_based = [{"text": f"t{i}", "label": i % 2} for i in range(8)]
    paths = {
        "train": str(write(tmp_path / "c.jsonl", zero_based)),
        "test": str(write(tmp_path / "d.jsonl", zero_based)),
    }
    bench = build(files=paths, label_names=["neg", "pos"], class_groups=[["neg"], ["pos"]], scenario="task-il")
    assert [t.train["label"][0] for t in bench.tasks(0)] == [0, 1]


def test_custom_columns_joined_text(tmp_path):
    data = [{"premise": f"p{i}", "hypothesis": f"h{i}", "gold": "yes" if i % 2 else "no"} for i in range(6)]
    paths = {"train": str(write(tmp_path / "nli.csv", data)), "test": str(write(tmp_path / "nli2.csv", data))}
    bench = build(files=paths, text_column=["premise", "hypothesis"], label_column="gold")
    assert bench.tasks(0)[0].train["text"][0] == "p0\nh0"


def test_sequence_class_il_prefixes_shared_names(tmp_path):
    a = files(tmp_path, labels=["pos", "neg"], tag="a")
    b = files(tmp_path, ".jsonl", labels=["pos", "neg", "neutral"], tag="b")
    bench = build(sequence=[{"files": a, "name": "yelp"}, {"files": b, "instruction": "Rate it."}])
    stream = bench.tasks(0)
    assert [t.name for t in stream] == ["yelp", "b-train"]
    assert bench.label_names == ["yelp/neg", "yelp/pos", "b-train/neg", "neutral", "b-train/pos"]
    assert [t.classes for t in stream] == [(0, 1), (2, 3, 4)]
    assert stream[1].train["instruction"][0] == "Rate it."


def test_sequence_domain_il_shares_labels(tmp_path):
    a = files(tmp_path, labels=["pos", "neg"], tag="a")
    b = files(tmp_path, labels=["neg", "pos"], tag="b")
    bench = build(sequence=[{"files": a}, {"files": b}], scenario="domain-il")
    stream = bench.tasks(0)
    assert bench.label_names == ["neg", "pos"] and [t.classes for t in stream] == [(0, 1), (0, 1)]
    with pytest.raises(DataError, match="label 'pos' outside the shared label set"):
        build(sequence=[{"files": a}, {"files": b}], scenario="domain-il", label_names=["neg", "meh"]).tasks(0)


# ---------------------------------------------------------------- errors


def test_missing_text_or_label_column_names_the_columns_present(tmp_path):
    paths = files(tmp_path)
    with pytest.raises(DataError, match=r"no column 'sentence'; columns present: 'text', 'label'"):
        build(files=paths, text_column="sentence")
    with pytest.raises(DataError, match=r"no column 'category'; columns present: 'text', 'label'"):
        build(files=paths, label_column="category")


def test_file_not_utf8(tmp_path):
    paths = files(tmp_path)
    Path(paths["train"]).write_bytes("text,label\ncaf\xe9,sports\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"d-train\.csv: not a UTF-8 text file \(invalid byte at line 2"):
        build(files=paths)


@pytest.mark.parametrize(
    ("ext", "content", "message"),
    [
        (".csv", 'text,label\n"unclosed,sports\nx,y,z\n', "corrupt CSV"),
        (".csv", "text,label\na,sports,extra\n", "corrupt CSV at line 2: 3 fields"),
        (".json", '[{"text": "a", "label": "x"},', "corrupt JSON at line 1"),
        (".jsonl", '{"text": "a", "label": "x"}\n{"text": \n', "corrupt JSON Lines at line 2"),
        (".json", '"just a string"', "expected a list of records"),
        (".parquet", "not parquet at all", "corrupt Parquet"),
        (".xml", "<a/>", "unknown file format '.xml'"),
    ],
)
def test_corrupt_files(tmp_path, ext, content, message):
    paths = files(tmp_path)
    bad = tmp_path / f"bad{ext}"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        build(files={**paths, "train": str(bad)})


def test_label_outside_label_set(tmp_path):
    with pytest.raises(DataError, match="label 'science' outside the label set"):
        build(files=files(tmp_path), label_names=["sports", "business", "world"])


def test_empty_task(tmp_path):
    bench = build(files=files(tmp_path), label_names=[*LABELS, "weather"], class_groups=[["sports"], ["weather"]])
    with pytest.raises(DataError, match=r"task 1 \('task-1'\) has an empty train split"):
        bench.tasks(0)


def test_class_repeated_across_tasks(tmp_path):
    bench = build(files=files(tmp_path), class_groups=[["sports", "world"], ["world"]])
    with pytest.raises(DataError, match="appears in tasks 0 and 1"):
        bench.tasks(0)


def test_missing_file_and_hub_rules(tmp_path, monkeypatch):
    paths = {"train": str(tmp_path / "nope.csv"), "test": str(tmp_path / "nope2.csv")}
    with pytest.raises(DataError, match=r"missing data file .*nope\.csv \(files\.train\)"):
        build(files=paths)
    with pytest.raises(DataError, match="set hub: true"):
        build(dataset="ag_news")
    hub = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}).cast_column(
                "label", datasets.ClassLabel(names=["neg", "pos"])
            ),
            "test": datasets.Dataset.from_dict({"text": ["c", "d"], "label": [1, 0]}).cast_column(
                "label", datasets.ClassLabel(names=["neg", "pos"])
            ),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda name, subset: hub)
    bench = build(files=paths, dataset="some/sentiment", hub=True, n_tasks=2)
    assert bench.label_names == ["neg", "pos"] and len(bench.tasks(0)) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give 'files'"),
        ({"files": {"train": "a.csv"}}, "files needs keys train and test"),
        ({"files": {"train": "a", "test": "b", "dev": "c"}}, "files needs keys train and test"),
        ({"dataset": "x", "n_tasks": 2, "class_groups": [["a"]]}, "class_groups or n_tasks, not both"),
        ({"dataset": "x", "n_tasks": 0}, "n_tasks must be >= 1"),
        ({"dataset": "x", "scenario": "domain-il"}, "domain-il needs a 'sequence'"),
        ({"dataset": "x", "sequence": [{"dataset": "y"}]}, "with 'sequence'"),
        ({"sequence": [{"name": "t"}]}, r"sequence\[0\]: give 'files'"),
        ({"sequence": []}, "give 'files'"),
    ],
)
def test_config_validation(options, message):
    with pytest.raises(ConfigError, match=message):
        build(**options)


def test_unknown_class_in_groups_and_too_many_chunks(tmp_path):
    paths = files(tmp_path)
    with pytest.raises(ConfigError, match=r"class_groups\[0\]: 'weather' is not a label"):
        build(files=paths, class_groups=[["weather"]]).tasks(0)
    with pytest.raises(ConfigError, match="n_tasks 5 exceeds the 4 classes"):
        build(files=paths, n_tasks=5).tasks(0)


def test_duplicate_sequence_names(tmp_path):
    a = files(tmp_path, tag="a")
    with pytest.raises(ConfigError, match="task names must be unique"):
        build(sequence=[{"files": a}, {"files": a}])


def test_label_texts_option_overrides_the_verbalizer(tmp_path):
    from clft.backbones.hf_common import label_words

    bench = build(files=files(tmp_path), n_tasks=2, label_texts={"science": "science and technology"})
    assert label_words(bench) == ["business", "science and technology", "sports", "world"]
    assert build(files=files(tmp_path), n_tasks=2).label_texts is None  # no override: names made phrases
    with pytest.raises(ConfigError, match=r"label_texts: 'Science' is not a label name .*'business', 'science'"):
        build(files=files(tmp_path), n_tasks=2, label_texts={"Science": "x"})
