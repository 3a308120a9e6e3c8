"""A results folder shared with other users and other sweeps: no write through a planted link,
no silent mixture of configs.

- Nothing clft writes in a results folder (a run's lock, result, checkpoints, plots) follows a
  symbolic link: locks are opened with ``O_NOFOLLOW`` and every path is checked for links under
  the run's lock; a link is refused in one line (exit 2) and the file it points to is untouched.
- A table row averages seeds of one config only (``clft.results.summary``); a sweep of another config on a
  folder a live sweep is writing is refused before it writes anything (``clft.sweep.claims``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    STATEFUL,
    experiment,
    files,
    one_line_error,
    run_quietly,
    start_child,
    wait_child,
    write_yaml,
)

import clft.sweep.run as sweep
from clft.cli import main
from clft.sweep.claims import FolderInUseError

RUN_ARGS = ["--quiet", "--no-plots"]
RUN_KEY = "class-il/replay+ewc/seed0"
SHORT_TRAIN = {**STATEFUL["train"], "max_steps_per_task": 1}


def run_cli(exp: Path, out: Path, *extra: str) -> int:
    return main(["run", str(exp), "--out", str(out), *RUN_ARGS, *extra])


@pytest.mark.parametrize("target", ["a file of another user", "a missing file"])
def test_a_link_at_a_runs_lock_is_refused_and_not_followed(target, tmp_path, capsys):
    outside = tmp_path / "outside" / "precious.txt"
    outside.parent.mkdir()
    if target == "a file of another user":
        outside.write_text("keep me\n")
    out = tmp_path / "out"
    lock = out / f"{RUN_KEY}.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(outside)
    line = one_line_error(capsys, run_cli(write_yaml(tmp_path / "exp.yaml", train=SHORT_TRAIN), out), 2)
    assert line == f"clft: error: refused: {lock} is a symbolic link; clft writes nothing through a link in a " \
                   "results folder (remove the link)"
    if target == "a file of another user":
        assert outside.read_text() == "keep me\n"  # not truncated, not overwritten
    else:
        assert not outside.exists()  # not created
    assert not (out / f"{RUN_KEY}.json").exists()


@pytest.mark.parametrize("linked", [".checkpoints", ".checkpoints/class-il", "class-il/replay+ewc/seed0.json"])
def test_no_checkpoint_or_result_is_written_through_a_link(linked, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    link = out / linked
    link.parent.mkdir(parents=True)
    link.symlink_to(outside / "seed0.json" if linked.endswith(".json") else outside, linked.endswith("/class-il"))
    line = one_line_error(capsys, run_cli(write_yaml(tmp_path / "exp.yaml", train=SHORT_TRAIN), out), 2)
    assert f"refused: {link} is a symbolic link" in line
    assert list(outside.iterdir()) == []  # nothing written there


def test_a_plots_folder_linked_out_of_the_results_is_refused(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    assert run_cli(write_yaml(tmp_path / "exp.yaml", train=SHORT_TRAIN), out) == 0
    (out / "plots").symlink_to(outside, target_is_directory=True)
    line = one_line_error(capsys, main(["plot", str(out)]), 2)
    assert f"refused: {out / 'plots'} is a symbolic link" in line and list(outside.iterdir()) == []


def test_an_out_folder_that_is_a_symlink_loop_is_one_line(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    line = one_line_error(capsys, run_cli(write_yaml(tmp_path / "exp.yaml"), tmp_path / "a"), 2)
    assert line == f"clft: error: --out {tmp_path / 'a'}: {tmp_path / 'a'} is a symbolic link loop; give a folder " \
                   "for the results"


@pytest.mark.parametrize("name", ["q\n", "results\n"])
def test_a_name_ending_in_a_newline_is_not_a_plain_name(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = write_yaml(tmp_path / "exp.yaml", name=name)
    line = one_line_error(capsys, main(["run", str(exp), *RUN_ARGS]), 2)
    assert "is not a plain name" in line
    assert not (tmp_path / "results").exists() or list((tmp_path / "results").iterdir()) == []


def two_configs(tmp_path: Path) -> Path:
    """Seed 0 at lr 1e-3 x 5 epochs and seed 1 at lr 0.5 x 1 epoch, in one folder (as a copy would leave)."""
    first, second = tmp_path / "first", tmp_path / "second"
    run_quietly(experiment(seeds=[0], train={**SHORT_TRAIN, "lr": 1e-3, "epochs": 5}), first)
    run_quietly(experiment(seeds=[1], train={**SHORT_TRAIN, "lr": 0.5, "epochs": 1}), second)
    shutil.copy(second / "class-il" / "replay+ewc" / "seed1.json", first / "class-il" / "replay+ewc")
    return first


@pytest.mark.parametrize("command", ["table", "plot", "report"])
def test_a_table_row_never_averages_runs_of_two_configs(command, tmp_path, capsys):
    out = two_configs(tmp_path)
    line = one_line_error(capsys, main([command, str(out)]), 2)
    row = out / "class-il" / "replay+ewc"
    assert line == (f"clft: error: class-il/replay+ewc: {row / 'seed0.json'} and {row / 'seed1.json'} were run with "
                    "different configs (train.epochs 5 vs 1; train.lr 0.001 vs 0.5); a row averages seeds of one "
                    "config: make one table per config")


def test_seeds_of_one_config_still_make_one_row(tmp_path, capsys):
    out = tmp_path / "out"
    run_quietly(experiment(seeds=[0]), out)
    run_quietly(experiment(seeds=[1]), out)  # a second sweep adding a seed: the same config, seed aside
    assert main(["table", str(out)]) == 0
    assert "| class-il | replay+ewc | 2 |" in capsys.readouterr().out


def holder_of(lock: Path) -> int | None:
    try:
        return int(lock.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def start_long_sweep(out: Path, name: str = "first-sweep") -> tuple[int, Path]:
    """Fork a sweep of ``name`` that trains for minutes; returns (pid, its run's lock) once it holds the run."""
    cfg = experiment(name=name, train={**STATEFUL["train"], "epochs": 500, "max_steps_per_task": None})
    pid = start_child(lambda: run_quietly(cfg, out))
    lock = out / f"{RUN_KEY}.lock"
    deadline = time.monotonic() + 120
    while holder_of(lock) != pid:
        assert time.monotonic() < deadline, "the first sweep never started its run"
        time.sleep(0.02)
    return pid, lock


def test_a_second_sweep_of_another_config_is_refused_before_it_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "LOCK_POLL_SECONDS", 0.05)
    out = tmp_path / "out"
    first, lock = start_long_sweep(out)
    # on code without claims the second sweep would wait for the first's run: end it in time to let the test end
    guard = threading.Timer(90, lambda: os.kill(first, signal.SIGKILL))
    guard.start()
    messages: list[str] = []
    try:
        before = set(files(out))
        with pytest.raises(FolderInUseError) as refused:
            sweep.run_experiment(experiment(seeds=[0, 1], train={**SHORT_TRAIN, "lr": 0.5}), out, progress=False,
                                 log=messages.append)
        written = set(files(out)) - before
    finally:
        guard.cancel()
        os.kill(first, signal.SIGKILL)
        assert wait_child(first) == -9
    assert f"experiment 'first-sweep' (pid {first} on {socket.gethostname()}" in str(refused.value)
    assert "runs class-il/replay+ewc with another config" in str(refused.value)
    assert not [m for m in messages if ": training " in m]
    assert not [f for f in written if not f.startswith(".checkpoints/") and not f.startswith(".sweeps")]
    assert not (out / "class-il" / "replay+ewc" / "seed1.lock").exists()
    assert not (out / ".checkpoints" / "class-il" / "replay+ewc" / "seed1").exists()


