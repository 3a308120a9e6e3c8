"""CLINC150 intent classification as a class-incremental stream.

Larson et al., "An Evaluation Dataset for Intent Classification and
Out-of-Scope Prediction", EMNLP 2019; data: github clinc/oos-eval
``data/data_full.json`` and ``data/domains.json`` (CC BY 3.0).

In-scope queries only (the ``oos_*`` splits are dropped): train 15,000 /
val 3,000 / test 4,500, i.e. 100 / 20 / 30 per intent, 150 intents in 10
domains. ``label_names`` are the 150 intents grouped by domain in the order of
``domains.json`` (the same for every seed and split). Splits:

- ``by-domain``: 10 tasks, one per domain (15 intents each), in the order of
  ``domains.json`` or shuffled by the run seed (``shuffle_order``);
- ``chunks``: ``n_tasks`` tasks of consecutive intents in label order, or in a
  seed-shuffled order (``shuffle_order``); uneven sizes allowed (larger first);
  ``n_intents`` keeps only the first n intents of the label order (a small stream).

Each task has the published validation split as ``Task.val``. With ``hub: true``
and no local ``data_full.json`` the queries come from the hub dataset
``clinc/clinc_oos`` (config ``plus``, same in-scope data); ``by-domain`` still
needs the local ``domains.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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
from clft.benchmarks.text_io import read_json
from clft.data import check_disjoint_classes, data_dir
from clft.errors import DataError
from clft.registry import benchmarks
from clft.types import Benchmark, Task

SOURCE = "https://github.com/clinc/oos-eval (data/data_full.json, data/domains.json)"
FOLDERS = ("clinc150", "")
HUB = ("clinc/clinc_oos", "plus")
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
NUM_INTENTS = 150
OUT_OF_SCOPE = "oos"
INSTRUCTION = "Classify the intent of this request to a virtual assistant."

RawSplits = dict[str, tuple[list[str], list[str]]]  # split -> (texts, intent names)


def _pairs(value: Any, where: str) -> tuple[list[str], list[str]]:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise DataError(f"{where}: expected a list of [text, intent] pairs")
    return [str(p[0]) for p in value], [str(p[1]) for p in value]


def read_local(path) -> RawSplits:
    """In-scope (texts, intents) of ``data_full.json``'s train/val/test."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with train/val/test lists")
    splits = {}
    for key in HUB_SPLITS:
        if key not in data:
            raise DataError(f"{path}: no {key!r} list (keys present: {', '.join(map(repr, data))})")
        splits[key] = _pairs(data[key], f"{path} [{key!r}]")
    return splits


def read_hub() -> RawSplits:
    """In-scope (texts, intents) of the hub copy (``oos`` rows dropped)."""
    loaded = load_hub(*HUB, what="CLINC150")
    splits = {}
    for key, hub_key in HUB_SPLITS.items():
        texts, intents = hub_columns(loaded[hub_key], "text", "intent", f"{HUB[0]} {hub_key}")
        keep = [i for i, intent in enumerate(intents) if intent != OUT_OF_SCOPE]
        splits[key] = ([texts[i] for i in keep], [intents[i] for i in keep])
    return splits


