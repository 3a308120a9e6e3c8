"""Which sweeps are writing into a results folder now, and with which configs.

Per-run locks (``clft.sweep.locks``) keep two sweeps from training one run at once, but not from
filling one folder with runs of two configs: a sweep at 2 epochs and one at 6 each wrote the
runs the other had not reached. So a sweep that will write into ``<out>`` first *claims* it:

- under a short mutex (``<out>/.sweeps.lock``, a ``RunLock`` retried until free) it reads the
  live claims in ``<out>/.sweeps/``: one file per running sweep, which that sweep holds an
  ``flock`` on while it runs (the kernel drops it when the sweep ends, SIGKILL included; a file
  nobody holds is a dead sweep's, and is removed);
- a live claim that runs one of this sweep's rows (``scenario/label``) with another setting (the
  resolved config up to the seed, ``clft.results.staleness.setting_hash``) makes this sweep refuse at
  once, before it writes anything, naming that sweep (``FolderInUseError``, exit status 2);
- else it adds its own claim (JSON: experiment name, host, pid, start time, rows) and keeps it
  until it ends. Sweeps of one config (or of disjoint rows) share a folder as before.

When the last claim goes, ``.sweeps/`` and the mutex file go too, leaving the folder as the runs left it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from clft.config.validation import check_no_links
from clft.errors import ConfigError
from clft.sweep.locks import RunLock, RunLockedError, open_no_follow

CLAIMS, MUTEX = ".sweeps", ".sweeps.lock"
MUTEX_POLL_SECONDS = 0.01


class FolderInUseError(ConfigError):
    """Another live sweep writes runs of this sweep's rows with another config into the folder."""


class SweepClaim:
    """A sweep's claim on ``folder`` for ``rows`` (``{"class-il/ewc": setting hash}``); a context manager."""

    def __init__(self, folder: Path, rows: dict[str, str], experiment: str) -> None:
        self.folder, self.rows, self.experiment = Path(folder), dict(rows), experiment
        self.path: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> SweepClaim:
        claims = self.folder / CLAIMS
        with _mutex(self.folder):
            check_no_links(self.folder, claims)
            claims.mkdir(exist_ok=True)
            for other in live_claims(claims):
                self._refuse_conflict(other)
            self.path = claims / f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.lock"
            fd = open_no_follow(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)  # a new file nobody else has opened: granted at once
            os.write(fd, json.dumps(self._document()).encode())
            self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still holding it
        os.close(self._fd)
        self._fd = None
        try:
            with _mutex(self.folder):
                (self.folder / CLAIMS).rmdir()  # the last claim: leave no trace
        except OSError:
            pass  # other sweeps' claims are still there (or the folder went read-only)

    def _document(self) -> dict:
        return {"experiment": self.experiment, "host": socket.gethostname(), "pid": os.getpid(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": self.rows}

    def _refuse_conflict(self, other: dict) -> None:
        rows = other.get("rows") if isinstance(other.get("rows"), dict) else {}
        clashing = sorted(row for row, setting in self.rows.items() if row in rows and rows[row] != setting)
        if clashing:
            raise FolderInUseError(
                f"{self.folder} is in use by another sweep: experiment {other.get('experiment')!r} (pid "
                f"{other.get('pid')} on {other.get('host')}, since {other.get('started')}) runs {clashing[0]} "
                f"with another config ({len(clashing)} such row(s)); nothing was written: wait for it to "
                "finish, or use another --out")


def live_claims(claims: Path) -> list[dict]:
    """The documents of the claims whose sweeps still run; a dead sweep's claim file is removed (call
    under the mutex)."""
    found = []
    for path in sorted(claims.glob("*.lock")):
        try:
            fd = open_no_follow(path, os.O_RDONLY)
        except (FileNotFoundError, ConfigError):
            continue
        try:
            if _try_shared(fd):
                path.unlink(missing_ok=True)  # nobody holds it: its sweep ended without cleaning up
                continue
            found.append(_read_claim(fd))
        finally:
            os.close(fd)
    return found


def _try_shared(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return False
        raise
    return True


def _read_claim(fd: int) -> dict:
    data = b""
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    try:
        document = json.loads(data.decode("utf-8"))
    except ValueError:  # being written this instant is impossible (under the mutex); damaged: name it as unknown
        document = None
    return document if isinstance(document, dict) else {"experiment": "(unreadable claim)", "rows": {}}


class _mutex:
    """``<folder>/.sweeps.lock`` held for a few file operations (a ``RunLock``, retried while another
    sweep holds it)."""

    def __init__(self, folder: Path) -> None:
        self.lock = RunLock(folder / MUTEX)

    def __enter__(self) -> None:
        while True:
            try:
                self.lock.__enter__()
                return
            except RunLockedError:
                time.sleep(MUTEX_POLL_SECONDS)

    def __exit__(self, *exc) -> None:
        self.lock.__exit__(*exc)
