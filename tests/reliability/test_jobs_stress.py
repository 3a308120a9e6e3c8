"""``clft run --jobs N`` under stress: dead workers, Ctrl-C, absurd job counts, an unreachable Ray.

- A worker that dies fails its own run only (``clft.sweep.process_pool``): that run is retried from its
  checkpoint on a new worker, the others go on; so deaths of several runs never end the sweep.
- The first Ctrl-C stops scheduling and lets the running runs finish; the second ends the workers;
  the sweep exits 130 and no run starts after the "interrupted" line.
- ``--jobs`` is at most ``MAX_JOBS`` (one line) and no more workers start than there are runs.
- ``--executor ray --address`` an unreachable cluster is one line within seconds.

Subprocesses are driven by files (the run locks name their holders), never by sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from reliability_helpers import (
    STATEFUL,
    experiment,
    files,
    lock_holders,
    matrices,
    one_line_error,
    run_quietly,
    write_yaml,
)

import clft.sweep.executors as executors
from clft.cli import main

FOUR_RUNS = {"strategies": None, "compare": ["finetune", [{"name": "replay", "memory_size": 40}]], "seeds": [0, 1]}
RUN_ARGS = ["--quiet", "--no-plots"]


def start_sweep(tmp_path: Path, changes: dict, *flags: str) -> tuple[subprocess.Popen, Path, Path]:
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({**STATEFUL, **changes}))
    out, log = tmp_path / "out", tmp_path / "log"
    with open(log, "w") as stderr:
        sweep = subprocess.Popen([sys.executable, "-m", "clft", "run", str(exp), "--out", str(out), "--no-plots",
                                  "-v", "--jobs", "2", *flags], stdout=subprocess.DEVNULL, stderr=stderr)  # -v: starts
    return sweep, out, log


def wait_for(condition, sweep: subprocess.Popen, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert sweep.poll() is None, f"the sweep ended (status {sweep.returncode}) before {what}"
        time.sleep(0.01)
    sweep.kill()
    raise AssertionError(f"timed out waiting for {what}")


def finish(sweep: subprocess.Popen, timeout: float) -> int:
    try:
        return sweep.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        sweep.kill()
        sweep.wait()
        raise AssertionError(f"the sweep did not end within {timeout}s") from None


@pytest.mark.slow
def test_three_worker_deaths_charge_only_their_runs_and_the_sweep_finishes(tmp_path):
    slow = {**FOUR_RUNS, "train": {**STATEFUL["train"], "max_steps_per_task": 40, "epochs": 3}}
    reference = tmp_path / "reference"
    run_quietly(experiment(**slow), reference)
    sweep, out, log = start_sweep(tmp_path, slow)
    killed: list[str] = []
    for _ in range(3):  # three different runs, each killed once it has a task checkpoint
        def victim():
            for run, pid in lock_holders(out).items():
                if run not in killed and pid != sweep.pid and (out / ".checkpoints" / run / "LATEST").exists():
                    return run, pid
            return None
        run, pid = wait_for(victim, sweep, f"a fourth run to kill after {killed}")
        os.kill(pid, signal.SIGKILL)
        killed.append(run)
    code = finish(sweep, 600)
    text = log.read_text()
    assert code == 0, text
    deaths = [line for line in text.splitlines() if line.startswith("the worker of ")]
    assert len(deaths) == 3 and all("signal SIGKILL" in line and "retry 1/2" in line for line in deaths), deaths
    assert len([line for line in text.splitlines() if " retry " in line]) == 3  # no run charged for another's death
    assert matrices(out) == matrices(reference)
    assert files(out) == files(reference)  # no checkpoint, lock, claim or temporary file left


LONG = {**FOUR_RUNS, "train": {**STATEFUL["train"], "epochs": 500, "max_steps_per_task": None}}


def both_workers_busy(out: Path, sweep: subprocess.Popen):
    held = {run: pid for run, pid in lock_holders(out).items() if pid != sweep.pid}
    return held if len(held) == 2 else None


def after_interrupt(text: str) -> tuple[str, list[str]]:
    """The "interrupted" line and the lines after it."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("interrupted: no new run will start"))
    return lines[index], lines[index + 1:]


