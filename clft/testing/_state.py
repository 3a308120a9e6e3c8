"""Exact comparison of nested strategy states, and the checkpoint round trip (``clft.storage.state_io``)."""

from __future__ import annotations

import json

import numpy as np
import torch

from clft.storage.state_io import flatten, unflatten


def through_checkpoint(state: dict) -> dict:
    """What a state dict looks like after clft.storage.state_io's JSON + tensors round trip."""
    tensors: dict = {}
    skeleton = json.loads(json.dumps(flatten(state, tensors)))
    return unflatten(skeleton, {k: v.clone() for k, v in tensors.items()})


def assert_same(a, b, path: str = "state") -> None:
    """Exact equality of nested states: tensors/arrays bit for bit (dtype and shape too)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()), path
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype, path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}.{i}")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def without_rng(state):
    """``state`` minus every ``rng`` entry (a generator alone is not 'extra state')."""
    if isinstance(state, dict):
        return {k: without_rng(v) for k, v in state.items() if k != "rng"}
    if isinstance(state, list):
        return [without_rng(v) for v in state]
    return state


def differs(a, b) -> bool:
    """Whether ``assert_same(a, b)`` would fail."""
    try:
        assert_same(a, b)
    except AssertionError:
        return True
    return False
