"""split-mnist and permuted-mnist on tiny IDX files written here; the strict IDX parser; the real files.

The tiny files hold 4x4 images whose pixels encode (digit, index), so every test
can tell which image landed where. The real-data test needs ``CLFT_DATA_DIR`` with
``mnist/`` (the four original ``*-ubyte.gz`` files) and is skipped otherwise.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import clft.benchmarks  # noqa: F401  (registers the built-ins)
from clft.benchmarks.mnist import load_mnist, read_idx
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks

TRAIN_PER_DIGIT, TEST_PER_DIGIT = 4, 2


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def tiny_split(per_digit: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(10), per_digit).astype(np.uint8)
    images = np.zeros((len(labels), 4, 4), dtype=np.uint8)
    images[:, 0, 0] = labels * 20  # the digit
    images[:, 0, 1] = np.arange(len(labels)) + offset  # which image
    images[:, 3, 3] = 255
    return images, labels


def write_mnist(folder: Path, gz: bool = True, **replace: bytes) -> Path:
    """The four files under ``folder/mnist``; ``replace`` maps a file stem to raw bytes to write instead."""
    (folder / "mnist").mkdir(parents=True, exist_ok=True)
    arrays = dict(zip(["train-images-idx3-ubyte", "train-labels-idx1-ubyte"], tiny_split(TRAIN_PER_DIGIT, 0)))
    arrays.update(zip(["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"], tiny_split(TEST_PER_DIGIT, 100)))
    for stem, array in arrays.items():
        data = replace.get(stem, idx_bytes(array))
        path = folder / "mnist" / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
    return folder


def build(folder: Path, name: str = "split-mnist", **options):
    return benchmarks.build({"name": name, "data_dir": str(folder), **options})


def x_of(dataset) -> np.ndarray:
    return np.asarray(dataset["x"], dtype=np.float32)


@pytest.mark.parametrize("scenario", ["class-il", "task-il", "domain-il"])
def test_split_mnist_counts_labels_and_pixels(tmp_path, scenario):
    bench = build(write_mnist(tmp_path), scenario=scenario)
    tasks = bench.tasks(0)
    assert [t.name for t in tasks] == ["mnist-0-1", "mnist-2-3", "mnist-4-5", "mnist-6-7", "mnist-8-9"]
    for task, pair in zip(tasks, [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]):
        assert len(task.train) == 2 * TRAIN_PER_DIGIT and len(task.test) == 2 * TEST_PER_DIGIT
        x = x_of(task.train)
        assert x.shape == (8, 16) and x.min() >= 0.0 and x.max() == 1.0
        digits = np.rint(x[:, 0] * 255 / 20).astype(int)
        assert set(digits) == set(pair)
        expected = [pair.index(d) for d in digits] if scenario == "domain-il" else list(digits)
        assert task.train["label"] == expected
        assert task.classes == ((0, 1) if scenario == "domain-il" else pair)
    assert bench.label_names == (["first", "second"] if scenario == "domain-il" else [str(d) for d in range(10)])


def test_padding_and_normalisation_as_hsu_et_al(tmp_path):
    plain = build(write_mnist(tmp_path)).tasks(0)[0]
    padded = build(tmp_path, pad=2, normalize=[0.1, 0.5]).tasks(0)[0]
    raw, out = x_of(plain.train).reshape(-1, 4, 4), x_of(padded.train).reshape(-1, 8, 8)
    np.testing.assert_allclose(out[:, 2:6, 2:6], (raw - 0.1) / 0.5, rtol=1e-6)
    border = np.ones((8, 8), dtype=bool)
    border[2:6, 2:6] = False
    np.testing.assert_allclose(out[:, border], (0.0 - 0.1) / 0.5)
    with pytest.raises(ConfigError):
        build(tmp_path, normalize=[0.1, 0.0])


def test_shuffled_order_and_other_task_counts(tmp_path):
    folder = write_mnist(tmp_path)
    a, b = build(folder, shuffle_classes=True).tasks(0), build(folder, shuffle_classes=True).tasks(1)
    assert [t.classes for t in a] != [t.classes for t in b]
    assert sorted(c for t in a for c in t.classes) == list(range(10))
    assert [len(t.classes) for t in build(folder, n_tasks=2).tasks(0)] == [5, 5]
    with pytest.raises(ConfigError, match="n_tasks must divide 10"):
        build(folder, n_tasks=3)


def test_permuted_mnist(tmp_path):
    bench = build(write_mnist(tmp_path), "permuted-mnist", n_tasks=3)
    tasks, perms = bench.tasks(0), bench.permutations()
    assert bench.scenario == "domain-il" and [t.name for t in tasks][0] == "mnist" and len(tasks) == 3
    assert np.array_equal(perms[0], np.arange(16)) and not np.array_equal(perms[1], perms[2])
    plain = x_of(tasks[0].test)
    for task, perm in zip(tasks, perms):
        assert task.classes == tuple(range(10)) and np.array_equal(x_of(task.test), plain[:, perm])
        assert task.test["label"] == tasks[0].test["label"]


def test_plain_files_a_direct_folder_and_subsampling(tmp_path):
    write_mnist(tmp_path, gz=False)
    direct = build(tmp_path / "mnist", train_per_class=3, test_per_class=1)  # data_dir is the mnist folder itself
    first, again, other = direct.tasks(0), direct.tasks(0), direct.tasks(1)
    assert [len(t.train) for t in first] == [6] * 5 and [len(t.test) for t in first] == [2] * 5
    assert all(np.array_equal(x_of(a.train), x_of(b.train)) for a, b in zip(first, again))
    assert any(not np.array_equal(x_of(a.train), x_of(b.train)) for a, b in zip(first, other))
    with pytest.raises(ConfigError, match="train_per_class must be >= 1"):
        build(tmp_path, train_per_class=0)


def test_a_tiny_run_end_to_end(tmp_path):
    from clft.config import make_dataclass_instance
    from clft.config.experiment import ExperimentConfig
    from clft.sweep.run import run_experiment

    cfg = make_dataclass_instance(ExperimentConfig, {
        "benchmark": {"name": "split-mnist", "data_dir": str(write_mnist(tmp_path))},
        "backbone": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2, "batch_size": 4}}, "experiment")
    [path] = run_experiment(cfg, tmp_path / "out", progress=False, log=lambda m: None)
    import json

    acc = json.loads(path.read_text())["acc"]
    assert len(acc) == 5 and all(len(row) == 5 for row in acc)


def corrupt_cases() -> dict[str, tuple[dict, str]]:
    images, labels = tiny_split(TRAIN_PER_DIGIT, 0)
    good = idx_bytes(images)
    bad_labels = labels.copy()
    bad_labels[3] = 12
    return {
        "bad magic": ({"train-images-idx3-ubyte": b"\x08\x03" + good[2:]}, r"train-images-idx3-ubyte.gz: not an IDX"),
        "unknown type": ({"train-images-idx3-ubyte": good[:2] + b"\x07" + good[3:]}, r"unknown IDX data type 0x07"),
        "truncated": ({"train-images-idx3-ubyte": good[:-5]}, r"train-images.*truncated or corrupt"),
        "trailing bytes": ({"train-images-idx3-ubyte": good + b"\0"}, r"41 data bytes|truncated or corrupt"),
        "short header": ({"t10k-labels-idx1-ubyte": b"\0\0\x08\x01\0"}, r"t10k-labels.*corrupt IDX header"),
        "labels as images": ({"train-images-idx3-ubyte": idx_bytes(labels)}, r"expected unsigned-byte images"),
        "int32 images": ({"train-images-idx3-ubyte": idx_bytes(images, 0x0C)}, r"expected unsigned-byte images"),
        "label outside": ({"train-labels-idx1-ubyte": idx_bytes(bad_labels)}, r"label 12 outside the label set 0..9"),
        "count mismatch": ({"train-labels-idx1-ubyte": idx_bytes(labels[:-1])}, r"holds 40 images but .* 39 labels"),
        "empty": ({"train-images-idx3-ubyte": idx_bytes(images[:0]), "train-labels-idx1-ubyte": idx_bytes(labels[:0])},
                  r"holds 0 images"),
        "other image size": ({"t10k-images-idx3-ubyte": idx_bytes(np.zeros((20, 5, 5), np.uint8))},
                             r"train images have 16 pixels, test 25"),
    }


@pytest.mark.parametrize("case", list(corrupt_cases()))
def test_corrupt_idx_files_are_one_line_data_errors(tmp_path, case):
    replace, message = corrupt_cases()[case]
    with pytest.raises(DataError, match=message) as info:
        build(write_mnist(tmp_path, **replace))
    assert "\n" not in str(info.value)


def test_corrupt_gzip_missing_file_and_no_data_dir(tmp_path, monkeypatch):
    folder = write_mnist(tmp_path)
    (folder / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: cannot read the file"):
        read_idx(folder / "mnist" / "t10k-labels-idx1-ubyte.gz")
    (folder / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing data file .*mnist/t10k-labels-idx1-ubyte.gz \(MNIST\).*lecun"):
        build(folder)
    monkeypatch.delenv("CLFT_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"set CLFT_DATA_DIR .* mnist/train-images-idx3-ubyte.gz"):
        benchmarks.build({"name": "split-mnist"})



def test_building_reads_headers_and_labels_only_tasks_read_the_pixels(tmp_path):
    """A cached stream never needs the pixels: the constructor checks the files without them, so an image
    file whose gzip checksum is wrong passes the build and fails, as one line, when ``tasks`` reads it."""
    rng = np.random.default_rng(0)  # incompressible 64x64 images: the header is read long before the trailer
    big = {stem: idx_bytes(rng.integers(0, 256, (n, 64, 64), dtype=np.uint8))
           for stem, n in (("train-images-idx3-ubyte", 10 * TRAIN_PER_DIGIT),
                           ("t10k-images-idx3-ubyte", 10 * TEST_PER_DIGIT))}
    folder = write_mnist(tmp_path, **big)
    path = folder / "mnist" / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # the CRC-32 of the trailer: only a full read can notice
    path.write_bytes(bytes(raw))
    load_mnist.cache_clear()
    bench = build(folder)
    assert load_mnist.cache_info().misses == 0  # no pixel was read
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: cannot read the file .*CRC") as info:
        bench.tasks(0)
    assert "\n" not in str(info.value)
    load_mnist.cache_clear()


DATA = os.environ.get("CLFT_DATA_DIR")


@pytest.mark.realdata
@pytest.mark.skipif(not DATA or not (Path(DATA or "") / "mnist").is_dir(), reason="CLFT_DATA_DIR/mnist not set up")
def test_real_mnist_has_60000_train_and_10000_test_images():
    (train_x, train_y), (test_x, test_y) = load_mnist(Path(DATA))
    assert train_x.shape == (60000, 784) and test_x.shape == (10000, 784)
    assert np.bincount(train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    tasks = benchmarks.build({"name": "split-mnist"}).tasks(0)
    assert sum(len(t.train) for t in tasks) == 60000 and sum(len(t.test) for t in tasks) == 10000
