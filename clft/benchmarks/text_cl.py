"""The standard and long text-classification CL benchmarks (one task per dataset).

Standard (4 tasks: AG News, Amazon, Yahoo Answers, DBpedia) from Zhang et al.
2015 as used by de Masson d'Autume et al. 2019; long (15 tasks: those plus
Yelp, GLUE MNLI/QQP/RTE/SST-2, SuperGLUE CB/WiC/COPA/BoolQ/MultiRC, IMDB) from
Razdaibiedina et al., "Progressive Prompts", ICLR 2023; both with the data and
task orders of Wang et al., "Orthogonal Subspace Learning for Language Model
Continual Learning" (O-LoRA), EMNLP Findings 2023: github cmnfriend/O-LoRA
``CL_Benchmark/`` (MIT). Orders (verified against O-LoRA's scripts and paper):

1. dbpedia, amazon, yahoo, agnews       2. dbpedia, amazon, agnews, yahoo
3. yahoo, amazon, agnews, dbpedia
4. mnli, cb, wic, copa, qqp, boolqa, rte, imdb, yelp, amazon, sst-2, dbpedia, agnews, multirc, yahoo
5. multirc, boolqa, wic, mnli, cb, copa, qqp, rte, imdb, sst-2, dbpedia, agnews, yelp, amazon, yahoo
6. yelp, amazon, mnli, cb, copa, qqp, rte, imdb, sst-2, dbpedia, agnews, yahoo, multirc, boolqa, wic

Local format: ``<folder>/{train,test}.json`` lists of ``{"sentence", "label"}``
plus ``labels.json`` (e.g. ``olora_cl_benchmark/TC/agnews``; published size
e.g. agnews train 4,000 / test 7,600). ``dev.json`` equals ``test.json`` in the
source, so it is NOT used as a validation split (``Task.val`` is None). Each
dataset's labels get their own global ids, in stream order; names shared by two
datasets are prefixed (``agnews/Sports``, ``yahoo/Sports``) and
``label_texts`` keeps the raw verbalisers (the ``label_texts`` option overrides
them per label, ``clft.benchmarks.text_common``). Rows labelled ``-`` (MNLI test:
131 rows without a gold label) are dropped unless ``drop_unlabeled: false``.
No hub fallback: the hub copies are not these samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from clft.benchmarks.text_common import (
    Split,
    TextConfig,
    build_task,
    encode_labels,
    locate,
    unique_label_names,
    verbalizer,
)
from clft.benchmarks.text_io import read_json
from clft.data import check_disjoint_classes
from clft.errors import DataError
from clft.registry import benchmarks
from clft.types import Benchmark, Task

SOURCE = "https://github.com/cmnfriend/O-LoRA (CL_Benchmark/)"
ROOTS = ("olora_cl_benchmark", "CL_Benchmark", "")
UNLABELED = "-"

# dataset -> (folder under CL_Benchmark, instruction)
DATASETS: dict[str, tuple[str, str]] = {
    "agnews": ("TC/agnews", "Classify the topic of this news article."),
    "dbpedia": ("TC/dbpedia", "Classify the category of the subject of this encyclopedia article."),
    "yahoo": ("TC/yahoo", "Classify the topic of this question and answer."),
    "amazon": ("SC/amazon", "Rate the sentiment of this product review."),
    "yelp": ("SC/yelp", "Rate the sentiment of this business review."),
    "imdb": ("SC/IMDB", "Classify the sentiment of this movie review."),
    "sst-2": ("SC/SST-2", "Classify the sentiment of this sentence."),
    "mnli": ("NLI/MNLI", "Classify how the first sentence relates to the second."),
    "cb": ("NLI/CB", "Classify how the first sentence relates to the second."),
    "rte": ("NLI/RTE", "Decide whether the first sentence entails the second."),
    "qqp": ("QQP/QQP", "Decide whether the two questions ask the same thing."),
    "wic": ("WiC/WiC", "Decide whether the word has the same meaning in both sentences."),
    "copa": ("COPA/COPA", "Choose the more plausible alternative."),
    "boolqa": ("BoolQA/BoolQA", "Answer the yes/no question about the passage."),
    "multirc": ("MultiRC/MultiRC", "Decide whether the answer to the question about the paragraph is correct."),
}
ORDERS: dict[int, tuple[str, ...]] = {
    1: ("dbpedia", "amazon", "yahoo", "agnews"),
    2: ("dbpedia", "amazon", "agnews", "yahoo"),
    3: ("yahoo", "amazon", "agnews", "dbpedia"),
    4: ("mnli", "cb", "wic", "copa", "qqp", "boolqa", "rte", "imdb", "yelp", "amazon", "sst-2", "dbpedia", "agnews",
        "multirc", "yahoo"),
    5: ("multirc", "boolqa", "wic", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst-2", "dbpedia", "agnews", "yelp",
        "amazon", "yahoo"),
    6: ("yelp", "amazon", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst-2", "dbpedia", "agnews", "yahoo", "multirc",
        "boolqa", "wic"),
}  # fmt: skip


def check_order(order: int | list[str], allowed: tuple[int, ...]) -> None:
    """ValueError unless ``order`` is one of ``allowed`` or a list of distinct known datasets."""
    if isinstance(order, int):
        if order not in allowed:
            raise ValueError(f"order must be one of {', '.join(map(str, allowed))} or a list of datasets, got {order}")
        return
    unknown = [name for name in order if name not in DATASETS]
    if unknown or not order or len(set(order)) != len(order):
        problem = f"unknown dataset(s) {unknown}" if unknown else "an empty list or a repeated dataset"
        raise ValueError(f"order: {problem}; valid datasets: {', '.join(DATASETS)}")


def read_labels(config: TextConfig, dataset: str) -> list[str]:
    path = locate(config, _folders(dataset), "labels.json", f"{dataset} label names", SOURCE)
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise DataError(f"{path}: expected a JSON list of label names")
    return list(data)


def read_split(config: TextConfig, dataset: str, split: str) -> tuple[list[str], list[str], str]:
    """(sentences, raw labels, path) of ``<dataset>/<split>.json``."""
    path = locate(config, _folders(dataset), f"{split}.json", f"{dataset} {split} split", SOURCE)
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(r, dict) and {"sentence", "label"} <= set(r) for r in data):
        raise DataError(f"{path}: expected a JSON list of {{'sentence', 'label'}} objects")
    return [str(r["sentence"]) for r in data], [str(r["label"]) for r in data], str(path)


def _folders(dataset: str) -> list[str]:
    folder = DATASETS[dataset][0]
    return [f"{root}/{folder}" if root else folder for root in ROOTS]


class _TextCL(Benchmark):
    """One task per dataset of ``ORDERS[order]`` (or a custom list), with disjoint global labels."""

    scenarios = ("task-il", "class-il")
    input_kind = "text"
    orders: ClassVar[tuple[int, ...]]

    def __init__(self, config: TextConfig) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        order = config.order
        self.datasets = list(ORDERS[order] if isinstance(order, int) else order)
        raw = [(name, read_labels(config, name)) for name in self.datasets]
        self.label_names = unique_label_names(raw)
        self.label_texts = verbalizer(config, self.label_names, [label for _, names in raw for label in names])
        self._raw_names = dict(raw)

    def tasks(self, seed: int) -> list[Task]:
        stream, offset = [], 0
        for task_id, dataset in enumerate(self.datasets):
            names = self._raw_names[dataset]
            classes = list(range(offset, offset + len(names)))
            splits = {key: self._split(dataset, key, names, offset) for key in ("train", "test")}
            stream.append(build_task(task_id, dataset, classes, splits, DATASETS[dataset][1], self.config, seed))
            offset += len(names)
        check_disjoint_classes(stream, self.scenario)
        return stream

    def _split(self, dataset: str, split: str, names: list[str], offset: int) -> Split:
        texts, labels, path = read_split(self.config, dataset, split)
        if self.config.drop_unlabeled and UNLABELED not in names:
            keep = [i for i, label in enumerate(labels) if label != UNLABELED]
            texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        return texts, [offset + i for i in encode_labels(labels, names, path)]


@dataclass
class _TextCLConfig(TextConfig):
    scenario: Literal["task-il", "class-il"] = "task-il"
    """task-il: predict among the dataset's own labels; class-il: among all labels seen so far."""
    drop_unlabeled: bool = True
    """Drop rows labelled '-' (no gold label, e.g. 131 MNLI test rows); false: they raise a DataError."""


@benchmarks.register()
class TextCLStandard(_TextCL):
    """The 4-task standard CL benchmark, orders 1-3 (see the module docstring)."""

    name = "text-cl-standard"
    orders = (1, 2, 3)

    @dataclass
    class Config(_TextCLConfig):
        order: int | list[str] = 1
        """1, 2 or 3 (the published orders), or an explicit list of dataset names."""

        def __post_init__(self) -> None:
            super().__post_init__()
            check_order(self.order, TextCLStandard.orders)


@benchmarks.register()
class TextCLLong(_TextCL):
    """The 15-task long CL benchmark, orders 4-6 (see the module docstring)."""

    name = "text-cl-long"
    orders = (4, 5, 6)

    @dataclass
    class Config(_TextCLConfig):
        order: int | list[str] = 4
        """4, 5 or 6 (the published orders), or an explicit list of dataset names."""

        def __post_init__(self) -> None:
            super().__post_init__()
            check_order(self.order, TextCLLong.orders)
