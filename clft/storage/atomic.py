"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every file clft writes (results, checkpoints' metadata, tables, plots, the report, the stream cache)
goes through here, and gets the mode ``open()`` would give it, ``0o666`` less the process's umask
(``tempfile.mkstemp`` alone makes ``0o600``). A full disk or a missing permission is a one-line
``WriteError``; the kill points (``clft.storage.faults``) let tests kill a write half-way.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from clft.errors import ClftError
from clft.storage.faults import kill_point


class WriteError(ClftError):
    """A file could not be written (a full disk, no permission); the previous file is unchanged."""

    exit_code = 74  # EX_IOERR


def _reason(exc: OSError) -> str:
    code = exc.errno if exc.errno is not None else next((a for a in exc.args if isinstance(a, int)), None)
    return exc.strerror or (os.strerror(code) if code is not None else str(exc) or type(exc).__name__)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one.

    Temporary file in the same directory, flush + fsync, then ``os.replace``. On
    any error (a full disk included) the temporary file is removed and the
    previous ``path`` is untouched; an OSError becomes a one-line ``WriteError``.
    """
    path = Path(path)
    try:
        _write_and_replace(path, data)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {_reason(exc)}; {path.name} is left as it was") from exc


def _write_and_replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umasked(0o666))  # as open() would create it, not mkstemp's 0o600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        kill_point(f"write:{path.name}:before-rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def current_umask() -> int:
    """The process's umask: read from /proc on Linux (no change, no race with other threads), else set
    and restored at once (os.umask has no getter)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umasked(mode: int) -> int:
    """``mode`` less the umask: what ``open()`` (0o666) or ``mkdir()`` (0o777) would create."""
    return mode & ~current_umask()


def mkdtemp_umasked(prefix: str, folder: Path) -> Path:
    """``tempfile.mkdtemp`` (0o700) given the mode ``mkdir()`` would: a folder renamed into place later
    (a checkpoint, a cache entry) is then readable as the user's umask says."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    os.chmod(tmp, umasked(0o777))
    return tmp


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")
