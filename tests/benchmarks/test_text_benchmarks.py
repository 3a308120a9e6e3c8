"""Text benchmarks on tiny fixture files in their published formats (no real data needed).

clinc150, banking77, text-cl-standard / text-cl-long (O-LoRA layout) and
lfpt5-fewshot: determinism for a seed, per-class subsampling, disjoint classes,
instructions, the published YAML streams, and every DataError path.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import datasets
import pytest
import yaml

import clft.benchmarks  # noqa: F401  (registers the built-ins)
from clft.config import make_dataclass_instance
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks

REPO = Path(__file__).resolve().parents[2]
TEXT_BENCHMARKS = ("clinc150", "banking77", "text-cl-standard", "text-cl-long", "lfpt5-fewshot")
DOMAINS = {
    "banking": ["balance", "transfer"],
    "travel": ["book_flight", "book_hotel", "car_rental"],
    "meta": ["repeat"],
}
BANKING = ["card_arrival", "age_limit", "pin_blocked", "top_up", "refund", "cash"]
OLORA = {
    "TC/agnews": ["World", "Sports", "Business", "Science or Technology"],
    "TC/dbpedia": ["Company", "Artist", "Athlete"],
    "TC/yahoo": ["Sports", "Health", "Politics & Government"],
    "SC/amazon": ["very negative", "negative", "neutral", "positive", "very positive"],
    "NLI/MNLI": ["neutral", "entailment", "contradiction"],
}
LFPT5 = {
    "ag_news_csv": ["world", "sports", "business", "science"],
    "amazon_review_full_csv": ["terrible", "bad", "middle", "good", "wonderful"],
    "dbpedia_csv": ["company", "educationalinstitution", "artist", "thlete", "officeholder", "meanoftransportation",
                    "building", "naturalplace", "village", "animal", "plant", "album", "film", "writtenwork"],
    "yahoo_answers_csv": ["society and culture", "science", "health", "education and reference",
                          "computers and internet", "sports", "business", "entertainment and Music",
                          "family and relationships", "politics and government"],
}  # fmt: skip


@pytest.fixture(autouse=True)
def no_env_data_dir(monkeypatch):
    monkeypatch.delenv("CLFT_DATA_DIR", raising=False)


def rows(labels, per_label, tag):
    return [[f"{tag} {label} example {i}", label] for label in labels for i in range(per_label)]


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_clinc(root: Path) -> Path:
    intents = [i for names in DOMAINS.values() for i in names]
    data = {
        "train": rows(intents, 6, "train"),
        "val": rows(intents, 2, "val"),
        "test": rows(intents, 3, "test"),
        "oos_train": rows(["oos"], 4, "train"),
        "oos_val": rows(["oos"], 1, "val"),
        "oos_test": rows(["oos"], 2, "test"),
    }
    write_json(root / "clinc150" / "data_full.json", data)
    write_json(root / "clinc150" / "domains.json", DOMAINS)
    return root


def write_banking(root: Path, categories: bool = True, header=("text", "category")) -> Path:
    folder = root / "banking77"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 5), ("test", 3)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows(BANKING, n, f"{split}, with a comma"))
    if categories:
        write_json(folder / "categories.json", BANKING)
    return root


def write_olora(root: Path, skip=("TC/dbpedia/train.json",)) -> Path:
    for folder, labels in OLORA.items():
        base = root / "olora_cl_benchmark" / folder
        write_json(base / "labels.json", labels)
        for split, n in (("train", 4), ("test", 3), ("dev", 3)):
            records = [{"sentence": text, "label": label} for text, label in rows(labels, n, f"{folder} {split}")]
            if folder == "NLI/MNLI" and split == "test":
                records.append({"sentence": "no gold label", "label": "-"})
            if f"{folder}/{split}.json" not in skip:
                write_json(base / f"{split}.json", records)
    return root


def write_lfpt5(root: Path) -> Path:
    for folder, labels in LFPT5.items():
        for seed_folder in ("0_42", "1_142", "2_242"):
            base = root / "lfpt5_fewshot" / folder / seed_folder
            base.mkdir(parents=True, exist_ok=True)
            for split, n in (("train", 16), ("valid", 16), ("test", 5)):
                lines = [f"{seed_folder} {text}\t{label}" for text, label in rows(labels, n, split)]
                (base / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_all(root: Path) -> Path:
    for writer in (write_clinc, write_banking, write_lfpt5):
        writer(root)
    write_olora(root, skip=())
    return root


def build(name: str, root: Path | None, **options):
    spec = {"name": name, **options}
    if root is not None:
        spec["data_dir"] = str(root)
    return benchmarks.build(spec)


SMALL = {
    "clinc150": {},
    "banking77": {"n_tasks": 3},
    "text-cl-standard": {},
    "text-cl-long": {"order": ["mnli", "agnews", "amazon"]},
    "lfpt5-fewshot": {},
}


def snapshot(stream):
    return [(t.id, t.name, t.classes, t.train.to_dict(), t.test.to_dict()) for t in stream]


# ---------------------------------------------------------------- shared properties


@pytest.mark.parametrize("name", TEXT_BENCHMARKS)
def test_stream_is_deterministic_disjoint_and_well_formed(tmp_path, name):
    bench = build(name, write_all(tmp_path), **SMALL[name])
    stream = bench.tasks(seed=3)
    assert snapshot(stream) == snapshot(bench.tasks(seed=3))
    assert len(set(bench.label_names)) == len(bench.label_names)
    owners = Counter(c for task in stream for c in task.classes)
    assert all(count == 1 for count in owners.values())
    for task in stream:
        for split in (task.train, task.test, task.val):
            if split is None:
                continue
            assert {"text", "label", "task", "instruction"} <= set(split.column_names)
            assert set(split["label"]) <= set(task.classes) and set(split["task"]) == {task.id}
            assert len(set(split["instruction"])) == 1 and split["instruction"][0]
            assert all(isinstance(text, str) and text for text in split["text"])


@pytest.mark.parametrize("name", TEXT_BENCHMARKS)
def test_subsampling_caps_each_class_and_depends_on_the_seed(tmp_path, name):
    bench = build(name, write_all(tmp_path), train_per_class=2, test_per_class=1, **SMALL[name])
    stream = bench.tasks(seed=0)
    for task in stream:
        assert Counter(task.train["label"]) == dict.fromkeys(task.classes, 2)
        assert Counter(task.test["label"]) == dict.fromkeys(task.classes, 1)
        if task.val is not None:
            assert Counter(task.val["label"]) == dict.fromkeys(task.classes, 1)
    texts = {seed: [t.train["text"] for t in bench.tasks(seed=seed)] for seed in range(4)}
    assert len({str(v) for v in texts.values()}) > 1


@pytest.mark.parametrize("name", TEXT_BENCHMARKS)
def test_no_data_directory_names_the_file_and_its_source(name):
    with pytest.raises(DataError, match=r"CLFT_DATA_DIR.*github"):
        build(name, None, **SMALL[name]).tasks(0)


@pytest.mark.parametrize("name", TEXT_BENCHMARKS)
def test_label_texts_option_overrides_the_verbalizer_of_the_named_labels(tmp_path, name):
    from clft.backbones.hf_common import label_words

    root = write_all(tmp_path)
    plain = build(name, root, **SMALL[name])
    words = label_words(plain)
    first, last = plain.label_names[0], plain.label_names[-1]
    bench = build(name, root, label_texts={first: "alpha", last: "omega words"}, **SMALL[name])
    assert label_words(bench) == ["alpha", *words[1:-1], "omega words"]  # a partial mapping
    assert snapshot(bench.tasks(0)) == snapshot(plain.tasks(0))  # the stream itself is unchanged
    with pytest.raises(ConfigError, match=rf"label_texts: 'nope' is not a label name .*labels: {first!r}"):
        build(name, root, label_texts={"nope": "x"}, **SMALL[name])
    with pytest.raises(ConfigError, match=rf"label_texts: the word for {first!r} is empty"):
        build(name, root, label_texts={first: " "}, **SMALL[name])


def test_every_text_config_benchmark_is_covered_by_the_label_texts_tests():
    from clft.benchmarks.text_common import TextConfig

    text = {name for name in benchmarks.names() if issubclass(benchmarks.get(name).Config, TextConfig)}
    assert text == {*TEXT_BENCHMARKS, "text-classification"}  # text-classification: its own test file


@pytest.mark.parametrize("key", ["train_per_class", "test_per_class"])
def test_per_class_must_be_positive(tmp_path, key):
    with pytest.raises(ConfigError, match=key):
        build("clinc150", tmp_path, **{key: 0})


@pytest.mark.parametrize("path", sorted((REPO / "benchmarks").glob("*.yaml")), ids=lambda p: p.name)
def test_published_stream_yaml_is_a_valid_benchmark_config(path):
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    options = dict(spec)
    cls = benchmarks.get(options.pop("name"))
    make_dataclass_instance(cls.Config, options, where=path.name)


# ---------------------------------------------------------------- clinc150


def test_clinc_by_domain_follows_domains_json_and_drops_out_of_scope(tmp_path):
    bench = build("clinc150", write_clinc(tmp_path))
    stream = bench.tasks(0)
    assert [t.name for t in stream] == list(DOMAINS)
    assert bench.label_names == [i for names in DOMAINS.values() for i in names]
    assert [len(t.train) for t in stream] == [12, 18, 6] and [len(t.val) for t in stream] == [4, 6, 2]
    assert "oos" not in bench.label_names and bench.scenario == "class-il"
    assert [bench.label_names[c] for c in stream[1].classes] == DOMAINS["travel"]


def test_clinc_shuffle_order_permutes_domains_by_seed(tmp_path):
    bench = build("clinc150", write_clinc(tmp_path), shuffle_order=True)
    orders = {tuple(t.name for t in bench.tasks(seed)) for seed in range(8)}
    assert len(orders) > 1 and all(sorted(o) == sorted(DOMAINS) for o in orders)
    assert bench.label_names == build("clinc150", tmp_path).label_names  # ids never depend on the seed


def test_clinc_chunks_are_uneven_and_optionally_shuffled(tmp_path):
    write_clinc(tmp_path)
    fixed = build("clinc150", tmp_path, split="chunks", n_tasks=4, scenario="task-il").tasks(0)
    assert [t.classes for t in fixed] == [(0, 1), (2, 3), (4,), (5,)]
    shuffled = build("clinc150", tmp_path, split="chunks", n_tasks=2, shuffle_order=True)
    assert sorted(c for t in shuffled.tasks(1) for c in t.classes) == list(range(6))
    with pytest.raises(DataError, match="cannot cut 6 intents into 7"):
        build("clinc150", tmp_path, split="chunks", n_tasks=7).tasks(0)
    with pytest.raises(ConfigError, match="n_tasks"):
        build("clinc150", tmp_path, split="chunks", n_tasks=151)


def test_clinc_missing_domains_or_unknown_intent(tmp_path):
    write_clinc(tmp_path)
    (tmp_path / "clinc150" / "domains.json").unlink()
    with pytest.raises(DataError, match=r"clinc150/domains\.json.*oos-eval"):
        build("clinc150", tmp_path)
    write_json(tmp_path / "clinc150" / "domains.json", {"banking": ["balance"]})
    with pytest.raises(DataError, match="label 'transfer' outside the label set"):
        build("clinc150", tmp_path)


def test_clinc_corrupt_json_names_file_and_line(tmp_path):
    write_clinc(tmp_path)
    (tmp_path / "clinc150" / "data_full.json").write_text('{"train": [["a", "b"],\n oops', encoding="utf-8")
    with pytest.raises(DataError, match=r"data_full\.json: corrupt JSON at line 2"):
        build("clinc150", tmp_path)


def test_clinc_repeated_intent_across_domains_is_rejected(tmp_path):
    write_clinc(tmp_path)
    write_json(tmp_path / "clinc150" / "domains.json", {**DOMAINS, "meta": ["repeat", "balance"]})
    with pytest.raises(DataError, match="appears in tasks 0 and 2"):
        build("clinc150", tmp_path).tasks(0)


def test_clinc_hub_fallback_only_when_asked(tmp_path, monkeypatch):
    write_clinc(tmp_path)
    (tmp_path / "clinc150" / "data_full.json").unlink()
    with pytest.raises(DataError, match=r"data_full\.json.*hub: true"):
        build("clinc150", tmp_path)
    intents = [*(i for names in DOMAINS.values() for i in names), "oos"]
    feature = datasets.ClassLabel(names=intents)

    def split(n):
        labels = [i % len(intents) for i in range(n)]
        return datasets.Dataset.from_dict(
            {"text": [f"q{i}" for i in range(n)], "intent": labels},
            features=datasets.Features({"text": datasets.Value("string"), "intent": feature}),
        )

    calls = []
    fake = {"train": split(21), "validation": split(14), "test": split(14)}
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: calls.append(args) or fake)
    stream = build("clinc150", tmp_path, hub=True).tasks(0)
    assert calls == [("clinc/clinc_oos", "plus")]
    assert sum(len(t.train) for t in stream) == 18  # the 3 'oos' rows are dropped


# ---------------------------------------------------------------- banking77


def test_banking_label_order_from_categories_json_else_sorted(tmp_path):
    bench = build("banking77", write_banking(tmp_path), n_tasks=4)
    assert bench.label_names == BANKING
    assert [len(t.classes) for t in bench.tasks(0)] == [2, 2, 1, 1]
    (tmp_path / "banking77" / "categories.json").unlink()
    assert build("banking77", tmp_path).label_names == sorted(BANKING)


def test_banking_wrong_header_names_the_columns_present(tmp_path):
    write_banking(tmp_path, header=("utterance", "category"))
    with pytest.raises(DataError, match=r"no column 'text'; columns present: 'utterance', 'category'"):
        build("banking77", tmp_path)


def test_banking_ragged_csv_and_bad_encoding(tmp_path):
    write_banking(tmp_path)
    train = tmp_path / "banking77" / "train.csv"
    train.write_text("text,category\nhello,card_arrival\nbad,row,here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.csv: corrupt CSV at line 3: 3 fields"):
        build("banking77", tmp_path)
    train.write_bytes("text,category\nna\xefve,card_arrival\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train\.csv: not a UTF-8 text file"):
        build("banking77", tmp_path)


def test_banking_missing_test_file_and_hub(tmp_path, monkeypatch):
    write_banking(tmp_path)
    (tmp_path / "banking77" / "test.csv").unlink()
    with pytest.raises(DataError, match=r"banking77/test\.csv.*PolyAI.*hub: true"):
        build("banking77", tmp_path)

    def fail(*args):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError, match="cannot load Banking77 from the HuggingFace hub dataset PolyAI/banking77"):
        build("banking77", tmp_path, hub=True)


# ---------------------------------------------------------------- text-cl (O-LoRA layout)


def test_text_cl_order_labels_and_prefixes(tmp_path):
    bench = build("text-cl-standard", write_olora(tmp_path, skip=()), order=3)
    stream = bench.tasks(0)
    assert [t.name for t in stream] == ["yahoo", "amazon", "agnews", "dbpedia"]
    assert bench.scenario == "task-il" and stream[0].val is None  # dev.json == test.json: never a val split
    assert bench.label_names[:3] == ["yahoo/Sports", "Health", "Politics & Government"]
    assert "agnews/Sports" in bench.label_names and bench.label_texts[0] == "Sports"
    assert stream[2].classes == tuple(range(8, 12))
    assert [len(t.train) for t in stream] == [12, 20, 16, 12]


def test_text_cl_missing_split_names_the_file(tmp_path):
    bench = build("text-cl-standard", write_olora(tmp_path), order=1)
    with pytest.raises(DataError, match=r"olora_cl_benchmark/TC/dbpedia/train\.json \(dbpedia train split\).*O-LoRA"):
        bench.tasks(0)


def test_text_cl_unlabeled_rows(tmp_path):
    write_olora(tmp_path)
    stream = build("text-cl-long", tmp_path, order=["mnli"]).tasks(0)
    assert len(stream[0].test) == 9
    with pytest.raises(DataError, match="label '-' outside the label set"):
        build("text-cl-long", tmp_path, order=["mnli"], drop_unlabeled=False).tasks(0)


@pytest.mark.parametrize(
    ("name", "order", "message"),
    [
        ("text-cl-standard", 4, "order must be one of 1, 2, 3"),
        ("text-cl-long", 1, "order must be one of 4, 5, 6"),
        ("text-cl-long", ["mnli", "nope"], r"unknown dataset\(s\) \['nope'\]"),
        ("text-cl-standard", ["agnews", "agnews"], "repeated dataset"),
    ],
)
def test_text_cl_order_validation(tmp_path, name, order, message):
    with pytest.raises(ConfigError, match=message):
        build(name, tmp_path, order=order)


def test_text_cl_long_orders_have_fifteen_distinct_datasets():
    from clft.benchmarks.text_cl import DATASETS, ORDERS

    for order in (4, 5, 6):
        assert sorted(ORDERS[order]) == sorted(DATASETS)
    assert ORDERS[1] == ("dbpedia", "amazon", "yahoo", "agnews")


# ---------------------------------------------------------------- lfpt5


def test_lfpt5_split_seed_folder_val_split_and_typo(tmp_path):
    write_lfpt5(tmp_path)
    bench = build("lfpt5-fewshot", tmp_path, split_seed=2, order=["dbpedia", "ag_news"])
    stream = bench.tasks(0)
    assert stream[0].train[0]["text"].startswith("2_242 ")
    assert len(stream[0].train) == 14 * 16 and len(stream[0].val) == 14 * 16 and len(stream[1].test) == 20
    assert "thlete" in bench.label_names and "athlete" not in bench.label_names
    fixed = build("lfpt5-fewshot", tmp_path, fix_label_typos=True)
    assert "athlete" in fixed.label_names and "thlete" not in fixed.label_names
    fixed.tasks(0)


def test_lfpt5_shuffle_keeps_label_ids(tmp_path):
    bench = build("lfpt5-fewshot", write_lfpt5(tmp_path), shuffle_order=True)
    streams = [bench.tasks(seed) for seed in range(6)]
    assert len({tuple(t.name for t in s) for s in streams}) > 1
    for stream in streams:
        by_name = {t.name: t.classes for t in stream}
        assert by_name["ag_news"] == (0, 1, 2, 3)


def test_lfpt5_orders_are_those_lfpt5s_code_draws():
    import random

    from clft.benchmarks.lfpt5 import LFPT5_ORDERS

    names = ["ag_news", "amazon", "dbpedia", "yahoo"]  # Classification.py's alltaskfold order
    for run in range(3):
        random.seed(42 + 100 * run)  # seed_everything(args) with args.seed = 42 + run * 100
        index = list(range(4))
        random.shuffle(index)
        assert LFPT5_ORDERS[run] == tuple(names[i] for i in index)


def test_lfpt5_split_seed_seed_reads_the_run_seeds_sample_in_its_lfpt5_order(tmp_path):
    from clft.benchmarks.lfpt5 import LFPT5_ORDERS

    bench = build("lfpt5-fewshot", write_lfpt5(tmp_path), split_seed="seed", order="lfpt5")
    assert bench.label_names[:4] == ["world", "ag_news/sports", "ag_news/business", "ag_news/science"]
    for seed, folder in enumerate(("0_42", "1_142", "2_242")):
        stream = bench.tasks(seed)
        assert tuple(t.name for t in stream) == LFPT5_ORDERS[seed]
        assert all(t.train[0]["text"].startswith(f"{folder} ") for t in stream)
        assert {t.name: t.classes for t in stream}["ag_news"] == (0, 1, 2, 3)  # ids in ag/amazon/dbpedia/yahoo order
    with pytest.raises(ConfigError, match="must be 0, 1 or 2.*got seed 3"):
        bench.tasks(3)
    fixed = build("lfpt5-fewshot", tmp_path, split_seed=1)  # a fixed sample whatever the seed
    assert fixed.tasks(2)[0].train[0]["text"].startswith("1_142 ")
    with pytest.raises(ConfigError, match="shuffle_order"):
        build("lfpt5-fewshot", tmp_path, order="lfpt5", shuffle_order=True)


def test_lfpt5_line_without_tab(tmp_path):
    write_lfpt5(tmp_path)
    (tmp_path / "lfpt5_fewshot" / "ag_news_csv" / "0_42" / "test.txt").write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1 has no tab"):
        build("lfpt5-fewshot", tmp_path).tasks(0)
