"""Shared pieces of the text benchmarks: options, file lookup, labels, task assembly.

Text tasks hold ``datasets.Dataset`` objects with the columns ``text`` (str),
``label`` (global label id), ``instruction`` (one string per task, for
text-to-text backbones, which append the label options themselves) and
``task`` (added by ``clft.data.make_task``).

Every text-classification benchmark's ``Config`` extends ``TextConfig``, whose
``label_texts`` option (``{label name: word}``, partial) overrides the verbalizer
that text-to-text backbones train on and score (``hf_common.label_words``): each
benchmark sets ``self.label_texts = verbalizer(config, label_names, own)``, where
``own`` are its own verbalisers (LFPT5's, O-LoRA's raw label names) or None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from clft.benchmarks.text_io import require_columns
from clft.data import LocalDataConfig, data_dir, label_phrase, make_task, subsample_per_class
from clft.errors import ConfigError, DataError
from clft.types import Task

FEATURES = datasets.Features(
    {"text": datasets.Value("string"), "label": datasets.Value("int64"), "instruction": datasets.Value("string")}
)
Split = tuple[Sequence[str], Sequence[int]]  # (texts, global label ids)


@dataclass
class TextConfig(LocalDataConfig):
    """Options every text-classification benchmark has (each benchmark's ``Config`` extends it)."""

    label_texts: dict[str, str] | None = None
    """The verbalizer of text-to-text backbones, overridden per label: ``{label name: word}``
    (e.g. ``{ag_news/sports: sport}``). Labels not named keep the benchmark's own word (LFPT5's
    and O-LoRA's raw label names) or their name made a phrase (``banking/freeze_account`` ->
    ``freeze account``); that word is the target the backbone trains on and scores."""

    def __post_init__(self) -> None:
        super().__post_init__()
        blank = [name for name, word in (self.label_texts or {}).items() if not str(word).strip()]
        if blank:
            raise ValueError(f"label_texts: the word for {blank[0]!r} is empty")


def verbalizer(config: TextConfig, label_names: Sequence[str], own: Sequence[str] | None = None) -> list[str] | None:
    """One word per label: ``config.label_texts[name]`` where given, else ``own[i]`` (the
    benchmark's verbalisers), else ``label_phrase(name)``; None when neither overrides nor
    ``own`` exist (backbones then phrase the names themselves). ConfigError for a name that is
    not a label."""
    overrides = config.label_texts or {}
    unknown = [name for name in overrides if name not in set(label_names)]
    if unknown:
        shown = ", ".join(map(repr, list(label_names)[:6])) + (" ..." if len(label_names) > 6 else "")
        raise ConfigError(f"label_texts: {unknown[0]!r} is not a label name of this benchmark; labels: {shown}")
    if not overrides:
        return list(own) if own is not None else None
    base = list(own) if own is not None else [label_phrase(name) for name in label_names]
    return [overrides.get(name, word) for name, word in zip(label_names, base)]


def find_file(root: Path | None, folders: Sequence[str], name: str) -> Path | None:
    """``root/<folder>/name`` for the first folder holding it; None when absent or no root is set.

    ``folders`` lists where the file may sit under the data directory, e.g.
    ``("clinc150", "")`` accepts both ``$CLFT_DATA_DIR/clinc150/x`` and a data
    directory pointing at the dataset folder itself.
    """
    if root is None:
        return None
    for folder in folders:
        path = root / folder / name if folder else root / name
        if path.is_file():
            return path
    return None


def missing_file(root: Path | None, folder: str, name: str, what: str, source: str, hub: str = "") -> DataError:
    """The DataError for a missing file: the expected path and where to get it."""
    hint = f"; or set hub: true to download {hub} from the HuggingFace hub" if hub else ""
    if root is None:
        return DataError(
            f"no data directory for {what}: set CLFT_DATA_DIR (or the option data_dir) to a folder holding "
            f"{Path(folder) / name}; get it from {source}{hint}"
        )
    return DataError(f"missing data file {root / folder / name} ({what}); get it from {source}{hint}")


def locate(config: TextConfig, folders: Sequence[str], name: str, what: str, source: str) -> Path:
    """The path of a required file under the data directory, or a DataError naming it."""
    root = data_dir(config.data_dir)
    path = find_file(root, folders, name)
    if path is None:
        raise missing_file(root, folders[0], name, what, source)
    return path


def encode_labels(values: Sequence[Any], label_names: Sequence[str], where: str) -> list[int]:
    """Raw label strings -> ids into ``label_names``; DataError on a label outside the set."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = []
    for row, value in enumerate(values):
        label = index.get(value)
        if label is None:
            known = ", ".join(map(repr, list(label_names)[:8])) + (" ..." if len(label_names) > 8 else "")
            raise DataError(f"{where}: row {row} has label {value!r} outside the label set ({known})")
        ids.append(label)
    return ids


def unique_label_names(groups: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Concatenate per-dataset label names, prefixing ``dataset/`` to names that occur in two datasets.

    E.g. AG News and Yahoo both have "Sports": they become ``agnews/Sports`` and
    ``yahoo/Sports``; names unique to one dataset are kept as published.
    """
    counts: dict[str, int] = {}
    for _, names in groups:
        for name in set(names):
            counts[name] = counts.get(name, 0) + 1
    return [f"{prefix}/{name}" if counts[name] > 1 else name for prefix, names in groups for name in names]


def chunk(items: Sequence[Any], n_chunks: int) -> list[list[Any]]:
    """Cut ``items`` into ``n_chunks`` consecutive chunks; sizes differ by at most one (larger first)."""
    if not 1 <= n_chunks <= len(items):
        raise ValueError(f"cannot cut {len(items)} classes into {n_chunks} tasks")
    return [list(part) for part in np.array_split(np.asarray(items, dtype=object), n_chunks)]


def seeded_order(items: Sequence[Any], shuffle: bool, seed: int) -> list[Any]:
    """``items`` as given, or permuted by a generator seeded with ``seed``."""
    items = list(items)
    if not shuffle:
        return items
    return [items[i] for i in np.random.default_rng(seed).permutation(len(items))]


def to_dataset(split: Split, instruction: str) -> datasets.Dataset:
    """An in-memory Dataset with ``text``, ``label`` and ``instruction`` columns."""
    texts, labels = split
    return datasets.Dataset.from_dict(
        {"text": list(texts), "label": [int(v) for v in labels], "instruction": [instruction] * len(texts)},
        features=FEATURES,
    )


def select_classes(split: Split, classes: Sequence[int]) -> Split:
    """The rows of ``split`` whose label is in ``classes`` (file order kept)."""
    texts, labels = split
    rows = np.flatnonzero(np.isin(np.asarray(labels, dtype=np.int64), np.asarray(classes, dtype=np.int64)))
    return [texts[i] for i in rows], [labels[i] for i in rows]


class _LabelRows:
    """The part of the Dataset interface ``subsample_per_class`` uses, over (label, row) arrays.

    Lets the seeded choice run without Arrow: with datasets >= 4, ``ds["label"]``
    is a lazy column that numpy reads one row at a time.
    """

    def __init__(self, labels: np.ndarray, rows: np.ndarray) -> None:
        self.labels, self.rows = labels, rows

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, column: str) -> np.ndarray:
        return {"label": self.labels, "row": self.rows}[column]

    def select(self, indices: Sequence[int]) -> _LabelRows:
        return _LabelRows(self.labels[list(indices)], self.rows[list(indices)])


