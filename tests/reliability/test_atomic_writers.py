"""Every result, checkpoint, table and plot is written atomically (temporary file, flush + fsync, rename).

A grep of the package lists every call that writes a file; each must be
``clft.results.atomic_write_*`` or one of the reviewed exceptions below. Then the
``table --output`` and ``plot`` commands are checked to write through it, and the
writer itself is checked to leave the old file (or nothing) when it fails half-way.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from reliability_helpers import experiment, run_quietly

import clft
import clft.storage.atomic as results_module
from clft.cli import main
from clft.storage.atomic import WriteError, atomic_write_bytes

PACKAGE = Path(clft.__file__).parent
WRITES = re.compile(r"(?<!atomic_)write_(text|bytes)\(|\bopen\([^)]*['\"][wax]\+?b?['\"]|\.savefig\(|json\.dump\(|"
                    r"save_file\(|torch\.save\(|np\.save|to_csv\(|to_parquet\(|save_pretrained\(|os\.write\(|"
                    r"shutil\.(copy|move)|\.rename\(|os\.replace\(")
REVIEWED = {  # file -> writes allowed there, and why they are safe
    "clft/storage/atomic.py": {"os.replace("},  # the atomic writer itself
    "clft/storage/checkpoint.py": {".rename("},  # a complete temporary task folder renamed into place
    "clft/storage/state_io.py": {"save_file("},  # safetensors into that temporary folder, then fsynced
    "clft/sweep/locks.py": {"os.write("},  # the lock file's owner line (for messages only)
    "clft/sweep/claims.py": {"os.write("},  # a claim's one JSON document, written under the mutex before any reader
    "clft/results/plots.py": {".savefig("},  # into an in-memory buffer, then atomic_write_bytes
    "clft/testing/_checks.py": {".write_text("},  # a check's experiment YAML, in the check's own scratch folder
    "clft/results/trackers.py": {'open(self.logging_dir / "metrics.csv", "a"'},  # a log appended and flushed row by row
    # a converted model is written into a temporary folder, which is renamed into the cache when complete
    "clft/backbones/packaged_llm.py": {"save_pretrained(", "write_text(", "os.replace("},
    "clft/engine/devices.py": {"CLEAR_REFS.write_text("},  # /proc/self/clear_refs: a kernel control, not a file
    # a built stream is written into a temporary folder, which is renamed into the cache when complete
    "clft/data/stream_cache.py": {'(tmp / "tasks.json").write_text(', "tmp.rename(folder)"},
}


def test_every_file_write_in_the_package_is_atomic_or_reviewed():
    unreviewed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE.parent))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            for match in WRITES.finditer(code):
                if not any(allowed in code for allowed in REVIEWED.get(name, ())):
                    unreviewed.append(f"{name}:{number}: {match.group(0)}")
    assert not unreviewed, unreviewed


def test_table_output_and_plots_are_written_through_the_atomic_writer(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    run_quietly(experiment(train={"epochs": 1, "max_steps_per_task": 1}), out)
    written = []
    real = results_module._write_and_replace
    monkeypatch.setattr(results_module, "_write_and_replace", lambda path, data: (written.append(path),
                                                                                   real(path, data)))
    assert main(["table", str(out), "--output", str(tmp_path / "table.md")]) == 0
    assert main(["plot", str(out), "--out", str(tmp_path / "plots")]) == 0
    pngs = sorted((tmp_path / "plots").iterdir())
    assert pngs and sorted(written) == sorted([tmp_path / "table.md", *pngs])


def _no_space(*_):
    raise OSError(28, "No space left on device")


class _OsWith:
    """``os`` for clft.results, with some functions replaced."""

    def __init__(self, **replaced):
        self.replaced = replaced

    def __getattr__(self, name):
        return self.replaced.get(name) or getattr(os, name)


class _HalfWrite:
    """A file handle whose write stores one byte, then fails: the disk filled up."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        self.handle.write(data[:1])
        _no_space()


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(failing, tmp_path, monkeypatch):
    target = tmp_path / "seed0.json"
    target.write_text("old")
    replaced = {"fdopen": lambda fd, mode: _HalfWrite(os.fdopen(fd, mode))} if failing == "write" else {
        failing: _no_space}
    monkeypatch.setattr(results_module, "os", _OsWith(**replaced))
    with pytest.raises(WriteError, match=r"cannot write .*seed0.json: No space left on device; seed0.json is left"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["seed0.json"]
