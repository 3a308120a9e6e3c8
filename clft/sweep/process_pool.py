"""A pool of spawned worker processes in which a dead worker fails its own call only.

``concurrent.futures.ProcessPoolExecutor`` breaks as a whole when one worker dies: every
pending call fails with ``BrokenProcessPool`` and the other workers are terminated, so a
sweep could not tell the run that killed its worker from the runs that merely shared the
pool. Here each worker runs one call at a time over its own pipe, and a manager thread
watches the pipes and the processes' sentinels:

- a result (or an exception, pickled back) completes the call's ``Future``;
- a worker that dies (SIGKILL, the OOM killer) fails only the call it was running, with
  ``WorkerDied`` naming its exit status; it is replaced when there is work again, so the
  pool goes on, and the other workers' runs are not disturbed;
- ``cancel_queued()`` cancels the calls no worker has started (a first Ctrl-C), and
  ``terminate()`` ends every worker (SIGTERM, then SIGKILL after ``TERMINATE_GRACE``
  seconds), failing their calls.

Workers ignore SIGINT (a Ctrl-C at a terminal reaches the whole process group; the driver
decides what it means), take their GPU slot, and end themselves when the driver is gone
(``exit_with_parent``). Calls are submitted in order and started in that order.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from contextlib import suppress
from multiprocessing.connection import Connection, wait

from clft.errors import ClftError

PARENT_POLL_SECONDS = 0.5
"""How often a worker checks that its driver is still alive (``exit_with_parent``)."""
TERMINATE_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when the pool is terminated."""


class WorkerDied(ClftError):
    """The worker process running a call ended without answering (killed, out of memory)."""

    exit_code = 1


class RemoteError(Exception):
    """An exception raised in a worker that could not be sent back as itself; holds its traceback text."""


