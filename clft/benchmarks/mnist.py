"""MNIST streams from the four original IDX files: ``split-mnist`` and ``permuted-mnist``.

Reads ``<data_dir>/mnist/`` (or ``data_dir`` itself): ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
each plain or ``.gz`` (LeCun et al. 1998; 60,000 training and 10,000 test images of
28x28 pixels). The official train/test split is kept; ``train_per_class`` /
``test_per_class`` subsample each class (chosen by the run seed). Examples have the
columns ``x`` (784 floats, pixel/255 in [0, 1], by default) and ``label``; the streams are cut
exactly like the digits ones (``clft.benchmarks.vector_streams``). ``pad`` and
``normalize`` reproduce other papers' preprocessing (Hsu et al. 2018: 32x32,
(x − 0.1) / 0.2752).

- ``split-mnist`` (Zenke et al. 2017): the ten digits in ``n_tasks`` groups, (0, 1),
  (2, 3), ... or a seed-shuffled order; labels are digits, or positions in domain-IL.
- ``permuted-mnist`` (Goodfellow et al. 2013): domain-IL, all ten digits per task,
  one fixed pixel permutation per task (task 0 unpermuted).

The IDX parser is strict: magic number, data type, number of dimensions and the
exact byte count must match, else a DataError names the file. Building a benchmark
checks everything but the pixel bytes (``check_mnist``: headers, sizes, labels, in
milliseconds), so a malformed file fails before any run trains; ``tasks`` reads the
pixels, which a run whose stream is already cached (``clft.data.stream_cache``) never does. Memory: the Arrow
columns hold float32 pixels, about 220 MB for the whole of MNIST (per task for
permuted-mnist); cap it with ``train_per_class``.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from clft.benchmarks.text_common import find_file, missing_file, subsample
from clft.benchmarks.vector_streams import (
    Split,
    check_permuted,
    class_order,
    permuted_tasks,
    pixel_permutations,
    split_label_names,
    split_tasks,
)
from clft.data import LocalDataConfig, check_labels, data_dir
from clft.errors import DataError
from clft.registry import benchmarks
from clft.types import Benchmark, Task

NUM_CLASSES = 10
FOLDERS = ("mnist", "")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SOURCE = "http://yann.lecun.com/exdb/mnist/ (the four *-ubyte.gz files)"
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path, count: int = -1) -> bytes:
    """The file's (decompressed) bytes: all of them, or the first ``count``."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read(count)
        with path.open("rb") as handle:
            return handle.read(count)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the file ({exc}); it is corrupt or truncated") from None


def _data_size(path: Path) -> int:
    """Bytes of the file's content without reading it: the size of a plain file; for a gzip file its
    trailer's ISIZE (the uncompressed size mod 2**32; exact below 4 GiB, as every IDX file here)."""
    if not path.name.endswith(".gz"):
        return path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() < 18:  # a gzip header and trailer take 18 bytes
            raise DataError(f"{path}: cannot read the file (not a gzip file); it is corrupt or truncated")
        handle.seek(-4, 2)
        return struct.unpack("<I", handle.read(4))[0]


