"""Shared fixtures: tiny experiments on the offline digits stream."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

# No per-example deadline: a shared 2-core CI machine must not turn slowness into failures.
settings.register_profile("clft", deadline=None)
settings.load_profile("clft")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one thread is fastest and tests run side by side
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# tests monkeypatch loaders and data files: no stream cache shared between them (test_stream_cache turns it on)
os.environ.setdefault("CLFT_STREAM_CACHE", "0")

TINY_EXPERIMENT = {
    "name": "tiny",
    "seeds": [0],
    "benchmark": {"name": "split-digits", "scenario": "class-il"},
    "backbone": {"name": "mlp", "hidden": [32]},
    "strategies": ["finetune"],
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.01},
}


@pytest.fixture
def write_experiment(tmp_path):
    """write_experiment(**changes) -> path of a YAML experiment based on TINY_EXPERIMENT."""

    def write(name: str = "exp.yaml", **changes) -> Path:
        data = {**TINY_EXPERIMENT, **changes}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m clft.cli ARGS`` in a subprocess (the real command line)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "clft.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