def exit_with_parent(parent: int, poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """Return never; ``os._exit(1)`` once this process's parent is no longer ``parent``.

    A driver killed by SIGTERM/SIGKILL (a scheduler, ``timeout``) cannot end its workers,
    which would finish their runs unseen, with the code of that moment. Ending them keeps
    the finished runs and task checkpoints (``--resume``).
    """
    while os.getppid() == parent:
        time.sleep(poll_seconds)
    os._exit(1)


def _worker_main(conn: Connection, gpu: str | None, parent: int) -> None:
    """A worker: take calls ``(function, args)`` from ``conn`` until ``None`` or EOF; answer each with
    ``("ok", value)`` or ``("error", exception)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before torch touches CUDA
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True, name="clft-parent-watch").start()
    while True:
        try:
            call = conn.recv()
        except EOFError:
            return
        if call is None:
            return
        function, args = call
        try:
            answer = ("ok", function(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the driver
            answer = ("error", exc)
        try:
            conn.send(answer)
        except Exception:  # noqa: BLE001 - an answer that does not pickle: its text does
            conn.send(("error", RemoteError("".join(traceback.format_exception(answer[1]))
                                            if answer[0] == "error" else f"unpicklable result {answer[1]!r}")))


class _Worker:
    def __init__(self, context, gpu: str | None) -> None:
        self.conn, child = context.Pipe()
        # not daemonic: a run may start processes of its own (a plugin's DataLoader workers)
        self.process = context.Process(target=_worker_main, args=(child, gpu, os.getpid()), daemon=False)
        self.process.start()
        child.close()
        self.future: Future | None = None


class WorkerPool:
    """``len(gpus)`` worker slots (slot k's worker sees GPU ``gpus[k]``; None: no GPU), started on demand."""

    def __init__(self, gpus: list[str | None], context=None) -> None:
        self.context = context or multiprocessing.get_context("spawn")  # no fork of a process with torch threads
        self.gpus = list(gpus)
        self.workers: list[_Worker | None] = [None] * len(self.gpus)
        self.queue: deque[tuple[Future, Callable, tuple]] = deque()
        self.lock = threading.Lock()
        self._wake_read, self._wake_write = self.context.Pipe(duplex=False)
        self._closing = False
        self._broken: RemoteError | None = None
        self._manager = threading.Thread(target=self._manage, daemon=True, name="clft-worker-pool")
        self._manager.start()

    def submit(self, function: Callable, *args) -> Future:
        future: Future = Future()
        with self.lock:
            self.queue.append((future, function, args))
        if self._broken is not None:
            self._fail_all(self._broken)
        self._wake()
        return future

    def cancel_queued(self) -> int:
        """Cancel every call no worker has started; returns how many."""
        with self.lock:
            queued, self.queue = list(self.queue), deque()
        for future, _, _ in queued:
            future.cancel()
            future.set_running_or_notify_cancel()  # so that concurrent.futures.wait sees it done
        return len(queued)

    def terminate(self) -> None:
        """End every worker now (SIGTERM, then SIGKILL); their calls fail with CancelledError."""
        self.cancel_queued()
        with self.lock:
            self._closing = True
            workers = [w for w in self.workers if w is not None]
        for worker in workers:
            worker.process.terminate()
        deadline = time.monotonic() + TERMINATE_GRACE
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._stop_manager()  # it fails the calls of the ended workers (CancelledError)

    def close(self) -> None:
        """Let the workers finish their calls, then end them (queued calls are cancelled)."""
        self.cancel_queued()
        with self.lock:
            self._closing = True
            workers = [w for w in self.workers if w is not None]
        for worker in workers:
            future = worker.future  # (the manager clears it when the call ends)
            if future is not None:
                with suppress(CancelledError):
                    future.exception()  # waits for the running call
            with suppress(OSError):
                worker.conn.send(None)
            worker.process.join(TERMINATE_GRACE)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._stop_manager()

    def _stop_manager(self) -> None:
        self._wake()
        self._manager.join()

    def _wake(self) -> None:
        with suppress(OSError):
            self._wake_write.send_bytes(b"!")

    def _manage(self) -> None:
        try:
            self._manage_loop()
        except BaseException as exc:  # noqa: BLE001 - never leave the driver waiting on calls nobody runs
            self._broken = RemoteError(f"the worker pool failed: {exc!r}")
            self._fail_all(self._broken)

    def _fail_all(self, error: BaseException) -> None:
        with self.lock:
            running = [w.future for w in self.workers if w is not None and w.future is not None]
            queued, self.queue = [future for future, _, _ in self.queue], deque()
        for future in running:
            if not future.done():
                future.set_exception(error)
        for future in queued:
            if future.set_running_or_notify_cancel():  # False: it was cancelled (and is now notified)
                future.set_exception(error)

    def _manage_loop(self) -> None:
        while True:
            with self.lock:
                if self._closing and all(w is None or w.future is None for w in self.workers):
                    return
                self._dispatch()
                busy = [w for w in self.workers if w is not None and w.future is not None]
            ready = wait([self._wake_read, *(w.conn for w in busy), *(w.process.sentinel for w in busy)])
            if self._wake_read in ready:
                while self._wake_read.poll():
                    self._wake_read.recv_bytes()
            for worker in busy:
                if worker.conn in ready:
                    self._answer(worker)
            for worker in busy:
                if worker.future is not None and worker.process.sentinel in ready:
                    self._died(worker)

    def _dispatch(self) -> None:
        """Give queued calls to idle slots (starting a worker where a slot has none); under the lock."""
        for slot, worker in enumerate(self.workers):
            while self.queue and not self._closing and (worker is None or worker.future is None):
                future, function, args = self.queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue  # cancelled while queued
                if worker is None:
                    try:
                        worker = self.workers[slot] = _Worker(self.context, self.gpus[slot])
                    except Exception as exc:  # noqa: BLE001 - no process to be had (too many open files, no memory)
                        future.set_exception(RemoteError(f"no worker process could be started: {exc}"))
                        continue
                worker.future = future
                with suppress(OSError):  # the worker died this instant: its sentinel reports it next
                    worker.conn.send((function, args))
                break

    def _answer(self, worker: _Worker) -> None:
        try:
            kind, value = worker.conn.recv()
        except (EOFError, OSError):
            self._died(worker)
            return
        except Exception as exc:  # noqa: BLE001 - an answer that does not unpickle here
            kind, value = "error", RemoteError(f"the worker's answer could not be read: {exc!r}")
        future, worker.future = worker.future, None
        if kind == "ok":
            future.set_result(value)
        else:
            future.set_exception(value)

    def _died(self, worker: _Worker) -> None:
        worker.process.join()
        future, worker.future = worker.future, None
        with self.lock:
            self.workers[self.workers.index(worker)] = None  # a new worker takes the slot when there is work
        if future is None or future.done():
            return
        if self._closing:  # ended by terminate()
            future.set_exception(CancelledError("the sweep was interrupted"))
            return
        code = worker.process.exitcode
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        future.set_exception(WorkerDied(f"its worker process ended ({how})"))
