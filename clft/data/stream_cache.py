"""Built task streams cached on disk, so the second run of a sweep does not rebuild them.

``cached_tasks(benchmark, seed)`` returns ``benchmark.tasks(seed)``, read back from
``<cache>/streams/<key>/`` when present. The key is a SHA-256 of everything that
decides the stream:

- the benchmark's registered name, its resolved ``Config`` (plain JSON) and the seed;
- the code that builds streams: the source of the benchmark's module, of every
  module in ``clft/benchmarks/``, of ``clft/data/tasks.py``/``clft/types.py`` and of this
  module (the entry's format);
- the input files: (path, size, mtime) of every file under the data directory
  (``data_dir`` option or ``$CLFT_DATA_DIR``) and of every config string naming an
  existing file or folder (YAML-only benchmarks' CSVs);
- the ``datasets`` version (the on-disk format).

Every field of each ``Task`` is kept: its splits as datasets, the others (id, name,
classes, metric, max_new_tokens) in ``tasks.json``. Each split is written with
``Dataset.save_to_disk`` (Arrow, e.g. MNIST pixels as float32 arrays) into a temporary
folder renamed into place, so a killed writer never leaves a half entry; reads are
memory-mapped (``load_from_disk``). Tokenised copies made by the HF backbones land
beside them (``clft.backbones.hf_common.cached_map``).

``$CLFT_CACHE_DIR`` sets the cache root (default ``~/.cache/clft``); ``CLFT_STREAM_CACHE=0``
turns the cache off. Deleting the folder is always safe.

The cache is bounded: every edit of the stream-building code makes new keys, so old
entries could pile up (15 GB after a few weeks of development). After each new entry is
written, the least recently used entries (``tasks.json``'s mtime, touched on every read)
are removed until ``streams/`` holds at most ``$CLFT_CACHE_MAX_GB`` gigabytes (default
10); the entry just written is always kept. A process still using a pruned entry keeps its
memory-mapped splits, and a tokenised copy it then writes recreates the entry's folder with
that file alone (no ``tasks.json``: not an entry); the next build of the same key replaces
such leftovers instead of failing to rename onto them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from contextlib import suppress
from dataclasses import fields
from functools import lru_cache
from pathlib import Path

from clft.config.loading import to_plain
from clft.errors import ConfigError
from clft.storage.atomic import mkdtemp_umasked
from clft.storage.hashing import file_sha256
from clft.types import Benchmark, Task

SPLITS = ("train", "test", "val")
PACKAGE = Path(__file__).resolve().parent.parent  # clft/
BUILDER_SOURCES = (PACKAGE / "data" / "tasks.py", PACKAGE / "types.py", Path(__file__).resolve(),
                   *sorted((PACKAGE / "benchmarks").glob("*.py")))
DEFAULT_MAX_GB = 10.0
#: The Task fields stored in tasks.json (everything but the splits).
TASK_FIELDS = tuple(f.name for f in fields(Task) if f.name not in SPLITS)


def cache_root() -> Path:
    return Path(os.environ.get("CLFT_CACHE_DIR") or Path.home() / ".cache" / "clft").expanduser()


def enabled() -> bool:
    return os.environ.get("CLFT_STREAM_CACHE", "1") not in ("0", "false", "no", "")


def max_bytes() -> int:
    """``$CLFT_CACHE_MAX_GB`` (default ``DEFAULT_MAX_GB``) in bytes (1 GB = 1e9 bytes)."""
    raw = os.environ.get("CLFT_CACHE_MAX_GB", "").strip() or str(DEFAULT_MAX_GB)
    try:
        limit = float(raw)
    except ValueError:
        limit = -1.0
    if not limit >= 0:
        raise ConfigError(f"CLFT_CACHE_MAX_GB={raw!r}: expected a number of gigabytes >= 0 (e.g. 10)")
    return int(limit * 1e9)


def _entry(folder: Path) -> tuple[int, int] | None:
    """(last use in ns, bytes) of a cache entry; None for a folder without ``tasks.json`` (a writer's
    temporary folder) or one that vanished meanwhile (another process pruned it)."""
    try:
        last_used = (folder / "tasks.json").stat().st_mtime_ns
        return last_used, sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    except FileNotFoundError:
        return None


def prune(keep: Path, limit: int) -> list[Path]:
    """Remove the least recently used entries beside ``keep`` until they total at most ``limit`` bytes.

    Recency is ``tasks.json``'s mtime (touched on every read); ``keep`` is never removed,
    nor a folder that is not an entry (``_entry``). Returns the removed folders.
    """
    entries = {folder: entry for folder in keep.parent.iterdir() if (entry := _entry(folder)) is not None}
    total, removed = sum(size for _, size in entries.values()), []
    for folder in sorted(entries, key=lambda f: entries[f][0]):
        if total <= limit:
            break
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)
            total -= entries[folder][1]
            removed.append(folder)
    return removed


@lru_cache(maxsize=64)
def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (``clft.storage.hashing.file_sha256``, cached per path for the process)."""
    return file_sha256(path)


