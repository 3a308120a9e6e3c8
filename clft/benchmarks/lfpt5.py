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
line; ``valid.txt`` becomes ``Task.val``. DBpedia's athlete class is spelled
``thlete`` in the published files; it is kept as published unless
``fix_label_typos: true``.

LFPT5's protocol (``Classification/Classification.py``): run k = 0, 1, 2 seeds
Python's ``random`` with 42 + 100k, reads the sample ``k_<42+100k>`` and
shuffles the four datasets with ``random.shuffle``, which gives the three task
orders of :data:`LFPT5_ORDERS` (orders 1-3 of the standard text-classification
stream of de Masson d'Autume et al. 2019: one order per published sample).
``split_seed: seed`` reads the sample of the run seed (seeds 0, 1, 2: one run
per published sample) and ``order: lfpt5`` takes that sample's LFPT5 order, so
``seeds: [0, 1, 2]`` runs LFPT5's three runs. Otherwise the task order is the
``order`` list (``shuffle_order`` permutes it with the run seed). Label ids are
disjoint across datasets, in the ``order`` list's order (in ``ag_news, amazon,
dbpedia, yahoo`` order for ``order: lfpt5``), whatever order the stream takes;
names shared by two datasets are prefixed (``ag_news/sports``) and
``label_texts`` keeps the raw verbalisers (the ``label_texts`` option overrides
them per label, ``clft.benchmarks.text_common``).
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
from clft.errors import ConfigError
from clft.registry import benchmarks
from clft.types import Benchmark, Task

SOURCE = "https://github.com/qcwthu/Lifelong-Fewshot-Language-Learning (Classification/textclassificationdata/)"
ROOTS = ("lfpt5_fewshot", "textclassificationdata", "")
SEED_FOLDERS = {0: "0_42", 1: "1_142", 2: "2_242"}
SPLIT_FILES = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}
TYPOS = {"thlete": "athlete"}
# published sample -> LFPT5's task order for it: random.seed(42 + 100k); random.shuffle(range(4)) over
# (ag_news, amazon, dbpedia, yahoo) in Classification.py (tests/benchmarks re-derive these)
LFPT5_ORDERS = {0: ("dbpedia", "amazon", "yahoo", "ag_news"), 1: ("dbpedia", "amazon", "ag_news", "yahoo"),
                2: ("yahoo", "amazon", "ag_news", "dbpedia")}

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
        order: list[str] | Literal["lfpt5"] = field(default_factory=lambda: ["ag_news", "amazon", "dbpedia", "yahoo"])
        """Datasets in stream order (each once): ag_news, amazon, dbpedia, yahoo; or ``lfpt5``: the order
        LFPT5's code drew for the sample in use (``LFPT5_ORDERS``)."""
        shuffle_order: bool = False
        """Shuffle the ``order`` list with the run seed (not with ``order: lfpt5``)."""
        split_seed: Literal[0, 1, 2, "seed"] = 0
        """Which published few-shot sample: 0 -> folder 0_42, 1 -> 1_142, 2 -> 2_242; ``seed``: the run
        seed's (run seeds 0, 1, 2: one run per published sample)."""
        scenario: Literal["task-il", "class-il"] = "task-il"
        """task-il: predict among the dataset's own labels; class-il: among all labels seen so far."""
        fix_label_typos: bool = False
        """Rename DBpedia's published label 'thlete' to 'athlete' (data otherwise as published)."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.order == "lfpt5":
                if self.shuffle_order:
                    raise ValueError("shuffle_order: order lfpt5 is LFPT5's own order per sample; "
                                     "give shuffle_order false, or an order list to shuffle")
                return
            unknown = [name for name in self.order if name not in DATASETS]
            if unknown or not self.order or len(set(self.order)) != len(self.order):
                problem = f"unknown dataset(s) {unknown}" if unknown else "an empty list or a repeated dataset"
                raise ValueError(f"order: {problem}; valid datasets: {', '.join(DATASETS)}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        self.id_order = list(DATASETS) if config.order == "lfpt5" else list(config.order)
        self._names = {name: [self._fix(label) for label in DATASETS[name][1]] for name in self.id_order}
        raw = [(name, self._names[name]) for name in self.id_order]
        self.label_names = unique_label_names(raw)
        self.label_texts = verbalizer(config, self.label_names, [label for _, names in raw for label in names])

    def _fix(self, label: str) -> str:
        return TYPOS.get(label, label) if self.config.fix_label_typos else label

    def split_of(self, seed: int) -> int:
        """The published sample a run with ``seed`` reads (``split_seed``; ConfigError for ``seed`` outside 0-2)."""
        if self.config.split_seed != "seed":
            return self.config.split_seed
        if seed not in SEED_FOLDERS:
            raise ConfigError(f"lfpt5-fewshot: split_seed seed reads the published sample of the run seed, which "
                              f"must be 0, 1 or 2 (folders {', '.join(SEED_FOLDERS.values())}); got seed {seed}")
        return seed

    def order_of(self, split: int, seed: int) -> list[str]:
        """The stream's datasets for sample ``split`` and run ``seed`` (``order``, ``shuffle_order``)."""
        if self.config.order == "lfpt5":
            return list(LFPT5_ORDERS[split])
        return seeded_order(self.config.order, self.config.shuffle_order, seed)

    def tasks(self, seed: int) -> list[Task]:
        offsets, offset = {}, 0
        for name in self.id_order:  # label ids follow ``id_order`` whatever order the stream takes
            offsets[name], offset = offset, offset + len(self._names[name])
        split = self.split_of(seed)
        stream = []
        for task_id, name in enumerate(self.order_of(split, seed)):
            classes = list(range(offsets[name], offsets[name] + len(self._names[name])))
            splits = {key: self._split(name, key, offsets[name], split) for key in SPLIT_FILES}
            stream.append(build_task(task_id, name, classes, splits, DATASETS[name][2], self.config, seed))
        check_disjoint_classes(stream, self.scenario)
        return stream

    def _split(self, name: str, split: str, offset: int, sample: int) -> Split:
        folder = f"{DATASETS[name][0]}/{SEED_FOLDERS[sample]}"
        folders = [f"{root}/{folder}" if root else folder for root in ROOTS]
        path = locate(self.config, folders, SPLIT_FILES[split], f"LFPT5 {name} {split} split", SOURCE)
        pairs = read_tab_pairs(path)
        labels = [self._fix(label) for _, label in pairs]
        return [text for text, _ in pairs], [offset + i for i in encode_labels(labels, self._names[name], str(path))]