def alive(pids) -> list[int]:
    psutil = pytest.importorskip("psutil")
    return [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_two_ctrl_c_end_the_workers_and_the_sweep_exits_130(tmp_path):
    sweep, out, log = start_sweep(tmp_path, LONG)
    workers = wait_for(lambda: both_workers_busy(out, sweep), sweep, "both workers to hold a run")
    sweep.send_signal(signal.SIGINT)
    wait_for(lambda: "interrupted: no new run will start" in log.read_text(), sweep, "the first Ctrl-C's line", 60)
    sweep.send_signal(signal.SIGINT)  # while the running runs would go on for minutes
    code = finish(sweep, 120)
    text = log.read_text()
    assert code == 130, text
    clft_lines = [line for line in text.splitlines() if line.startswith("clft: ")]
    assert clft_lines[-1].startswith("clft: interrupted; finished tasks are checkpointed") and "Traceback" not in text
    # (multiprocessing's resource tracker may add a line after it about the ended workers' semaphores)
    deadline = time.monotonic() + 30
    while alive(workers.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(workers.values()), "workers outlived the interrupted sweep"
    interrupted, later = after_interrupt(text)
    assert not [line for line in later if ": training " in line], text
    assert not list(out.rglob("seed*.json"))


@pytest.mark.slow
def test_one_ctrl_c_lets_the_running_runs_finish_and_starts_no_other(tmp_path):
    three = {"strategies": None, "compare": ["finetune"], "seeds": [0, 1, 2],
             "train": {**STATEFUL["train"], "max_steps_per_task": 30, "epochs": 2}}
    sweep, out, log = start_sweep(tmp_path, three)
    wait_for(lambda: both_workers_busy(out, sweep), sweep, "both workers to hold a run")
    sweep.send_signal(signal.SIGINT)
    code = finish(sweep, 600)
    text = log.read_text()
    assert code == 130, text
    interrupted, later = after_interrupt(text)
    before = text.splitlines()[:text.splitlines().index(interrupted)]
    running = {f"class-il/finetune/seed{seed}" for seed in (0, 1, 2) if f"finetune seed {seed}" in interrupted}
    done_before = {line.split()[1] for line in before if line.startswith("done ")}
    finished = {str(p.relative_to(out).with_suffix("")) for p in out.rglob("seed*.json")}
    assert len(running) <= 2 and finished == done_before | running, text  # the running ones were let finish
    started = {line.split()[2].rstrip(":") for line in text.splitlines() if ": training " in line}
    assert started == {run.removeprefix("class-il/") for run in finished}, text  # nothing else ever started
    assert all(line.split()[2].rstrip(":") in {r.removeprefix("class-il/") for r in running}
               for line in later if ": training " in line), text


def test_absurd_job_counts_are_one_line(tmp_path, capsys):
    exp = write_yaml(tmp_path / "exp.yaml")
    started = time.monotonic()
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS,
                                        "--jobs", "1000000000"]), 2)
    assert line == "clft: error: --jobs must lie in [1, 256], got 1000000000"
    assert time.monotonic() - started < 60 and not (tmp_path / "out").exists()


def test_no_more_workers_start_than_there_are_runs(tmp_path, monkeypatch):
    started = []

    class Stop(Exception):
        pass

    class Recorder:
        def __init__(self, cfg, out_dir, jobs):
            started.append(jobs)
            raise Stop

    monkeypatch.setattr(executors, "ProcessBackend", Recorder)
    with pytest.raises(Stop):
        executors.run_sweep(experiment(seeds=[0, 1]), tmp_path / "out", jobs=64, progress=False)
    assert started == [2]


@pytest.mark.slow
def test_an_unreachable_ray_address_is_one_line_within_seconds(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'clft[ray]')")
    exp = write_yaml(tmp_path / "exp.yaml")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "clft", "run", str(exp), "--out", str(tmp_path / "out"),
                               *RUN_ARGS, "--executor", "ray", "--address", "127.0.0.1:1"],
                              capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail("ray --address 127.0.0.1:1 still retrying after 150 s")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("clft: error: cannot reach the Ray cluster at '127.0.0.1:1': Connection refused")
    assert time.monotonic() - started < 120