def code_hash(benchmark: Benchmark) -> str:
    """SHA-256 over the stream-building sources (module docstring) and the benchmark's own module."""
    own = inspect.getsourcefile(type(benchmark))
    paths = sorted({*BUILDER_SOURCES, *([Path(own).resolve()] if own else [])})
    return hashlib.sha256("".join(file_hash(p) for p in paths).encode()).hexdigest()


def _stats(path: Path) -> list:
    """(path, size, mtime_ns) of ``path`` or of every file below it."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def _input_files(config: dict) -> list:
    from clft.data.tasks import data_dir

    roots = [data_dir(config.get("data_dir"))]
    roots += [Path(v).expanduser() for v in _strings(config) if len(v) < 4096 and Path(v).expanduser().exists()]
    return [stat for root in roots if root is not None and root.exists() for stat in _stats(root.resolve())]


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def stream_key(benchmark: Benchmark, seed: int) -> str:
    """The cache key of ``benchmark.tasks(seed)`` (module docstring)."""
    import datasets

    config = to_plain(benchmark.config)
    config = config if isinstance(config, dict) else {"config": repr(config)}
    parts = {"name": benchmark.name, "config": config, "seed": seed, "code": code_hash(benchmark),
             "inputs": _input_files(config), "datasets": datasets.__version__}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:32]


def _save(tasks: list[Task], folder: Path) -> bool:
    """Write the entry (atomically: a temporary folder renamed into place); whether it is there now."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = mkdtemp_umasked(f".{folder.name}.", folder.parent)
    try:
        meta = []
        for task in tasks:
            for split in SPLITS:
                if getattr(task, split) is not None:
                    getattr(task, split).save_to_disk(str(tmp / f"task{task.id:03d}" / split))
            meta.append({**{name: getattr(task, name) for name in TASK_FIELDS},
                         "splits": [s for s in SPLITS if getattr(task, s) is not None]})
        (tmp / "tasks.json").write_text(json.dumps(meta))
        if folder.is_dir() and not (folder / "tasks.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # leftovers of a pruned entry (module docstring)
        tmp.rename(folder)
        return True
    except OSError:  # another process won the race, or the disk is full: the built stream is still fine
        shutil.rmtree(tmp, ignore_errors=True)
        return (folder / "tasks.json").is_file()


def _load(folder: Path) -> list[Task]:
    import datasets

    tasks = []
    for entry in json.loads((folder / "tasks.json").read_text()):
        splits = {s: datasets.load_from_disk(str(folder / f"task{entry['id']:03d}" / s)) for s in entry["splits"]}
        kept = {name: entry[name] for name in TASK_FIELDS}
        tasks.append(Task(**{**kept, "classes": tuple(kept["classes"])}, train=splits["train"], test=splits["test"],
                          val=splits.get("val")))
    return tasks


def cached_tasks(benchmark: Benchmark, seed: int) -> list[Task]:
    """``benchmark.tasks(seed)``, from the disk cache when an entry with the same key exists."""
    if not enabled():
        return benchmark.tasks(seed)
    folder = cache_root() / "streams" / stream_key(benchmark, seed)
    if (folder / "tasks.json").is_file():
        _mark_used(folder)
        try:
            return _load(folder)
        except (OSError, ValueError, KeyError, FileNotFoundError):
            shutil.rmtree(folder, ignore_errors=True)  # a damaged entry: rebuild it
    limit = max_bytes()  # read before the build: a bad value fails fast
    tasks = benchmark.tasks(seed)
    if not _save(tasks, folder):
        return tasks
    prune(folder, limit)
    # the saved copy, memory-mapped: what later runs read, and where tokenised copies go
    return _load(folder)


def _mark_used(folder: Path) -> None:
    """Touch the entry's ``tasks.json`` (its last use, for ``prune``); a read-only cache stays readable."""
    with suppress(OSError):
        os.utime(folder / "tasks.json")
