"""Checkpoints: safetensors + JSON round trips, atomic LATEST, refusal of foreign checkpoints."""

import json
import random

import numpy as np
import pytest
import torch

from clft.errors import CheckpointError
from clft.storage.checkpoint import load_checkpoint, save_checkpoint
from clft.storage.state_io import flatten, unflatten
from clft.sweep.locks import RunLock, RunLockedError


def test_flatten_round_trips_nested_state():
    rng = np.random.default_rng(3)
    state = {"fisher": [torch.ones(2, 3), torch.zeros(4)], "rows": [{"text": "hi", "label": 2}],
             "rng": rng.bit_generator.state, "arr": np.arange(5), "none": None, "f": 1.5}
    tensors: dict = {}
    skeleton = flatten(state, tensors)
    json.dumps(skeleton)  # the skeleton is plain JSON
    back = unflatten(json.loads(json.dumps(skeleton)), tensors)
    assert torch.equal(back["fisher"][0], torch.ones(2, 3)) and back["rows"] == state["rows"]
    assert np.array_equal(back["arr"], np.arange(5)) and back["rng"] == state["rng"]
    with pytest.raises(TypeError, match=r"holds a object at \['bad'\], which cannot be checkpointed"):
        flatten({"bad": object()}, {})


def test_save_then_load_restores_tensors_state_and_rng(tmp_path):
    model = {"w": torch.randn(3, 3)}
    save_checkpoint(tmp_path, 0, {"config_hash": "h", "run": "r"}, model, {"strategies": [{"m": torch.arange(4)}]})
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    save_checkpoint(tmp_path, 1, {"config_hash": "h", "run": "r", "x": 1}, model, {"strategies": [{}]})
    expected_next = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    assert (tmp_path / "LATEST").read_text().strip() == "task001"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "task001"]  # older folders removed
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    meta, tensors, state = load_checkpoint(tmp_path, {"config_hash": "h"})
    assert meta["x"] == 1 and torch.equal(tensors["w"], model["w"]) and state == {"strategies": [{}]}
    # the RNG states saved with the checkpoint are restored: the same next numbers come out
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected_next
    assert load_checkpoint(tmp_path / "nothing", {}) is None


def test_foreign_or_old_checkpoints_are_refused(tmp_path):
    save_checkpoint(tmp_path, 0, {"config_hash": "aaa", "run": "r"}, {}, {})
    with pytest.raises(CheckpointError, match="another config_hash"):
        load_checkpoint(tmp_path, {"config_hash": "bbb"})
    meta_path = tmp_path / "task000" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="schema_version 99"):
        load_checkpoint(tmp_path, {})
    meta_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="meta.json is damaged"):
        load_checkpoint(tmp_path, {})


def test_corrupt_tensor_file_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, 0, {"config_hash": "h"}, {"w": torch.ones(2)}, {})
    (tmp_path / "task000" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors is damaged"):
        load_checkpoint(tmp_path, {})


def test_run_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    path = tmp_path / "seed0.lock"
    with RunLock(path), pytest.raises(RunLockedError, match="held by"):
        RunLock(path).__enter__()
    assert not path.exists()
    import socket

    path.write_text(f"{socket.gethostname()} 999999999\n")  # a pid that does not exist
    with RunLock(path):
        assert str(__import__("os").getpid()) in path.read_text()
