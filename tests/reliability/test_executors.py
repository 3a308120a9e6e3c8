"""Executors (``clft run --jobs N`` / ``--executor ray``): same matrices as a sequential sweep,
a SIGKILLed worker is retried from its checkpoint, a rerun trains nothing (docs/scaling.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from reliability_helpers import STATEFUL, experiment, files, lock_holder, lock_holders, matrices, run_quietly

from clft.errors import ConfigError
from clft.sweep.executors import Driver, Interrupts, gpu_slots, run_sweep, threads_per_job

FOUR_RUNS = {"strategies": None, "compare": ["finetune", [{"name": "replay", "memory_size": 40}]], "seeds": [0, 1]}
EXECUTORS = [pytest.param({"jobs": 2}, id="jobs2"), pytest.param({"executor": "ray"}, id="ray")]


def needs_ray(options: dict) -> None:
    if options.get("executor") == "ray":
        pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'clft[ray]')")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sequential")
    run_quietly(experiment(**FOUR_RUNS), out)
    return matrices(out)


def result_times(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("seed*.json")}


@pytest.mark.slow
@pytest.mark.parametrize("options", EXECUTORS)
def test_parallel_sweep_equals_sequential_and_a_rerun_trains_nothing(options, reference, tmp_path, capsys):
    needs_ray(options)
    out = tmp_path / "out"
    paths = run_sweep(experiment(**FOUR_RUNS), out, progress=False, **options)
    assert [p.relative_to(out).as_posix() for p in paths] == sorted(reference)  # plan order
    assert matrices(out) == reference
    done = [line for line in capsys.readouterr().err.splitlines() if line.startswith("done ")]
    assert sorted(line.split()[1] for line in done) == sorted(k.removesuffix(".json") for k in reference)
    before = result_times(out)
    run_sweep(experiment(**FOUR_RUNS), out, progress=False, **options)
    lines = capsys.readouterr().err.splitlines()
    assert result_times(out) == before  # no result rewritten
    assert len([line for line in lines if line.startswith("skip ")]) == 4
    assert not [line for line in lines if line.startswith("done ") or ": training " in line]


@pytest.mark.slow
@pytest.mark.parametrize("options", [["--jobs", "2"], ["--executor", "ray"]], ids=["jobs2", "ray"])
def test_a_sigkilled_worker_is_retried_from_its_checkpoint(options, tmp_path):
    needs_ray({"executor": "ray"} if "ray" in options else {})
    slow = {**FOUR_RUNS, "train": {**STATEFUL["train"], "max_steps_per_task": 40, "epochs": 3}}
    yaml_path = tmp_path / "exp.yaml"
    yaml_path.write_text(yaml.safe_dump({**STATEFUL, **slow}))
    reference = tmp_path / "reference"
    run_quietly(experiment(**slow), reference)
    out, log = tmp_path / "out", tmp_path / "log"
    run = out / "class-il" / "replay" / "seed1"
    with open(log, "w") as stderr:
        sweep = subprocess.Popen([sys.executable, "-m", "clft", "run", str(yaml_path), "--out", str(out), "-v",
                                  "--no-plots", *options], stdout=subprocess.DEVNULL, stderr=stderr,
                                 env={**os.environ, "RAY_DEDUP_LOGS": "0"})
        victim = kill_after_first_checkpoint(out / ".checkpoints" / "class-il" / "replay" / "seed1",
                                              run.with_suffix(".lock"), sweep)
        assert sweep.wait(timeout=600) == 0, log.read_text()
    text = log.read_text()
    assert victim is not None and "the worker of replay seed 1 died" in text, text
    if "--jobs" in options:  # (Ray forwards its workers' lines asynchronously)
        resumed = [line for line in text.splitlines() if "replay/seed1: training" in line]
        assert [line.split("training ")[1] for line in resumed][0] == "5 task(s)"
        assert resumed[-1].split("training ")[1] in {"1 task(s)", "2 task(s)", "3 task(s)", "4 task(s)"}, resumed
    assert matrices(out) == matrices(reference)
    assert files(out) == files(reference)  # no checkpoint, lock or temporary file left


def kill_after_first_checkpoint(checkpoints: Path, lock: Path, sweep: subprocess.Popen) -> int | None:
    """SIGKILL the worker holding ``lock`` once the run has a task checkpoint; returns its pid."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and sweep.poll() is None:
        pid = lock_holder(lock)
        if pid is not None and (checkpoints / "LATEST").exists():
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.01)
    return None


