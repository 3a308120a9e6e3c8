"""Banking77 intent classification as a class-incremental stream.

Casanueva et al., "Efficient Intent Detection with Dual Sentence Encoders",
NLP4ConvAI 2020; data: github PolyAI-LDN/task-specific-datasets
``banking_data/{train,test,categories}`` (CC BY 4.0).

train 10,003 / test 3,080 customer queries in 77 intents (``train.csv`` and
``test.csv``, header ``text,category``). ``label_names`` follow
``categories.json`` when present, else the sorted category names. Split: the
77 intents in label order (or a seed-shuffled order with ``shuffle_order``)
cut into ``n_tasks`` consecutive chunks; uneven sizes allowed (e.g. 10 tasks:
seven of 8 intents, then three of 7). No validation split is published.

With ``hub: true`` and no local CSVs the queries come from the hub dataset
``PolyAI/banking77``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clft.benchmarks.text_common import (
    Split,
    TextConfig,
    chunk,
    class_split_tasks,
    encode_labels,
    find_file,
    hub_columns,
    load_hub,
    missing_file,
    seeded_order,
    verbalizer,
)
from clft.benchmarks.text_io import read_csv, read_json, require_columns
from clft.data import check_disjoint_classes, data_dir
from clft.errors import DataError
from clft.registry import benchmarks
from clft.types import Benchmark, Task

SOURCE = "https://github.com/PolyAI-LDN/task-specific-datasets (banking_data/)"
FOLDERS = ("banking77", "")
HUB = "PolyAI/banking77"
NUM_INTENTS = 77
INSTRUCTION = "Classify the intent of this online-banking customer query."

RawSplits = dict[str, tuple[list[str], list[str]]]  # split -> (texts, category names)


def read_split_csv(path: Path) -> tuple[list[str], list[str]]:
    """(texts, categories) of a ``text,category`` CSV."""
    header, rows = read_csv(path)
    require_columns(dict.fromkeys(header), ["text", "category"], str(path))
    text, category = header.index("text"), header.index("category")
    return [row[text] for row in rows], [row[category] for row in rows]


def read_categories(path: Path) -> list[str]:
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(c, str) for c in data):
        raise DataError(f"{path}: expected a JSON list of category names")
    return list(data)


def read_raw(root: Path | None, hub: bool) -> tuple[RawSplits, str]:
    """(split -> (texts, categories), where it came from): local CSVs, else the hub when allowed."""
    paths = {key: find_file(root, FOLDERS, f"{key}.csv") for key in ("train", "test")}
    missing = [key for key, path in paths.items() if path is None]
    if not missing:
        return {key: read_split_csv(path) for key, path in paths.items()}, str(paths["train"].parent)
    if not hub:
        raise missing_file(root, FOLDERS[0], f"{missing[0]}.csv", "Banking77 queries", SOURCE, hub=HUB)
    loaded = load_hub(HUB, None, what="Banking77")
    return {key: hub_columns(loaded[key], "text", "label", f"{HUB} {key}") for key in ("train", "test")}, HUB


@benchmarks.register()
class Banking77(Benchmark):
    """Banking77: 77 intents cut into ``n_tasks`` chunks (see the module docstring)."""

    name = "banking77"
    input_kind = "text"
    scenarios = ("class-il", "task-il")

    @dataclass
    class Config(TextConfig):
        n_tasks: int = 7
        """Number of tasks (1..77); 7 gives seven tasks of 11 intents."""
        shuffle_order: bool = False
        """Shuffle the intent order with the run seed before cutting it into tasks."""
        scenario: Literal["class-il", "task-il"] = "class-il"
        """class-il: predict among all intents seen so far; task-il: among the task's own intents."""
        hub: bool = False
        """When train.csv/test.csv are missing, download PolyAI/banking77 from the HuggingFace hub."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 1 <= self.n_tasks <= NUM_INTENTS:
                raise ValueError(f"n_tasks must lie in 1..{NUM_INTENTS}, got {self.n_tasks}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        root = data_dir(config.data_dir)
        raw, where = read_raw(root, config.hub)
        categories = find_file(root, FOLDERS, "categories.json")
        if categories is not None:
            self.label_names = read_categories(categories)
        else:
            self.label_names = sorted(set(raw["train"][1]) | set(raw["test"][1]))
        self.label_texts = verbalizer(config, self.label_names)
        self._splits: dict[str, Split] = {
            key: (texts, encode_labels(labels, self.label_names, f"{where} {key}"))
            for key, (texts, labels) in raw.items()
        }

    def groups(self, seed: int) -> list[tuple[str, list[int]]]:
        """(task name, intent ids) per task, in stream order."""
        if self.config.n_tasks > len(self.label_names):
            raise DataError(f"cannot cut {len(self.label_names)} intents into {self.config.n_tasks} tasks")
        order = seeded_order(range(len(self.label_names)), self.config.shuffle_order, seed)
        return [(f"intents-{i}", [int(c) for c in part]) for i, part in enumerate(chunk(order, self.config.n_tasks))]

    def tasks(self, seed: int) -> list[Task]:
        stream = class_split_tasks(self.groups(seed), self._splits, INSTRUCTION, self.config, seed)
        check_disjoint_classes(stream, self.scenario)
        return stream