def subsample(split: Split, per_class: int | None, seed: int) -> Split:
    """At most ``per_class`` rows per label, chosen by ``clft.data.subsample_per_class`` (file order kept)."""
    texts, labels = split
    if per_class is None or not len(labels):
        return split
    index = _LabelRows(np.asarray(labels, dtype=np.int64), np.arange(len(labels)))
    rows = subsample_per_class(index, per_class, seed)["row"]
    return [texts[i] for i in rows], [labels[i] for i in rows]


def build_task(
    task_id: int,
    name: str,
    classes: Sequence[int],
    splits: dict[str, Split | None],
    instruction: str,
    config: TextConfig,
    seed: int,
) -> Task:
    """One Task from its raw splits: subsampled per class by ``seed``, checked by ``make_task``."""
    per_class = {"train": config.train_per_class, "test": config.test_per_class, "val": config.test_per_class}
    built: dict[str, datasets.Dataset | None] = dict.fromkeys(("train", "test", "val"))
    for key, split in splits.items():
        if split is not None:
            built[key] = to_dataset(subsample(split, per_class[key], seed), instruction)
    return make_task(task_id, name, classes, built["train"], built["test"], built["val"])


def class_split_tasks(
    groups: Sequence[tuple[str, Sequence[int]]],
    splits: dict[str, Split | None],
    instruction: str,
    config: TextConfig,
    seed: int,
) -> list[Task]:
    """One task per (name, classes) group, each holding the rows of its classes."""
    stream = []
    for task_id, (name, classes) in enumerate(groups):
        parts = {key: None if split is None else select_classes(split, classes) for key, split in splits.items()}
        stream.append(build_task(task_id, name, classes, parts, instruction, config, seed))
    return stream


def load_hub(name: str, subset: str | None, what: str) -> Any:
    """``datasets.load_dataset(name, subset)`` (a DatasetDict); DataError when it cannot be fetched."""
    try:
        return datasets.load_dataset(name, subset)
    except Exception as exc:  # network, missing dataset or config: one line for the user
        label = f"{name}" + (f" ({subset})" if subset else "")
        raise DataError(f"cannot load {what} from the HuggingFace hub dataset {label}: {exc}") from None


def hub_table(split: Any, label_column: str) -> dict[str, list]:
    """Columns of one hub split as lists; a ClassLabel label column becomes its label names."""
    columns = split.to_dict()
    feature = split.features.get(label_column)
    if isinstance(feature, datasets.ClassLabel) and label_column in columns:
        columns[label_column] = [feature.int2str(int(v)) for v in columns[label_column]]
    return columns


def hub_columns(split: Any, text_column: str, label_column: str, where: str) -> tuple[list[str], list[Any]]:
    """(texts, labels) of one hub split (ClassLabel ids as names); DataError naming missing columns."""
    columns = hub_table(split, label_column)
    require_columns(columns, [text_column, label_column], where)
    return list(columns[text_column]), list(columns[label_column])
