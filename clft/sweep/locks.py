"""A per-run lock so two sweeps writing into one results folder never run the same run at once.

The lock is an advisory ``flock`` on ``<run>.lock``; the file also holds the owner's
host and pid, for messages. The kernel drops the lock when its process ends, however
it ends (SIGKILL included), so a killed sweep never leaves a run locked: a leftover
file nobody holds is free, and a reused pid cannot keep it alive. The holder removes
the file on release; a process that locked the file just as it was removed sees that
the path no longer names the file it locked, and tries again on the new one. A lock
file is opened with ``O_NOFOLLOW``: a symbolic link at its name is refused, never followed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from clft.errors import ClftError, ConfigError


class RunLockedError(ClftError):
    """Another live process is running this run; ``path`` is the lock file."""

    exit_code = 75

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _names_file(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def open_no_follow(path: Path, flags: int) -> int:
    """``os.open`` that never follows a symbolic link at ``path`` (``O_NOFOLLOW``): a link planted at a
    lock's name would make the lock create or truncate a file elsewhere. A link is a one-line ConfigError."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise ConfigError(f"refused: {path} is a symbolic link; clft writes nothing through a link in a "
                              "results folder (remove the link)") from None
        raise


class RunLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.owner = f"{socket.gethostname()} {os.getpid()}"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = open_no_follow(self.path, os.O_CREAT | os.O_RDWR)
            if not _try_flock(fd):
                os.close(fd)
                holder = self._read() or "another process"
                raise RunLockedError(f"{self.path} is held by {holder}; that process is running this run", self.path)
            if _names_file(self.path, fd):
                os.ftruncate(fd, 0)
                os.write(fd, (self.owner + "\n").encode())
                self._fd = fd
                return self
            os.close(fd)  # the holder removed the file as we locked it: lock the new one
        raise RunLockedError(f"could not take {self.path}", self.path)

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still holding the lock
            os.close(self._fd)
            self._fd = None

    def held(self) -> bool:
        """Whether another process holds this lock now."""
        try:
            fd = open_no_follow(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            return not _try_flock(fd)
        finally:
            os.close(fd)  # also drops the probe's own lock

    def wait(self, poll: float = 1.0, sleep=time.sleep) -> None:
        """Block until no other process holds this lock (it finished, failed or was killed)."""
        while self.held():
            sleep(poll)

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return ""
