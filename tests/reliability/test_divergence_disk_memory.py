"""Divergence, a full disk and out-of-memory: one line at the command line, a non-zero exit, nothing lost.

The command line is called in-process (``clft.cli.main``): the same code as the
``clft`` executable, without a fresh interpreter per case. Test strategies that
produce a NaN loss or raise torch's OutOfMemoryError are registered for the test only.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass

import pytest
import torch
from reliability_helpers import experiment, matrices, one_line_error, run_quietly, write_yaml

import clft.storage.atomic as results_module
from clft.cli import main
from clft.registry import strategies
from clft.types import Strategy

RUN_ARGS = ["--quiet", "--no-plots"]


@dataclass
class FaultConfig:
    task: int = 2
    """The task whose second batch fails."""
    fault: str = "nan"
    """nan | inf | oom (training) | eval-oom (evaluation)."""


class Faulty(Strategy):
    """Test only: a NaN/inf extra loss or an out-of-memory error at task ``task``, step 1."""

    Config = FaultConfig

    def __init__(self, config):
        super().__init__(config)
        self.calls = {}

    def extra_loss(self, backbone, batch, outputs, task):
        self.calls[task.id] = self.calls.get(task.id, 0) + 1
        if task.id != self.config.task or self.calls[task.id] != 2 or self.config.fault == "eval-oom":
            return None
        if self.config.fault == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.tensor(float("nan") if self.config.fault == "nan" else float("inf"))

    def predict(self, backbone, batch, task, scenario):
        if self.config.fault == "eval-oom" and len(self.calls) > self.config.task:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return backbone.predict(batch, task, scenario)


@pytest.fixture
def faulty():
    with strategies.registered(Faulty, "faulty") as name:
        yield name


@pytest.mark.parametrize("fault", ["nan", "inf"])
def test_divergence_stops_with_task_and_step_keeps_finished_work_and_exits_3(fault, faulty, tmp_path, capsys):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", strategies=None, compare=["finetune", {"name": faulty, "fault": fault}])
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 3)
    assert f"loss is {fault} at task 2" in line and "step 1" in line and "on_nan=skip" in line
    assert json.loads((out / "class-il" / "finetune" / "seed0.json").read_text())["acc"]  # the finished run
    ckpt = out / ".checkpoints" / "class-il" / faulty / "seed0"
    assert (ckpt / "LATEST").read_text().strip() == "task001"  # the last good checkpoint
    meta = json.loads((ckpt / "task001" / "meta.json").read_text())
    assert len(meta["run_state"]["acc"]) == 2  # the rows of both finished tasks
    assert not (out / "class-il" / faulty / "seed0.json").exists()


def test_on_nan_skip_skips_the_batch_and_finishes(faulty, tmp_path, capsys):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", strategies=[faulty])
    assert main(["run", str(exp), "train.on_nan=skip", "--out", str(out), *RUN_ARGS]) == 0, capsys.readouterr().err
    data = json.loads((out / "class-il" / faulty / "seed0.json").read_text())
    assert data["skipped_batches"] == 1 and len(data["acc"]) == 5


@pytest.mark.parametrize("fault, fragments", [
    ("oom", ["out of memory at task 2", "step 1 with batch_size 32", "train.grad_accumulation_steps"]),
    ("eval-oom", ["out of memory evaluating with eval_batch_size 256", "lower train.eval_batch_size"]),
])
def test_out_of_memory_names_the_batch_size_and_the_remedy(fault, fragments, faulty, tmp_path, capsys):
    exp = write_yaml(tmp_path / "exp.yaml", strategies=[{"name": faulty, "fault": fault}])
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    for fragment in fragments:
        assert fragment in line


class FullDisk:
    """Stands in for ``os`` and ``tempfile`` inside clft.results: writing ``name`` fills the disk half-way."""

    def __init__(self, name: str) -> None:
        self.name, self.armed, self.failures = name, False, 0

    def __getattr__(self, attr):
        return getattr(os, attr) if hasattr(os, attr) else getattr(tempfile, attr)  # it stands for both

    def mkstemp(self, prefix="", **options):
        self.armed = prefix.startswith(f".{self.name}.")
        return tempfile.mkstemp(prefix=prefix, **options)

    def fdopen(self, fd, mode):
        handle = os.fdopen(fd, mode)
        return FailingFile(handle, self) if self.armed else handle


class FailingFile:
    def __init__(self, handle, disk: FullDisk) -> None:
        self.handle, self.disk = handle, disk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        self.disk.failures += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_writing_a_result_keeps_previous_files_and_resume_finishes(tmp_path, capsys, monkeypatch):
    out, reference = tmp_path / "out", tmp_path / "reference"
    run_quietly(experiment(seeds=[0, 1]), reference)
    exp = write_yaml(tmp_path / "exp.yaml", seeds=[0, 1])
    assert main(["run", str(exp), "seeds=[0]", "--out", str(out), *RUN_ARGS]) == 0
    first = (out / "class-il" / "replay+ewc" / "seed0.json").read_bytes()
    disk = FullDisk("seed1.json")
    monkeypatch.setattr(results_module, "os", disk)
    monkeypatch.setattr(results_module, "tempfile", disk)
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 74)
    assert disk.failures == 1 and "seed1.json: No space left on device" in line
    assert (out / "class-il" / "replay+ewc" / "seed0.json").read_bytes() == first
    assert sorted(p.name for p in (out / "class-il" / "replay+ewc").iterdir()) == ["seed0.json"]  # no partial file
    monkeypatch.undo()
    assert main(["run", str(exp), "--out", str(out), "--resume", *RUN_ARGS]) == 0  # the checkpoint survived
    assert matrices(out) == matrices(reference)


def test_full_disk_while_writing_a_table_keeps_the_previous_table(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    run_quietly(experiment(train={"epochs": 1, "max_steps_per_task": 1}), out)
    table = tmp_path / "table.md"
    table.write_text("previous table\n")
    disk = FullDisk("table.md")
    monkeypatch.setattr(results_module, "os", disk)
    monkeypatch.setattr(results_module, "tempfile", disk)
    line = one_line_error(capsys, main(["table", str(out), "--output", str(table)]), 74)
    assert "No space left on device" in line and table.read_text() == "previous table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "table.md"]
