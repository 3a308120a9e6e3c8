"""``avalanche``: an Avalanche classic benchmark as a clft stream (extra ``clft[avalanche]``).

``benchmark: {name: avalanche, benchmark: SplitMNIST, kwargs: {n_experiences: 5}}`` builds
``avalanche.benchmarks.classic.SplitMNIST(**kwargs)`` and turns experience i of its train and
test streams into clft task i: the experience's ``classes_in_this_experience`` become the
task's classes, its examples the task's rows (``x``: the image flattened to floats, ``label``).
Scenario: ``task-il`` when ``return_task_id`` is true (each experience carries its own task
label), ``domain-il`` for ``PermutedMNIST``, else ``class-il``. Defaults that differ from
Avalanche's: ``seed`` is the run seed (Avalanche's default is an unseeded class order) and the
transforms are none (pixels in [0, 1], like clft's own MNIST streams; Avalanche normalises).

Data is read from a local folder, never downloaded: ``data_dir`` (default ``$CLFT_DATA_DIR``)
holding ``mnist/`` (or ``fashion-mnist/``) with the four original IDX files, plain or gzipped,
which are unpacked once into torchvision's layout (``<cache>/MNIST/raw/``; the cache is
``$CLFT_CACHE_DIR/avalanche``, default ``~/.cache/clft/avalanche``), or ``cifar10/`` holding
torchvision's ``cifar-10-batches-py/``.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clft.benchmarks.text_common import subsample
from clft.benchmarks.vector_streams import vectors_dataset
from clft.data import LocalDataConfig, check_disjoint_classes, data_dir, make_task
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks
from clft.storage.atomic import atomic_write_bytes
from clft.types import Benchmark, Task

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
#: benchmark -> (folder under data_dir, torchvision's folder under the root, number of classes)
SOURCES = {"SplitMNIST": ("mnist", "MNIST", 10), "PermutedMNIST": ("mnist", "MNIST", 10),
           "SplitFMNIST": ("fashion-mnist", "FashionMNIST", 10), "SplitCIFAR10": ("cifar10", None, 10)}


@benchmarks.register()
class AvalancheStream(Benchmark):
    """An Avalanche classic benchmark (SplitMNIST, PermutedMNIST, SplitFMNIST, SplitCIFAR10) by name."""

    name = "avalanche"

    @dataclass
    class Config(LocalDataConfig):
        benchmark: Literal["SplitMNIST", "PermutedMNIST", "SplitFMNIST", "SplitCIFAR10"] = "SplitMNIST"
        """The ``avalanche.benchmarks.classic`` function."""
        kwargs: dict[str, Any] = field(default_factory=lambda: {"n_experiences": 5})
        """Its keyword arguments (``n_experiences``, ``return_task_id``, ``fixed_class_order``, ...)."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if "dataset_root" in config.kwargs or "train_transform" in config.kwargs:
            raise ConfigError("avalanche: give the data folder as data_dir, not kwargs.dataset_root; "
                              "transforms cannot be set from YAML")
        if config.kwargs.get("return_task_id"):
            self.scenario = "task-il"
        else:
            self.scenario = "domain-il" if config.benchmark == "PermutedMNIST" else "class-il"
        self.label_names = [str(c) for c in range(SOURCES[config.benchmark][2])]

    def tasks(self, seed: int) -> list[Task]:
        stream = _build(self.config, seed)
        tasks = []
        for i, (train_exp, test_exp) in enumerate(zip(stream.train_stream, stream.test_stream)):
            classes = sorted(int(c) for c in train_exp.classes_in_this_experience)
            if self.scenario == "task-il" and train_exp.task_label != i:
                raise DataError(f"avalanche: experience {i} has task label {train_exp.task_label}, expected {i}")
            train = _rows(train_exp.dataset, self.config.train_per_class, seed)
            test = _rows(test_exp.dataset, self.config.test_per_class, seed)
            whole = len(classes) == len(self.label_names)  # permuted: every class, one task per permutation
            name = f"{self.config.benchmark.lower()}-" + (str(i) if whole else "-".join(map(str, classes)))
            tasks.append(make_task(i, name, classes, train, test))
        check_disjoint_classes(tasks, self.scenario)
        return tasks


def _build(config: AvalancheStream.Config, seed: int):
    try:
        from avalanche.benchmarks import classic
    except ImportError:
        raise ConfigError("benchmark 'avalanche' needs Avalanche: pip install 'clft[avalanche]'") from None
    kwargs = {"seed": seed, **config.kwargs, "dataset_root": str(_dataset_root(config)),
              "train_transform": None, "eval_transform": None}
    try:
        return getattr(classic, config.benchmark)(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"avalanche {config.benchmark}: {exc}") from None


def _dataset_root(config: AvalancheStream.Config) -> Path:
    """A folder in torchvision's layout holding the dataset, made from ``data_dir`` (nothing is downloaded)."""
    root = data_dir(config.data_dir)
    folder, torchvision_folder, _ = SOURCES[config.benchmark]
    if root is None or not (root / folder).is_dir():
        raise DataError(f"avalanche {config.benchmark}: no {folder}/ under data_dir ({root}); "
                        "set CLFT_DATA_DIR or data_dir")
    if torchvision_folder is None:
        return root / folder
    cache = Path(os.environ.get("CLFT_CACHE_DIR", Path.home() / ".cache" / "clft")) / "avalanche" / folder
    raw = cache / torchvision_folder / "raw"
    for name in IDX_FILES:
        _unpack(root / folder, name, raw / name)
    return cache


def _unpack(source_dir: Path, name: str, target: Path) -> None:
    """``name`` or ``name.gz`` from ``source_dir`` as a plain file at ``target`` (written once, atomically)."""
    if target.is_file():
        return
    plain, packed = source_dir / name, source_dir / f"{name}.gz"
    if not plain.is_file() and not packed.is_file():
        raise DataError(f"avalanche: {plain} (or .gz) not found")
    data = plain.read_bytes() if plain.is_file() else gzip.decompress(packed.read_bytes())
    atomic_write_bytes(target, data)


def _rows(dataset, per_class: int | None, seed: int):
    """An experience's examples as clft rows (``x`` flattened, ``label``), at most ``per_class`` per class."""
    import torch

    labels = np.asarray([int(y) for y in dataset.targets], dtype=np.int64)
    rows, _ = subsample((list(range(len(labels))), labels), per_class, seed)
    picked = dataset.subset(rows) if per_class is not None else dataset
    loader = torch.utils.data.DataLoader(picked, batch_size=2048, shuffle=False)
    xs, ys = [], []
    for batch in loader:
        xs.append(batch[0].reshape(len(batch[0]), -1).numpy())
        ys.append(batch[1].numpy())
    return vectors_dataset(np.concatenate(xs), np.concatenate(ys))
