"""Atomic per-task checkpoints: safetensors for tensors, JSON for the rest.

Layout of a run's checkpoint folder::

    <ckpt>/task003/meta.json          matrix so far, RNG states, config hash, skeletons
    <ckpt>/task003/model.safetensors  the model's trainable (and ever-trainable) tensors
    <ckpt>/task003/state.safetensors  strategy state, optimizer, torch RNG
    <ckpt>/LATEST                     "task003"

A task folder is written under a temporary name and renamed into place; then
``LATEST`` is replaced atomically; then older task folders are removed. A kill at
any instant leaves ``LATEST`` naming a complete folder (or no ``LATEST`` at all).

Verification: ``meta.json`` lists the sha256 of each tensor file (``files``) and
carries its own ``meta_sha256`` (of its canonical JSON without that key). Loading
checks both before anything is used, so a changed byte anywhere is a one-line
CheckpointError naming the file, never a resumed run with other weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clft.config.yaml_safe import brief
from clft.errors import CheckpointError
from clft.storage.atomic import WriteError, atomic_write_text, mkdtemp_umasked
from clft.storage.faults import kill_point
from clft.storage.hashing import file_sha256
from clft.storage.state_io import flatten, load_tensors, save_tensors, unflatten

SCHEMA_VERSION = 1
"""The checkpoint format's version (``meta.json``'s ``schema_version``); it was the result schema's
constant, and is 1 as that one is."""


def capture_rng() -> tuple[dict, dict[str, torch.Tensor]]:
    """Python, numpy-global and torch RNG states as (json, tensors)."""
    version, internal, gauss = random.getstate()
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_state = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }, tensors


def restore_rng(state: dict, tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(root: Path, task_index: int, meta: dict, model: dict, state: dict) -> Path:
    """Write one task's checkpoint atomically and point LATEST at it."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"task{task_index:03d}"
    tmp = mkdtemp_umasked(f".{name}.", root)
    try:
        state_tensors: dict[str, torch.Tensor] = {}
        rng_json, rng_tensors = capture_rng()
        skeleton = flatten(state, state_tensors, "state")
        state_tensors.update(rng_tensors)
        _save_tensors(tmp / "model.safetensors", {k: v.detach().cpu().contiguous() for k, v in model.items()})
        _save_tensors(tmp / "state.safetensors", state_tensors)
        files = {name: file_sha256(tmp / name) for name in TENSOR_FILES}
        full_meta = {**meta, "schema_version": SCHEMA_VERSION, "rng": rng_json, "state": skeleton, "files": files}
        full_meta = json.loads(json.dumps(full_meta))  # the digest is of what a reader will parse
        atomic_write_text(tmp / "meta.json", json.dumps({**full_meta, "meta_sha256": meta_digest(full_meta)}))
        kill_point(f"checkpoint:task{task_index}:before-rename")
        final = root / name
        if final.is_symlink():  # never follow a link planted in a checkpoint folder
            final.unlink()
        elif final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    kill_point(f"checkpoint:task{task_index}:before-latest")
    atomic_write_text(root / "LATEST", name + "\n")
    kill_point(f"checkpoint:task{task_index}:before-cleanup")
    _remove_older(root, keep=name)
    return final


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """``save_tensors``; a failed write (a full disk) is one line naming the file."""
    try:
        save_tensors(path, tensors)
    except Exception as exc:  # safetensors reports I/O failures as its own SafetensorError, not OSError
        reason = getattr(exc, "strerror", None) or brief(" ".join(str(exc).split()))
        raise WriteError(f"cannot write checkpoint file {path}: {reason}; the previous checkpoint is kept") from None


def _remove_older(root: Path, keep: str) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink() and child.name != keep:
            shutil.rmtree(child, ignore_errors=True)


TENSOR_FILES = ("model.safetensors", "state.safetensors")
LATEST_NAME = re.compile(r"task\d{3,}")
META_KEYS = {"rng": dict, "state": (dict, list), "files": dict}


def meta_digest(meta: dict) -> str:
    """sha256 of ``meta``'s canonical JSON (sorted keys, no spaces), ``meta_sha256`` left out."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_checkpoint(root: Path, expected: dict[str, Any]) -> tuple[dict, dict, dict] | None:
    """(meta, model tensors, state) of the last finished task, or None if there is none.

    ``expected`` maps meta keys (``config_hash``, ``experiment``) to the values this run
    has; a mismatch (another experiment, another schema) raises CheckpointError, and so
    does any file whose checksum differs from the one recorded in ``meta.json``.
    """
    latest = root / "LATEST"
    if not check_latest(root):
        return None
    folder = root / _latest_name(latest)
    for path in (folder, folder / "meta.json", *(folder / name for name in TENSOR_FILES)):
        _refuse_link(path)
    meta = read_meta(folder / "meta.json")
    for key, value in expected.items():
        if meta.get(key) != value:
            raise CheckpointError(
                f"checkpoint {folder} belongs to another {key} ({brief(meta.get(key))}, this run: {value!r}); "
                "use another --out or delete it"
            )
    for name in TENSOR_FILES:
        path = folder / name
        if not path.is_file() or file_sha256(path) != meta["files"].get(name):
            raise CheckpointError(f"checkpoint file {path} is damaged (missing, or its sha256 differs from meta.json)")
    model = load_tensors(folder / "model.safetensors")
    tensors = load_tensors(folder / "state.safetensors")
    try:
        restore_rng(meta["rng"], tensors)
        return meta, model, unflatten(meta["state"], tensors)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {folder} cannot be restored: {brief(str(exc))}") from None


def check_latest(root: Path) -> bool:
    """Whether ``root`` has a ``LATEST`` file; CheckpointError when ``LATEST`` is there but is no regular
    file (a folder, a link): resuming would silently start over, and the next checkpoint could not be written."""
    latest = root / "LATEST"
    if not os.path.lexists(latest):
        return False
    _refuse_link(latest)
    if not latest.is_file():
        raise CheckpointError(f"checkpoint file {latest} is damaged: it is a folder, not a file naming a task folder")
    return True


def _refuse_link(path: Path) -> None:
    """No checkpoint file is read through a symbolic link (it could lead out of the results folder)."""
    if path.is_symlink():
        raise CheckpointError(f"checkpoint file {path} is a symbolic link; clft reads and writes no checkpoint "
                              "through a link")


def _latest_name(latest: Path) -> str:
    try:
        name = latest.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if not LATEST_NAME.fullmatch(name):
        raise CheckpointError(f"checkpoint file {latest} is damaged: it does not name a task folder (taskNNN)")
    return name


def read_meta(path: Path) -> dict:
    """The verified ``meta.json`` of a task folder (its own checksum, schema version and keys)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else brief(str(exc))
        raise CheckpointError(f"checkpoint file {path} is damaged: {reason}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint file {path} is damaged: a JSON {type(meta).__name__}, not an object")
    if meta.get("schema_version") != SCHEMA_VERSION:
        found = meta.get("schema_version")
        raise CheckpointError(f"checkpoint {path.parent} has schema_version {brief(found)}, "
                              f"this clft needs {SCHEMA_VERSION}")
    if meta.get("meta_sha256") != meta_digest(meta):
        raise CheckpointError(f"checkpoint file {path} is damaged (its meta_sha256 does not match its content)")
    for key, kind in META_KEYS.items():
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(f"checkpoint file {path} lacks a valid {key!r}")
    return meta
