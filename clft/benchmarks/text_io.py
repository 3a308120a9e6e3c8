"""Reading text datasets in their published formats, with one-line DataErrors.

Every reader takes a ``Path``, parses the whole file once and caches the result
keyed by (path, modification time, size), so building a stream for several
seeds reads each file once. Cached values are shared: callers must not mutate
them. Problems (not UTF-8, corrupt CSV/JSON, ragged rows, a column named twice) raise ``DataError``
naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from clft.errors import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")


def _key(path: Path) -> tuple[str, int, int]:
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def read_text(path: Path) -> str:
    """The file's text (UTF-8, an optional BOM removed); DataError if it is not UTF-8."""
    return _read_text(*_key(Path(path)))


@lru_cache(maxsize=64)
def _read_text(path: str, _mtime: int, _size: int) -> str:
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not a UTF-8 text file (invalid byte at line {line}, offset {exc.start})") from None


def read_json(path: Path) -> Any:
    """A parsed JSON document; DataError with line/column when it is corrupt."""
    return _read_json(*_key(Path(path)))


@lru_cache(maxsize=64)
def _read_json(path: str, mtime: int, size: int) -> Any:
    text = _read_text(path, mtime, size)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def read_jsonl(path: Path) -> list[Any]:
    """One JSON value per non-blank line (JSON Lines)."""
    return _read_jsonl(*_key(Path(path)))


@lru_cache(maxsize=64)
def _read_jsonl(path: str, mtime: int, size: int) -> list[Any]:
    rows = []
    for number, line in enumerate(_read_text(path, mtime, size).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: corrupt JSON Lines at line {number}, column {exc.colno}: {exc.msg}") from None
    return rows


def read_csv(path: Path, delimiter: str = ",") -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(header, rows) of a delimited file with a header line; every row must have the header's width."""
    return _read_csv(*_key(Path(path)), delimiter)


@lru_cache(maxsize=64)
def _read_csv(path: str, mtime: int, size: int, delimiter: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    reader = csv.reader(io.StringIO(_read_text(path, mtime, size), newline=""), delimiter=delimiter)
    try:
        header = tuple(next(reader, ()))
        if not header:
            raise DataError(f"{path}: empty file (expected a header line)")
        _check_unique_columns(header, path)
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}: corrupt CSV at line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                )
            rows.append(tuple(row))
    except csv.Error as exc:
        raise DataError(f"{path}: corrupt CSV at line {reader.line_num}: {exc}") from None
    return header, tuple(rows)


def _check_unique_columns(header: tuple[str, ...], path: str) -> None:
    """A column named twice is ambiguous (which ``label``?): DataError naming it and both positions."""
    first: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in first:
            raise DataError(f"{path}: column {name!r} appears twice in the header (columns {first[name]} and "
                            f"{position}); rename or remove one")
        first[name] = position


def read_tab_pairs(path: Path) -> tuple[tuple[str, str], ...]:
    """``text<TAB>label`` lines (no header), as (text, label) pairs; the label is after the last tab."""
    return _read_tab_pairs(*_key(Path(path)))


@lru_cache(maxsize=64)
def _read_tab_pairs(path: str, mtime: int, size: int) -> tuple[tuple[str, str], ...]:
    pairs = []
    for number, line in enumerate(_read_text(path, mtime, size).splitlines(), start=1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if not tab:
            raise DataError(f"{path}: line {number} has no tab (expected 'text<TAB>label')")
        pairs.append((text, label.strip()))
    return tuple(pairs)


def read_parquet(path: Path) -> dict[str, list]:
    """Columns of a Parquet file as lists."""
    return _read_parquet(*_key(Path(path)))


@lru_cache(maxsize=16)
def _read_parquet(path: str, _mtime: int, _size: int) -> dict[str, list]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: corrupt Parquet file: {exc}") from None
    return table.to_pydict()


def read_table(path: Path) -> dict[str, list]:
    """Columns of a CSV/TSV/JSON/JSONL/Parquet file, the format chosen by the extension.

    JSON may be a list of records (objects) or a mapping of equal-length column lists.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        header, rows = read_csv(path, "\t" if suffix == ".tsv" else ",")
        return {name: [row[i] for row in rows] for i, name in enumerate(header)}
    if suffix == ".json":
        return records_to_columns(read_json(path), path)
    if suffix == ".jsonl":
        return records_to_columns(read_jsonl(path), path)
    if suffix == ".parquet":
        return read_parquet(path)
    raise DataError(f"{path}: unknown file format {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")


def records_to_columns(data: Any, path: Path) -> dict[str, list]:
    """A list of JSON objects, or a mapping of column lists, as a mapping of column lists."""
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise DataError(f"{path}: JSON columns have different lengths {sorted(lengths)}")
        return dict(data)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records or a mapping of columns, got {type(data).__name__}")
    columns: dict[str, list] = {}
    for number, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {number} is a {type(record).__name__}, not an object")
        for name in record:
            columns.setdefault(name, [None] * number)
        for name, values in columns.items():
            values.append(record.get(name))
    return columns


def require_columns(columns: dict[str, list], needed: Sequence[str], where: str) -> None:
    """DataError naming the missing columns and the ones present."""
    missing = [name for name in needed if name not in columns]
    if missing:
        present = ", ".join(map(repr, columns)) or "(none)"
        raise DataError(f"{where}: no column {', '.join(map(repr, missing))}; columns present: {present}")
