"""Data sources of the generic ``text-classification`` benchmark: files or hub datasets, and their labels.

A source is local files (``files: {train: a.csv, test: b.csv, val: c.csv}``;
CSV, TSV, JSON, JSONL or Parquet, the format chosen by the extension) or, with
``hub: true``, a HuggingFace dataset (``dataset``/``subset``; splits
``train``, ``test`` and, if present, ``validation``). Relative paths are taken
under the data directory (``data_dir`` / ``$CLFT_DATA_DIR``) when one is set,
else under the working directory.

Labels may be strings or integers. Without ``label_names`` the label set is
the sorted distinct values (numerically when they are all integers). With
``label_names`` a label is matched by name, else read as an index into the
list; anything else is a DataError.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clft.benchmarks.text_common import hub_table, load_hub
from clft.benchmarks.text_io import read_table, require_columns
from clft.data import data_dir
from clft.errors import DataError

SPLITS = ("train", "test", "val")
HUB_SPLITS = {"train": "train", "test": "test", "val": "validation"}
INTEGER = re.compile(r"^-?\d+$")
Raw = dict[str, tuple[list[str], list[Any]]]  # split -> (texts, raw labels)


@dataclass
class SourceFields:
    """Where one labelled text dataset comes from and how to read it."""

    files: dict[str, str] | None = None
    """Local files by split: ``{train: path, test: path, val: path}`` (val optional)."""
    dataset: str | None = None
    """HuggingFace hub dataset name; used only with ``hub: true`` (when ``files`` are absent or missing)."""
    subset: str | None = None
    """Hub dataset configuration (e.g. 'sst2' of 'glue')."""
    text_column: str | list[str] = "text"
    """Column holding the text; a list of columns is joined with newlines (e.g. premise, hypothesis)."""
    label_column: str = "label"
    """Column holding the label (a string or an integer)."""
    label_names: list[str] | None = None
    """The label set in id order; default: the sorted distinct labels of the data."""
    instruction: str = "Classify this text."
    """Instruction stored with every example (used by text-to-text backbones)."""

    def check_source(self) -> None:
        """ValueError unless exactly the needed source fields are given."""
        if self.files is None and self.dataset is None:
            raise ValueError("give 'files' (local train/test files) or 'dataset' (a hub dataset, with hub: true)")
        if self.files is not None:
            unknown = sorted(set(self.files) - set(SPLITS))
            if unknown or not {"train", "test"} <= set(self.files):
                raise ValueError(f"files needs keys train and test (val optional); got {sorted(self.files)}")
        if isinstance(self.text_column, list) and not self.text_column:
            raise ValueError("text_column must name at least one column")


@dataclass
class SequenceEntry(SourceFields):
    """One task of a ``sequence``: a source plus its task name."""

    name: str | None = None
    """Task name; default: the hub dataset name or the train file's stem."""

    def __post_init__(self) -> None:
        self.check_source()

    def task_name(self) -> str:
        if self.name:
            return self.name
        if self.files is not None:
            return Path(self.files["train"]).stem
        return str(self.dataset) + (f"-{self.subset}" if self.subset else "")


def resolve(path: str, root: Path | None) -> Path:
    """An absolute path as is; a relative one under the data directory if set, else the working directory."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or root is None:
        return candidate
    return root / candidate


def read_source(source: SourceFields, root_option: str | None, hub: bool, where: str) -> Raw:
    """split -> (texts, raw labels) from local files, else from the hub when allowed."""
    root = data_dir(root_option)
    if source.files is not None:
        paths = {key: resolve(value, root) for key, value in source.files.items()}
        missing = [key for key, path in paths.items() if not path.is_file()]
        if not missing:
            return {key: read_file(path, source) for key, path in paths.items()}
        if not (hub and source.dataset):
            key = missing[0]
            raise DataError(f"{where}: missing data file {paths[key]} (files.{key}); check the path or data_dir")
    elif not hub:
        raise DataError(f"{where}: {source.dataset!r} is a HuggingFace hub dataset; set hub: true or give local files")
    return read_hub(source, where)


def _texts(columns: dict[str, list], source: SourceFields, where: str) -> list[str]:
    names = [source.text_column] if isinstance(source.text_column, str) else source.text_column
    require_columns(columns, [*names, source.label_column], where)
    texts = []
    for row, parts in enumerate(zip(*(columns[name] for name in names))):
        if any(part is None for part in parts):
            raise DataError(f"{where}: row {row} has no text in column(s) {', '.join(names)}")
        texts.append("\n".join(str(part) for part in parts))
    return texts


def read_file(path: Path, source: SourceFields) -> tuple[list[str], list[Any]]:
    columns = read_table(path)
    return _texts(columns, source, str(path)), list(columns[source.label_column])


def read_hub(source: SourceFields, where: str) -> Raw:
    loaded = load_hub(str(source.dataset), source.subset, what=where)
    raw = {}
    for key, hub_key in HUB_SPLITS.items():
        if hub_key not in loaded:
            if key == "val":
                continue
            raise DataError(f"{where}: hub dataset {source.dataset!r} has no {hub_key!r} split ({', '.join(loaded)})")
        columns = hub_table(loaded[hub_key], source.label_column)
        texts = _texts(columns, source, f"{where} ({source.dataset} {hub_key})")
        raw[key] = (texts, list(columns[source.label_column]))
    return raw


def infer_label_names(values: Sequence[Any], where: str) -> list[str]:
    """Sorted distinct labels as strings: numerically when all are integers, else by string."""
    distinct = set(values)
    if None in distinct:
        raise DataError(f"{where}: some rows have no label")
    if any(isinstance(v, (bool, float)) for v in distinct):
        raise DataError(f"{where}: labels must be strings or integers, got {sorted(map(repr, distinct))[:5]}")
    if all(isinstance(v, int) or (isinstance(v, str) and INTEGER.match(v)) for v in distinct):
        return [str(v) for v in sorted({int(v) for v in distinct})]
    if not all(isinstance(v, str) for v in distinct):
        raise DataError(f"{where}: labels mix strings and integers; give label_names")
    return sorted(distinct)


def encode(values: Sequence[Any], label_names: Sequence[str], where: str) -> list[int]:
    """Labels -> ids: by name, else an integer (or integer string) used as an index into ``label_names``."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = []
    for row, value in enumerate(values):
        key = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(key, str) and key in index:
            ids.append(index[key])
        elif isinstance(key, str) and INTEGER.match(key) and 0 <= int(key) < len(label_names):
            ids.append(int(key))
        else:
            shown = ", ".join(map(repr, list(label_names)[:8])) + (" ..." if len(label_names) > 8 else "")
            raise DataError(f"{where}: row {row} has label {value!r} outside the label set ({shown})")
    return ids


def label_names_of(raw: Raw, given: list[str] | None, where: str) -> list[str]:
    """``given``, or the labels inferred from every split of ``raw``."""
    if given is not None:
        return list(given)
    return infer_label_names([label for _, labels in raw.values() for label in labels], where)


def check_labels_trained(raw: Raw, where: str) -> None:
    """Every label of the test (and val) split also labels some training example: a class the model
    never sees in training cannot be learned, and its task would look like one without test data."""
    trained = {str(label) for label in raw["train"][1]}
    for key in ("test", "val"):
        if key not in raw:
            continue
        unseen = sorted({str(label) for label in raw[key][1]} - trained)
        if unseen:
            shown = ", ".join(map(repr, unseen[:5])) + (" ..." if len(unseen) > 5 else "")
            raise DataError(f"{where}: the {key} split has label(s) {shown} that no training example has; "
                            "every class needs training examples")