def test_workers_get_gpus_round_robin_and_a_share_of_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert gpu_slots(3, "auto") == ["3", "5", "3"]
    assert gpu_slots(2, "cpu") == [None, None]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_slots(2, "auto") == [None, None]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert [threads_per_job(n) for n in (1, 3, 8, 16)] == [8, 2, 1, 1]


@pytest.mark.parametrize(("options", "message"), [
    ({"jobs": 0}, r"--jobs must lie in \[1, 256\], got 0"),
    ({"executor": "dask"}, "unknown executor 'dask'; valid: local, ray"),
    ({"address": "10.0.0.1:6379"}, "--address names a Ray cluster; use it with --executor ray"),
])
def test_bad_executor_options_are_one_line_errors(options, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        run_sweep(experiment(), tmp_path, progress=False, **options)


@pytest.mark.parametrize(("block", "message"), [
    ({"cpus": 0}, "cpus must be > 0"), ({"gpus": -1}, "gpus must be >= 0"), ({"tpus": 1}, "tpus"),
])
def test_resources_are_validated(block, message):
    with pytest.raises(ConfigError, match=message):
        experiment(resources=block)


def test_resources_do_not_change_the_config_hash(tmp_path):
    train = {**STATEFUL["train"], "max_steps_per_task": 1}
    run_quietly(experiment(train=train), tmp_path)
    before = result_times(tmp_path)
    run_quietly(experiment(train=train, resources={"cpus": 4, "gpus": 1}), tmp_path)  # "another config" would raise
    assert result_times(tmp_path) == before and len(before) == 1  # same hash: skipped


@pytest.mark.parametrize(("flags", "message"), [
    (["--jobs", "0"], "clft: error: --jobs must lie in [1, 256], got 0"),
    (["--address", "10.0.0.1:6379"], "clft: error: --address names a Ray cluster; use it with --executor ray"),
    (["--executor", "ray"], "clft: error: --executor ray needs Ray: pip install 'clft[ray]' (or pip install ray)"),
])
def test_the_command_line_answers_bad_executor_flags_in_one_line(flags, message, tmp_path, capsys, monkeypatch):
    from reliability_helpers import one_line_error, write_yaml

    from clft.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    exp = write_yaml(tmp_path / "exp.yaml")
    code = main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet", "--no-plots", *flags])
    assert one_line_error(capsys, code, 2) == message
    assert not (tmp_path / "out").exists()  # refused before any run started


@pytest.mark.slow
def test_workers_end_when_the_sweep_is_killed(tmp_path):
    psutil = pytest.importorskip("psutil")
    long = {**FOUR_RUNS, "train": {**STATEFUL["train"], "max_steps_per_task": None, "epochs": 500}}
    yaml_path = tmp_path / "exp.yaml"
    yaml_path.write_text(yaml.safe_dump({**STATEFUL, **long}))
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "clft", "run", str(yaml_path), "--out", str(out), "--quiet",
                              "--no-plots", "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers, deadline = [], time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline:  # both workers hold a run
        workers = list(lock_holders(out).values())
        time.sleep(0.05)
    assert len(workers) == 2 and sweep.pid not in workers
    sweep.kill()
    sweep.wait()
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in workers) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers outlived their killed sweep"
    assert not list(out.rglob("seed*.json"))  # 500 epochs: no run finished, none written after the kill


def test_the_interrupted_line_names_a_run_that_finished_at_the_interrupt(capsys):
    """A run finishing as the first Ctrl-C lands is reported after the "interrupted" line, so that line names
    it too (the CI race the stress test met: it named only the run still computing)."""
    interrupts, futures = Interrupts(), []
    order = []

    def submit(planned, options, wait_if_locked):
        future = Future()
        future.set_running_or_notify_cancel()
        futures.append(future)
        if len(futures) == 2:  # Ctrl-C as the second run starts, and the first finishes that instant
            interrupts.count = 1
            futures[0].set_result(SimpleNamespace(path=Path("seed0.json")))
        return future

    def finished(outcome):
        order.append(outcome.path.name)
        if not futures[1].done():
            futures[1].set_result(SimpleNamespace(path=Path("seed1.json")))  # the second run finishes later

    planned = [SimpleNamespace(plan=SimpleNamespace(label="finetune", seed=seed)) for seed in (0, 1, 2)]
    driver = Driver(submit, lambda exc: False, SimpleNamespace(finished=finished), interrupts)
    with pytest.raises(KeyboardInterrupt):
        driver.run(planned, options=None)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["interrupted: no new run will start; waiting for 2 running run(s) to finish (finetune seed 0, "
                     "finetune seed 1); press Ctrl-C again to stop them now (finished tasks are checkpointed)"]
    assert len(futures) == 2 and order == ["seed0.json", "seed1.json"]  # both reported; seed 2 never started
