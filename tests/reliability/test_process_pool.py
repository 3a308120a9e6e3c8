"""``clft.sweep.process_pool.WorkerPool``: a dead worker fails its own call only; queued calls can be cancelled.

The calls are small functions of this module (kept free of heavy imports, so a spawned worker
starts in a second); they wait for marker files, never for a fixed time.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, wait
from pathlib import Path

import pytest

import clft.sweep.process_pool as process_pool
from clft.sweep.process_pool import RemoteError, WorkerDied, WorkerPool

TIMEOUT = 120


def pid_when(marker: str) -> int:
    """Wait until ``marker`` exists, then return this worker's pid."""
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(marker):
        if time.monotonic() > deadline:
            raise TimeoutError(marker)
        time.sleep(0.01)
    return os.getpid()


def die(started: str) -> None:
    Path(started).write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def fail() -> None:
    raise ValueError("a run's own error")


@pytest.fixture
def pool():
    pool = WorkerPool([None, None])
    yield pool
    pool.terminate()


def test_a_dead_worker_fails_its_own_call_and_the_other_goes_on(pool, tmp_path):
    release = tmp_path / "release"
    survivor = pool.submit(pid_when, str(release))
    victim = pool.submit(die, str(tmp_path / "started"))
    with pytest.raises(WorkerDied, match="signal SIGKILL"):
        victim.result(timeout=TIMEOUT)
    assert not survivor.done()  # the other worker's call was not disturbed
    release.touch()
    survivor_pid, dead_pid = survivor.result(timeout=TIMEOUT), int((tmp_path / "started").read_text())
    again = tmp_path / "again"
    both = [pool.submit(pid_when, str(again)) for _ in range(2)]  # two at once: both slots must have a worker
    again.touch()
    pids = {future.result(timeout=TIMEOUT) for future in both}
    assert survivor_pid in pids and len(pids) == 2 and dead_pid not in pids  # a new worker took the dead one's slot


def test_an_exception_comes_back_as_itself(pool):
    with pytest.raises(ValueError, match="a run's own error"):
        pool.submit(fail).result(timeout=TIMEOUT)


def test_cancelled_queued_calls_end_a_wait_and_running_ones_go_on(tmp_path):
    pool = WorkerPool([None])
    try:
        release = tmp_path / "release"
        running = pool.submit(pid_when, str(release))
        queued = [pool.submit(pid_when, str(release)) for _ in range(2)]
        deadline = time.monotonic() + TIMEOUT
        while not running.running():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert pool.cancel_queued() == 2
        done, _ = wait([*queued, running], timeout=TIMEOUT, return_when=FIRST_COMPLETED)
        assert set(done) == set(queued) and all(f.cancelled() for f in queued)
        release.touch()
        assert running.result(timeout=TIMEOUT) > 0
    finally:
        pool.terminate()


def test_terminate_ends_running_calls_at_once(tmp_path):
    pool = WorkerPool([None])
    running = pool.submit(pid_when, str(tmp_path / "never"))
    deadline = time.monotonic() + TIMEOUT
    while not running.running():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    pool.terminate()
    with pytest.raises(CancelledError):
        running.result(timeout=TIMEOUT)
    assert time.monotonic() - started < 30


def test_a_worker_that_cannot_start_fails_its_calls_instead_of_hanging(monkeypatch):
    def no_worker(*args):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(process_pool, "_Worker", no_worker)
    pool = WorkerPool([None])
    try:
        for _ in range(2):  # the first breaks the pool; a later call fails at once too
            with pytest.raises(RemoteError, match="Too many open files"):
                pool.submit(fail).result(timeout=TIMEOUT)
    finally:
        pool.terminate()


def test_a_failing_pool_fails_its_calls_instead_of_hanging(monkeypatch):
    def broken_wait(*args, **kwargs):
        raise RuntimeError("the pipes are gone")

    monkeypatch.setattr(process_pool, "wait", broken_wait)
    pool = WorkerPool([None])
    try:
        with pytest.raises(RemoteError, match="the worker pool failed: RuntimeError"):
            pool.submit(fail).result(timeout=TIMEOUT)
    finally:
        pool.terminate()
