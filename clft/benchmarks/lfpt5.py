"""Few-shot text classification stream of LFPT5 (one task per dataset).

Qin & Joty, "LFPT5: A Unified Framework for Lifelong Few-shot Language
Learning Based on Prompt Tuning of T5", ICLR 2022; data: github
qcwthu/Lifelong-Fewshot-Language-Learning ``Classification/textclassificationdata``
(MIT).

Four datasets (AG News 4 classes, Amazon 5, DBpedia 14, Yahoo Answers 10),
each with three published samples (``split_seed`` 0/1/2 = folders ``0_42``,
``1_142``, ``2_242``) of 16 train and 16 validation examples per class and a
test set (AG 400, Amazon 500, DBpedia 1,400, Yahoo 1,000). Files
``<dataset>_csv/<folder>/{train,valid,test}.txt``, one ``text<TAB>label`` per
line; ``valid.txt`` becomes ``Task.val``. The task order is ``order`` (LFPT5
shuffled it per run: set ``shuffle_order``). Label ids are disjoint across
datasets, in stream order; names shared by two datasets are prefixed
(``ag_news/sports``) and ``label_texts`` keeps the raw verbalisers (the
``label_texts`` option overrides them per label, ``clft.benchmarks.text_common``). DBpedia's
athlete class is spelled ``thlete`` in the published files; it is kept as
published unless ``fix_label_typos: true``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clft.benchmarks.text_common import (
    Split,
    TextConfig,
    build_task,
    encode_labels,
    locate,
    seeded_order,
    unique_label_names,
    verbalizer,
)
from clft.benchmarks.text_io import read_tab_pairs
from clft.data import check_disjoint_classes
from clft.registry import benchmarks
from clft.types import Benchmark, Task

SOURCE = "https://github.com/qcwthu/Lifelong-Fewshot-Language-Learning (Classification/textclassificationdata/)"
ROOTS = ("lfpt5_fewshot", "textclassificationdata", "")
SEED_FOLDERS = {0: "0_42", 1: "1_142", 2: "2_242"}
SPLIT_FILES = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}
TYPOS = {"thlete": "athlete"}

# dataset -> (folder, label names in LFPT5's order, as spelled in the files, instruction)
DATASETS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ag_news": ("ag_news_csv", ("world", "sports", "business", "science"), "Classify the topic of this news article."),
    "amazon": (
        "amazon_review_full_csv",
        ("terrible", "bad", "middle", "good", "wonderful"),
        "Rate the sentiment of this product review.",
    ),
    "dbpedia": (
        "dbpedia_csv",
        ("company", "educationalinstitution", "artist", "thlete", "officeholder", "meanoftransportation", "building",
         "naturalplace", "village", "animal", "plant", "album", "film", "writtenwork"),
        "Classify the category of the subject of this encyclopedia article.",
    ),
    "yahoo": (
        "yahoo_answers_csv",
        ("society and culture", "science", "health", "education and reference", "computers and internet", "sports",
         "business", "entertainment and Music", "family and relationships", "politics and government"),
        "Classify the topic of this question and answer.",
    ),
}  # fmt: skip


@benchmarks.register()
class LFPT5FewShot(Benchmark):
    """LFPT5 few-shot text classification: 4 tasks of 16 examples per class (see the module docstring)."""

    name = "lfpt5-fewshot"
    input_kind = "text"
    scenarios = ("task-il", "class-il")

    @dataclass
    class Config(TextConfig):
        order: list[str] = field(default_factory=lambda: ["ag_news", "amazon", "dbpedia", "yahoo"])
        """Datasets in stream order (each once): ag_news, amazon, dbpedia, yahoo."""
        shuffle_order: bool = False
        """Shuffle ``order`` with the run seed (as LFPT5 did per run)."""
        split_seed: Literal[0, 1, 2] = 0
        """Which published few-shot sample: 0 -> folder 0_42, 1 -> 1_142, 2 -> 2_242."""
        scenario: Literal["task-il", "class-il"] = "task-il"
        """task-il: predict among the dataset's own labels; class-il: among all labels seen so far."""
        fix_label_typos: bool = False
        """Rename DBpedia's published label 'thlete' to 'athlete' (data otherwise as published)."""

        def __post_init__(self) -> None:
            super().__post_init__()
            unknown = [name for name in self.order if name not in DATASETS]
            if unknown or not self.order or len(set(self.order)) != len(self.order):
                problem = f"unknown dataset(s) {unknown}" if unknown else "an empty list or a repeated dataset"
                raise ValueError(f"order: {problem}; valid datasets: {', '.join(DATASETS)}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        self._names = {name: [self._fix(label) for label in DATASETS[name][1]] for name in config.order}
        raw = [(name, self._names[name]) for name in config.order]
        self.label_names = unique_label_names(raw)
        self.label_texts = verbalizer(config, self.label_names, [label for _, names in raw for label in names])

    def _fix(self, label: str) -> str:
        return TYPOS.get(label, label) if self.config.fix_label_typos else label

    def tasks(self, seed: int) -> list[Task]:
        offsets, offset = {}, 0
        for name in self.config.order:  # label ids follow ``order`` even when the stream is shuffled
            offsets[name], offset = offset, offset + len(self._names[name])
        stream = []
        for task_id, name in enumerate(seeded_order(self.config.order, self.config.shuffle_order, seed)):
            classes = list(range(offsets[name], offsets[name] + len(self._names[name])))
            splits = {key: self._split(name, key, offsets[name]) for key in SPLIT_FILES}
            stream.append(build_task(task_id, name, classes, splits, DATASETS[name][2], self.config, seed))
        check_disjoint_classes(stream, self.scenario)
        return stream

    def _split(self, name: str, split: str, offset: int) -> Split:
        folder = f"{DATASETS[name][0]}/{SEED_FOLDERS[self.config.split_seed]}"
        folders = [f"{root}/{folder}" if root else folder for root in ROOTS]
        path = locate(self.config, folders, SPLIT_FILES[split], f"LFPT5 {name} {split} split", SOURCE)
        pairs = read_tab_pairs(path)
        labels = [self._fix(label) for _, label in pairs]
        return [text for text, _ in pairs], [offset + i for i in encode_labels(labels, self._names[name], str(path))]