def test_a_killed_sweeps_claim_does_not_block_and_a_finished_sweep_leaves_none(tmp_path):
    out = tmp_path / "out"
    first, _ = start_long_sweep(out)
    os.kill(first, signal.SIGKILL)
    assert wait_child(first) == -9
    assert list((out / ".sweeps").iterdir())  # the dead sweep's claim is still on disk
    run_quietly(experiment(train={**SHORT_TRAIN, "lr": 0.5}), out)  # another config: the dead claim is no obstacle
    assert not (out / ".sweeps").exists() and not (out / ".sweeps.lock").exists()
    data = json.loads((out / f"{RUN_KEY}.json").read_text())
    assert data["config"]["train"]["lr"] == 0.5


def make_read_only(monkeypatch, root: Path) -> None:
    """Every write under ``root`` fails with EROFS, as on a read-only mount (the tests may run as root, for
    whom a chmod does not bite); reads, and writes elsewhere, go through."""
    import errno

    inside = str(root)

    def refused(path) -> bool:
        return str(path).startswith(inside) and not os.path.lexists(path)

    def erofs(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_open, real_mkdir = os.open, os.mkdir

    def guarded_open(path, flags, *args, **kwargs):
        if str(path).startswith(inside) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            erofs(path)
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if refused(path):  # an existing folder answers EEXIST first, as the kernel does
            erofs(path)
        return real_mkdir(path, *args, **kwargs)

    def no_change(real):
        def guarded(path, *args, **kwargs):
            if str(path).startswith(inside):
                erofs(path)
            return real(path, *args, **kwargs)
        return guarded

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    for name in ("replace", "rename", "unlink", "rmdir"):
        monkeypatch.setattr(os, name, no_change(getattr(os, name)))


def test_a_finished_sweep_on_a_read_only_folder_prints_its_table(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", train=SHORT_TRAIN)
    assert run_cli(exp, out) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    make_read_only(monkeypatch, out)
    code = main(["run", str(exp), "--out", str(out), "-v"])  # plots asked for: they cannot be written; -v: skips
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| class-il | replay+ewc | 1 |" in captured.out and f"skip {out / RUN_KEY}.json" in captured.err
    assert "clft: warning: plots not written: cannot write" in captured.err and "Read-only file system" in captured.err
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_read_only_folder_with_work_to_do_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    make_read_only(monkeypatch, out)
    line = one_line_error(capsys, run_cli(write_yaml(tmp_path / "exp.yaml", train=SHORT_TRAIN), out), 74)
    assert line == f"clft: error: cannot write {out}: Read-only file system; nothing was run"
