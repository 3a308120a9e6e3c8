"""Concurrent writers: two sweeps sharing one results folder never clobber or lose a run.

Semantics (docs/reliability.md): each run holds an flock on ``<run>.lock`` while it
trains; a sweep that finds a run locked puts it aside, and after its other runs waits
for the lock to be released, then takes the run up again: the result is there (skip)
or the holder died (run it, resuming from its checkpoint with ``--resume``). A run's
"finished?" check happens under its lock, so no run is ever trained twice.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from reliability_helpers import experiment, files, matrices, parse_every_json, run_quietly, start_child, wait_child

import clft.sweep.run as sweep
from clft.sweep.locks import RunLock

TWO_BY_TWO = {"strategies": None, "compare": ["finetune", [{"name": "replay", "memory_size": 40}]], "seeds": [0, 1]}


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(sweep, "LOCK_POLL_SECONDS", 0.05)


def logging_sweep(cfg, out: Path, log_path: Path):
    def target():
        with open(log_path, "w") as log:
            sweep.run_experiment(cfg, out, progress=False, log=lambda m: print(m, file=log, flush=True))
    return target


def test_two_processes_on_one_folder_finish_every_run_exactly_once(tmp_path):
    cfg = experiment(**TWO_BY_TWO)
    reference, out = tmp_path / "reference", tmp_path / "shared"
    run_quietly(cfg, reference)
    pids = [start_child(logging_sweep(cfg, out, tmp_path / f"log{k}")) for k in range(2)]  # both at once
    assert [wait_child(pid) for pid in pids] == [0, 0]
    assert parse_every_json(out) == 4 and matrices(out) == matrices(reference)
    assert files(out) == files(reference)  # each run JSON once; no lock, checkpoint or temporary file
    trained = [line.split()[2] for k in range(2) for line in (tmp_path / f"log{k}").read_text().splitlines()
               if ": training " in line]
    assert sorted(trained) == ["finetune/seed0:", "finetune/seed1:", "replay/seed0:", "replay/seed1:"]


def hold_lock(path: Path, release: Path) -> int:
    """Fork a child that holds ``path`` until ``release`` exists (or it is killed); returns its pid."""
    def hold():
        with RunLock(path):
            while not release.exists():
                time.sleep(0.02)

    pid = start_child(hold)
    deadline = time.monotonic() + 30
    while f"{socket.gethostname()} {pid}" not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, "the child never took the lock"
        time.sleep(0.01)
    return pid


@pytest.mark.parametrize("ending", ["released", "killed"])
def test_a_locked_run_is_waited_for_and_then_run_not_skipped(ending, tmp_path):
    cfg = experiment(seeds=[0, 1])
    out, messages = tmp_path / "out", []
    lock = out / "class-il" / "replay+ewc" / "seed0.lock"
    lock.parent.mkdir(parents=True)
    holder = hold_lock(lock, release=tmp_path / "release")
    end = (lambda: (tmp_path / "release").touch()) if ending == "released" else (
        lambda: os.kill(holder, signal.SIGKILL))
    timer = threading.Timer(1.0, end)  # while this process runs seed 1
    timer.start()
    try:
        paths = sweep.run_experiment(cfg, out, progress=False, log=messages.append)
    finally:
        timer.cancel()
        code = wait_child(holder)
    assert code == (0 if ending == "released" else -9)
    assert [p.name for p in paths] == ["seed0.json", "seed1.json"]  # plan order, none missing
    assert any("seed 0 is running elsewhere" in m for m in messages)
    assert any("waiting for" in m for m in messages)
    assert parse_every_json(out) == 2 and not lock.exists()
