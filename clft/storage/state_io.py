"""Serialise nested state (dicts/lists of tensors, arrays, numbers) as safetensors + JSON.

Checkpoints never pickle: tensors go to a ``.safetensors`` file and everything
else to JSON, with ``{"__tensor__": key}`` / ``{"__ndarray__": key}`` markers
where a tensor or array stood. Tuples come back as lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from clft.errors import CheckpointError


def flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """Return a JSON-able skeleton of ``obj``, moving tensors/arrays into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj)).clone()
        return {"__ndarray__": path}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"has non-string keys at {_key(path)}: {list(obj)[:5]}; keys must be strings")
        return {k: flatten(v, tensors, f"{path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    kind = type(obj).__name__
    raise TypeError(f"holds a {kind} at {_key(path)}, which cannot be checkpointed; "
                    "use tensors, numpy arrays, numbers, str, None, lists and dicts with string keys")


def _key(path: str) -> str:
    """``s.buffer.3`` -> ``['buffer'][3]``: where in a state dict ``flatten`` stopped."""
    parts = path.split(".")[1:]
    return "".join(f"[{p}]" if p.isdigit() else f"[{p!r}]" for p in parts) or "the top level"


def check_checkpointable(state: Any, owner: str) -> None:
    """Raise a one-line ConfigError naming ``owner`` and the key when ``state`` cannot be checkpointed."""
    from clft.errors import ConfigError

    try:
        flatten(state, {})
    except TypeError as exc:
        raise ConfigError(f"{owner}: state_dict() {exc}") from None


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``flatten`` (arrays come back as numpy arrays, tensors on the CPU)."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__tensor__"}:
            return tensors[skeleton["__tensor__"]]
        if set(skeleton) == {"__ndarray__"}:
            return tensors[skeleton["__ndarray__"]].numpy()
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` with safetensors (fsynced; the caller renames the folder)."""
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    with open(path, "rb") as handle:
        import os

        os.fsync(handle.fileno())


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"corrupt checkpoint tensors {path}: {exc}") from None