def read_domains(path) -> dict[str, list[str]]:
    """``domains.json``: domain -> its intents, in file order."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataError(f"{path}: expected a JSON object mapping each domain to a list of intents")
    return {str(domain): [str(i) for i in intents] for domain, intents in data.items()}


def only_intents(split: tuple[list[str], list[str]], kept: set[str]) -> tuple[list[str], list[str]]:
    """The (texts, intents) rows of ``split`` whose intent is in ``kept``, in order."""
    rows = [(text, intent) for text, intent in zip(*split) if intent in kept]
    return [text for text, _ in rows], [intent for _, intent in rows]


@benchmarks.register()
class Clinc150(Benchmark):
    """CLINC150: 150 intents, by domain (10 x 15) or in ``n_tasks`` chunks (see the module docstring)."""

    name = "clinc150"
    input_kind = "text"
    scenarios = ("class-il", "task-il")

    @dataclass
    class Config(TextConfig):
        split: Literal["by-domain", "chunks"] = "by-domain"
        """by-domain: one task per domain (10 tasks); chunks: ``n_tasks`` groups of intents."""
        n_tasks: int = 10
        """Number of tasks for ``split: chunks`` (1..150); ignored by by-domain."""
        shuffle_order: bool = False
        """Shuffle the domain order (by-domain) or the intent order (chunks) with the run seed."""
        scenario: Literal["class-il", "task-il"] = "class-il"
        """class-il: predict among all intents seen so far; task-il: among the task's own intents."""
        hub: bool = False
        """When data_full.json is missing, download clinc/clinc_oos (plus) from the HuggingFace hub."""
        n_intents: int | None = None
        """``split: chunks`` only: keep the first n intents of the label order (a smaller stream, e.g. for an
        LLM on a CPU); the label set is then those n intents. None: all 150."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 1 <= self.n_tasks <= NUM_INTENTS:
                raise ValueError(f"n_tasks must lie in 1..{NUM_INTENTS}, got {self.n_tasks}")
            if self.n_intents is not None and self.split != "chunks":
                raise ValueError(f"n_intents needs split: chunks, got split: {self.split}")
            if self.n_intents is not None and not self.n_tasks <= self.n_intents <= NUM_INTENTS:
                bounds = f"n_tasks..{NUM_INTENTS} ({self.n_tasks}..{NUM_INTENTS})"
                raise ValueError(f"n_intents must lie in {bounds}, got {self.n_intents}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        root = data_dir(config.data_dir)
        data_path = find_file(root, FOLDERS, "data_full.json")
        domains_path = find_file(root, FOLDERS, "domains.json")
        if data_path is None and not config.hub:
            raise missing_file(root, FOLDERS[0], "data_full.json", "CLINC150 queries", SOURCE, hub=HUB[0])
        if domains_path is None and (config.split == "by-domain" or not config.hub):
            raise missing_file(root, FOLDERS[0], "domains.json", "CLINC150 intent domains", SOURCE)
        raw = read_local(data_path) if data_path is not None else read_hub()
        self.domains = read_domains(domains_path) if domains_path is not None else None
        if self.domains is not None:
            self.label_names = [intent for intents in self.domains.values() for intent in intents]
        else:
            self.label_names = sorted(set(raw["train"][1]))
        if config.n_intents is not None:
            self.label_names = self.label_names[: config.n_intents]
            raw = {key: only_intents(pair, set(self.label_names)) for key, pair in raw.items()}
        self.label_texts = verbalizer(config, self.label_names)
        where = str(data_path or HUB[0])
        self._splits: dict[str, Split] = {
            key: (texts, encode_labels(intents, self.label_names, f"{where} [{key!r}]"))
            for key, (texts, intents) in raw.items()
        }

    def groups(self, seed: int) -> list[tuple[str, list[int]]]:
        """(task name, intent ids) per task, in stream order."""
        if self.config.split == "by-domain":
            index = {name: i for i, name in enumerate(self.label_names)}
            order = seeded_order(list(self.domains), self.config.shuffle_order, seed)
            return [(domain, [index[i] for i in self.domains[domain]]) for domain in order]
        if self.config.n_tasks > len(self.label_names):
            raise DataError(f"cannot cut {len(self.label_names)} intents into {self.config.n_tasks} tasks")
        order = seeded_order(range(len(self.label_names)), self.config.shuffle_order, seed)
        return [(f"intents-{i}", [int(c) for c in part]) for i, part in enumerate(chunk(order, self.config.n_tasks))]

    def tasks(self, seed: int) -> list[Task]:
        stream = class_split_tasks(self.groups(seed), self._splits, INSTRUCTION, self.config, seed)
        check_disjoint_classes(stream, self.scenario)
        return stream
