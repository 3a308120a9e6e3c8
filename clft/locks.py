"""A per-run lock file so two sweeps writing into one results folder never run the same run.

The lock is created with ``O_CREAT | O_EXCL`` and holds the owner's host and pid.
A lock whose process is gone (same host) is stale and taken over.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from clft.errors import ClftError


class RunLockedError(ClftError):
    """Another live process is running this run."""

    exit_code = 75


class RunLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.owner = f"{socket.gethostname()} {os.getpid()}"

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    raise RunLockedError(
                        f"{self.path} is held by {self._read()}; that process is running this run"
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(self.owner + "\n")
            return self
        raise RunLockedError(f"could not take {self.path}")

    def __exit__(self, *exc) -> None:
        if self._read() == self.owner:
            self.path.unlink(missing_ok=True)

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return ""

    def _stale(self) -> bool:
        host, _, pid = self._read().partition(" ")
        if host != socket.gethostname() or not pid.isdigit():
            return not host  # unreadable/empty lock: stale; another host's lock: live
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
