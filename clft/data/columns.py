"""A dataset's columns extracted once, so a batch is a slice, not a row extraction.

``datasets.Dataset.__getitem__`` turns Arrow rows into Python lists on every
call (``extract_batch``); in a training loop that costs more than a small
model's step. ``columns(dataset)`` reads every column once (Arrow -> numpy,
no per-row Python) and keeps it in a process-wide LRU cache keyed by the
dataset's fingerprint:

- numbers (``int``/``float``/``bool`` scalars) -> a tensor ``[N]``;
- fixed-length lists of numbers (pixel rows, padded ids) -> a tensor ``[N, D]``;
  floats in torch's default dtype (float32), as ``torch.tensor`` makes of the
  Python floats ``Dataset.__getitem__`` returns; integers int64, booleans bool;
- anything else (strings, ragged token-id lists) -> a Python list, so a batch
  holds the same values ``Dataset.__getitem__`` returns.

``Columns[indices]`` returns the columnar batch ``{name: tensor | list}`` for a
list/array of row indices: tensors are gathered with ``index_select`` (one
call per column), lists with one comprehension. Backbones' ``collate`` accept
tensors wherever they accepted lists of numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

CACHE_SIZE = 64
_CACHE: OrderedDict[str, Columns] = OrderedDict()


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _fixed_width(array: pa.Array) -> int | None:
    """The common length of a list column's rows (None when ragged or containing nulls)."""
    if array.null_count:
        return None
    lengths = np.asarray(array.value_lengths())
    if not len(lengths) or (lengths != lengths[0]).any():
        return None
    return int(lengths[0])


def _tensor(values: np.ndarray) -> torch.Tensor:
    """A writable tensor copy; floats in torch's default dtype, integers int64."""
    if np.issubdtype(values.dtype, np.floating):
        return torch.from_numpy(np.array(values)).to(torch.get_default_dtype())
    if np.issubdtype(values.dtype, np.integer):
        return torch.from_numpy(np.array(values, dtype=np.int64))
    return torch.from_numpy(np.array(values))


def column_values(array: pa.ChunkedArray | pa.Array) -> torch.Tensor | list:
    """One Arrow column as a tensor (numbers, fixed-length number lists) or a Python list."""
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    kind = array.type
    if _numeric(kind) and not array.null_count:
        return _tensor(array.to_numpy(zero_copy_only=False))
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    if is_list and _numeric(kind.value_type):
        width = _fixed_width(array)
        if width is not None:
            return _tensor(array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), width))
    return array.to_pylist()


class Columns:
    """Every column of a dataset, read once (module docstring); ``self[indices]`` is a batch."""

    def __init__(self, values: dict[str, torch.Tensor | list]) -> None:
        self.values = values
        self.n = len(next(iter(values.values()))) if values else 0
        self.has_lists = not all(isinstance(v, torch.Tensor) for v in values.values())
        """Whether some column is a Python list (only those need a batch's row indices as a list)."""

    @classmethod
    def of(cls, dataset) -> Columns:
        table = dataset.data.table if hasattr(dataset.data, "table") else dataset.data
        if getattr(dataset, "_indices", None) is not None:  # a .select()ed view: take its rows
            table = table.take(dataset._indices.column(0))
        return cls({name: column_values(table.column(name)) for name in table.column_names})

    def __len__(self) -> int:
        return self.n

    @property
    def column_names(self) -> list[str]:
        return list(self.values)

    def __getitem__(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> dict:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        rows = index.tolist() if self.has_lists else None
        return {name: value.index_select(0, index) if isinstance(value, torch.Tensor) else [value[i] for i in rows]
                for name, value in self.values.items()}


def columns(dataset) -> Columns:
    """``dataset``'s Columns, built once per fingerprint (objects without one are not cached)."""
    if isinstance(dataset, Columns):
        return dataset
    key = getattr(dataset, "_fingerprint", None)
    if key is None:
        return Columns.of(dataset)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    built = _CACHE[key] = Columns.of(dataset)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return built


def clear_cache() -> None:
    """Forget every extracted dataset (tests; memory)."""
    _CACHE.clear()
