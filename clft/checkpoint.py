"""Atomic per-task checkpoints: safetensors for tensors, JSON for the rest.

Layout of a run's checkpoint folder::

    <ckpt>/task003/meta.json          matrix so far, RNG states, config hash, skeletons
    <ckpt>/task003/model.safetensors  the model's trainable (and ever-trainable) tensors
    <ckpt>/task003/state.safetensors  strategy state, optimizer, torch RNG
    <ckpt>/LATEST                     "task003"

A task folder is written under a temporary name and renamed into place; then
``LATEST`` is replaced atomically; then older task folders are removed. A kill at
any instant leaves ``LATEST`` naming a complete folder (or no ``LATEST`` at all).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clft.errors import CheckpointError
from clft.faults import kill_point
from clft.results import SCHEMA_VERSION, atomic_write_text
from clft.state_io import flatten, load_tensors, save_tensors, unflatten


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
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        state_tensors: dict[str, torch.Tensor] = {}
        rng_json, rng_tensors = capture_rng()
        skeleton = flatten(state, state_tensors, "state")
        state_tensors.update(rng_tensors)
        save_tensors(tmp / "model.safetensors", {k: v.detach().cpu().contiguous() for k, v in model.items()})
        save_tensors(tmp / "state.safetensors", state_tensors)
        full_meta = {**meta, "schema_version": SCHEMA_VERSION, "rng": rng_json, "state": skeleton}
        atomic_write_text(tmp / "meta.json", json.dumps(full_meta))
        kill_point(f"checkpoint:task{task_index}:before-rename")
        final = root / name
        if final.exists():
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


def _remove_older(root: Path, keep: str) -> None:
    for child in root.iterdir():
        if child.is_dir() and child.name != keep:
            shutil.rmtree(child, ignore_errors=True)


def load_checkpoint(root: Path, expected: dict[str, Any]) -> tuple[dict, dict, dict] | None:
    """(meta, model tensors, state) of the last finished task, or None if there is none.

    ``expected`` maps meta keys (``config_hash``, ``experiment``) to the values this run
    has; a mismatch (another experiment, another schema) raises CheckpointError.
    """
    latest = root / "LATEST"
    if not latest.is_file():
        return None
    folder = root / latest.read_text(encoding="utf-8").strip()
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"corrupt checkpoint {folder}: {exc}") from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        found = meta.get("schema_version")
        raise CheckpointError(f"checkpoint {folder} has schema_version {found}, this clft needs {SCHEMA_VERSION}")
    for key, value in expected.items():
        if meta.get(key) != value:
            raise CheckpointError(
                f"checkpoint {folder} belongs to another {key} ({meta.get(key)!r}, this run: {value!r}); "
                "use another --out or delete it"
            )
    model = load_tensors(folder / "model.safetensors")
    tensors = load_tensors(folder / "state.safetensors")
    restore_rng(meta["rng"], tensors)
    return meta, model, unflatten(meta["state"], tensors)
