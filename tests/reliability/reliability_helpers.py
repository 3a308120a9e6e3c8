"""Shared helpers of the reliability tests: tiny experiments, forked children, tree checks."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.sweep.run import run_experiment

STATEFUL = {
    "name": "reliability",
    "seeds": [0],
    "benchmark": {"name": "split-digits", "scenario": "class-il"},
    "backbone": {"name": "mlp", "hidden": [16]},
    "strategies": [{"name": "replay", "memory_size": 40}, {"name": "ewc", "lam": 50.0, "fisher_samples": 32}],
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.01, "max_steps_per_task": 6},
}


def lock_holder(lock: Path) -> int | None:
    """The pid in a run lock file (``clft.sweep.locks`` writes "HOST PID"); None while it is empty or unreadable."""
    try:
        return int(lock.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def lock_holders(out: Path) -> dict[str, int]:
    """Run (``class-il/replay/seed1``) -> pid of the process holding its lock, for every held lock; empty when a
    folder vanished while it was walked (a checkpoint's temporary folder renamed into place): the callers poll."""
    held = {}
    try:
        locks = list(out.rglob("*.lock"))
    except FileNotFoundError:
        return {}
    for lock in locks:
        pid = lock_holder(lock)
        if pid is not None:
            held[str(lock.relative_to(out).with_suffix(""))] = pid
    return {run: pid for run, pid in held.items() if not run.startswith(".")}


def experiment(**changes) -> ExperimentConfig:
    return make_dataclass_instance(ExperimentConfig, {**STATEFUL, **changes}, "experiment")


def run_quietly(cfg: ExperimentConfig, out: Path, **options) -> list[Path]:
    return run_experiment(cfg, out, progress=False, log=lambda message: None, **options)


def forked(target, env: dict[str, str] | None = None, timeout: float = 120.0) -> int:
    """Run ``target()`` in a forked child (with ``env`` added) and return its exit code (-9: SIGKILL).

    Forking keeps the parent's imports and caches, so a child costs milliseconds instead of
    the seconds of a fresh interpreter; ``CLFT_KILL_AT`` is read at each kill point, so the
    child's environment decides where it dies.
    """
    return wait_child(start_child(target, env), timeout)


def start_child(target, env: dict[str, str] | None = None) -> int:
    """Fork; the child runs ``target()`` and exits (0, or 1 on an exception). Returns the child's pid."""
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.environ.update(env or {})
            target()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"forked child ran for over {timeout}s")
        time.sleep(0.01)


def parse_every_json(root: Path) -> int:
    """json.loads every ``*.json`` under ``root`` (hidden and checkpoint files included); returns the count.
    AssertionError naming the first file that does not parse."""
    paths = [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".json")]
    for path in paths:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise AssertionError(f"{path} does not parse: {exc}") from None
    return len(paths)


def check_checkpoints(root: Path) -> None:
    """Every LATEST names a complete task folder whose files match the sha256 its meta.json records."""
    from clft.storage.checkpoint import TENSOR_FILES, read_meta
    from clft.storage.hashing import file_sha256

    for latest in root.rglob("LATEST"):
        folder = latest.parent / latest.read_text(encoding="utf-8").strip()
        meta = read_meta(folder / "meta.json")  # its own checksum, schema and keys
        for name in TENSOR_FILES:
            assert (folder / name).is_file(), f"{latest} names {folder}, which lacks {name}"
            assert file_sha256(folder / name) == meta["files"][name], f"{folder / name} differs from its sha256"


def matrices(root: Path) -> dict[str, tuple]:
    """Relative result path -> (acc, baseline_acc, tasks) of every run JSON under ``root``."""
    found = {}
    for path in sorted(root.rglob("seed*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[str(path.relative_to(root))] = (data["acc"], data["baseline_acc"], data["tasks"])
    return found


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def one_line_error(capsys, code: int, expected_code: int) -> str:
    """The one error line of a failed in-process ``clft.cli.main`` call: stderr's last line, no traceback
    (the lines before it are the runs' progress log)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected_code, err
    errors = [line for line in lines if line.startswith("clft: error: ")]
    assert errors and errors == lines[-1:] and "Traceback" not in err, err
    return lines[-1]


def write_yaml(path: Path, **changes) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({**STATEFUL, **changes}))
    return path