def idx_header(path: Path, raw: bytes, size: int) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, header bytes) of an IDX file whose content starts with ``raw`` and holds ``size``
    bytes; DataError naming ``path`` unless magic number, data type, dimensions and byte count agree."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, expected 0000tttn)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        raise DataError(f"{path}: unknown IDX data type 0x{code:02x}; valid: 08 09 0b 0c 0d 0e")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header or size < header:
        raise DataError(f"{path}: corrupt IDX header ({ndim} dimensions, {min(len(raw), size)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if size - header != expected:
        raise DataError(f"{path}: {size - header} data bytes, but dimensions {list(dims)} of {dtype.name} need "
                        f"{expected}; the file is truncated or corrupt")
    return dtype, dims, header


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (plain or gzipped), checked strictly; DataError naming ``path`` otherwise."""
    raw = _read_bytes(path)
    dtype, dims, header = idx_header(path, raw, len(raw))
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def idx_shape(path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, dims) of an IDX file from its header and size alone (``idx_header``), without reading its data."""
    dtype, dims, _ = idx_header(path, _read_bytes(path, 4 + 4 * 255), _data_size(path))
    return dtype, dims


def _idx_file(root: Path | None, name: str) -> Path:
    for candidate in (name + ".gz", name):
        path = find_file(root, FOLDERS, candidate)
        if path is not None:
            return path
    raise missing_file(root, FOLDERS[0], name + ".gz", "MNIST", SOURCE)


def check_split(image_path: Path, label_path: Path, images: tuple, labels: np.ndarray) -> None:
    """DataError unless ``images`` (dtype, dims) are unsigned-byte [N, rows, cols] and ``labels`` N digits."""
    dtype, dims = images
    if dtype != np.uint8 or len(dims) != 3:
        raise DataError(f"{image_path}: expected unsigned-byte images [N, rows, cols], got {dtype} "
                        f"of shape {list(dims)}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{label_path}: expected unsigned-byte labels [N], got {labels.dtype} of shape "
                        f"{list(labels.shape)}")
    if dims[0] != len(labels) or not len(labels):
        raise DataError(f"{image_path} holds {dims[0]} images but {label_path} {len(labels)} labels")
    check_labels(labels, NUM_CLASSES, str(label_path))


def read_split(root: Path | None, split: str) -> Split:
    """(images uint8 [N, H*W], labels int64 [N]) of ``train`` or ``test``, checked against each other."""
    image_path, label_path = (_idx_file(root, name) for name in FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    check_split(image_path, label_path, (images.dtype, images.shape), labels)
    return images.reshape(len(images), -1), labels.astype(np.int64)


def check_mnist(root: Path | None) -> None:
    """The checks of ``load_mnist`` that need no pixel data: every file present, its header and byte count
    (gzip: the trailer's size), the labels read in full, counts and image sizes agreeing. A benchmark's
    constructor runs this (milliseconds instead of decompressing 47 MB); its ``tasks`` read the pixels."""
    pixels = {}
    for split in FILES:
        image_path, label_path = (_idx_file(root, name) for name in FILES[split])
        shape = idx_shape(image_path)
        check_split(image_path, label_path, shape, read_idx(label_path))
        pixels[split] = math.prod(shape[1][1:])
    check_same_size(root, pixels["train"], pixels["test"])


def check_same_size(root: Path | None, train_pixels: int, test_pixels: int) -> None:
    """DataError unless train and test images have the same number of pixels."""
    if train_pixels != test_pixels:
        raise DataError(f"MNIST under {root}: train images have {train_pixels} pixels, test {test_pixels}")


@lru_cache(maxsize=2)
def load_mnist(root: Path | None) -> tuple[Split, Split]:
    """(train, test) as read-only uint8 pixels and int64 labels (cached per data directory)."""
    train, test = read_split(root, "train"), read_split(root, "test")
    check_same_size(root, train[0].shape[1], test[0].shape[1])
    for array in (*train, *test):
        array.setflags(write=False)
    return train, test


@dataclass
class MNISTConfig(LocalDataConfig):
    """Options of both MNIST streams: data_dir (holding mnist/), per-class caps, pixel preprocessing."""

    pad: int = 0
    """Zero pixels added on each side of every image (Hsu et al. 2018 pad 28x28 to 32x32: pad 2)."""
    normalize: list[float] | None = None
    """[mean, std]: pixels (in [0, 1], after padding) become (x - mean) / std; None = keep [0, 1]."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        if self.normalize is not None and (len(self.normalize) != 2 or not self.normalize[1] > 0):
            raise ValueError(f"normalize must be [mean, std] with std > 0, got {self.normalize}")


def preprocess(images: np.ndarray, pad: int, normalize: list[float] | None) -> np.ndarray:
    """uint8 [N, side*side] -> float32 [N, (side+2*pad)^2]: /255, zero-pad each image, then (x - mean)/std."""
    pixels = images.astype(np.float32) / 255.0
    if pad:
        side = math.isqrt(pixels.shape[1])
        square = pixels.reshape(len(pixels), side, side)
        pixels = np.pad(square, ((0, 0), (pad, pad), (pad, pad))).reshape(len(pixels), -1)
    if normalize is not None:
        pixels = (pixels - np.float32(normalize[0])) / np.float32(normalize[1])
    return pixels


def mnist_splits(config: MNISTConfig, seed: int) -> tuple[Split, Split]:
    """(train, test) float32 pixels (see ``preprocess``), subsampled per class as configured."""
    train, test = load_mnist(data_dir(config.data_dir))
    out = []
    for (images, labels), per_class in ((train, config.train_per_class), (test, config.test_per_class)):
        rows = np.asarray(subsample((np.arange(len(labels)), labels), per_class, seed)[0], dtype=np.int64)
        out.append((preprocess(images[rows], config.pad, config.normalize), labels[rows]))
    return out[0], out[1]


@benchmarks.register()
class SplitMNIST(Benchmark):
    """Split MNIST: ``n_tasks`` tasks of ``10 / n_tasks`` digits each."""

    name = "split-mnist"
    input_kind = "vector"

    @dataclass
    class Config(MNISTConfig):
        scenario: Literal["task-il", "class-il", "domain-il"] = "class-il"
        """task-il / class-il: labels are digits 0..9; domain-il: position within the task."""
        n_tasks: int = 5
        """Number of tasks; must divide 10 (1, 2, 5 or 10)."""
        shuffle_classes: bool = False
        """Shuffle the digit order with the run seed before cutting it into tasks."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.n_tasks < 1 or NUM_CLASSES % self.n_tasks:
                raise ValueError(f"n_tasks must divide {NUM_CLASSES} (1, 2, 5 or 10), got {self.n_tasks}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        per_task = NUM_CLASSES // config.n_tasks
        self.label_names = split_label_names(self.scenario, [str(d) for d in range(NUM_CLASSES)], per_task)
        check_mnist(data_dir(config.data_dir))  # a missing or malformed file fails here, before any training

    def tasks(self, seed: int) -> list[Task]:
        train, test = mnist_splits(self.config, seed)
        order = class_order(NUM_CLASSES, self.config.shuffle_classes, seed)
        return split_tasks(train, test, order, self.config.n_tasks, self.scenario, "mnist")


@benchmarks.register()
class PermutedMNIST(Benchmark):
    """Permuted MNIST: domain-IL, all ten digits per task, one fixed pixel permutation per task."""

    name = "permuted-mnist"
    input_kind = "vector"
    scenarios = ("domain-il",)

    @dataclass
    class Config(MNISTConfig):
        n_tasks: int = 10
        """Number of tasks (task 0 is the unpermuted data)."""
        permutation_seed: int = 0
        """Seed of the permutations; independent of the run seed so every run sees the same stream."""

        def __post_init__(self) -> None:
            super().__post_init__()
            check_permuted(self.n_tasks, self.permutation_seed)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = "domain-il"
        self.label_names = [str(d) for d in range(NUM_CLASSES)]
        check_mnist(data_dir(config.data_dir))

    def permutations(self) -> list[np.ndarray]:
        (images, _), _ = load_mnist(data_dir(self.config.data_dir))
        return pixel_permutations(images.shape[1], self.config.n_tasks, self.config.permutation_seed)

    def tasks(self, seed: int) -> list[Task]:
        train, test = mnist_splits(self.config, seed)
        return permuted_tasks(train, test, self.permutations(), NUM_CLASSES, "mnist")
