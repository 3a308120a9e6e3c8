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


# ---------------------------------------------------------------- `make test`: no skips for missing extras
#: Why a test may still skip under ``CLFT_NO_SKIPS=1`` (``make test`` installs every extra the suite tests, so
#: a missing package is not among them): Debian's chromium could not be installed (the HTML report's browser
#: test), the real datasets are not given or this copy lacks (or has) a file a test is about, the platform
#: lacks a Linux-only facility, or a committed results folder predates code identities (to regenerate).
ALLOWED_SKIP_REASONS = ("no chromium", "CLFT_DATA_DIR", "this copy has", "needs Linux", "glibc",
                        "predate code identities")


def allowed_skip(reason: str) -> bool:
    """Whether ``reason`` is one that ``make test`` accepts (see :data:`ALLOWED_SKIP_REASONS`)."""
    return any(allowed in reason for allowed in ALLOWED_SKIP_REASONS)


def refused_skips(reports) -> list:
    """The skip reports whose reason ``make test`` does not accept."""
    return [report for report in reports if not allowed_skip(skip_reason(report))]


def skip_reason(report) -> str:
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_sessionfinish(session, exitstatus):
    """With ``CLFT_NO_SKIPS=1``, a test skipped for another reason (a missing optional package above all)
    fails the session, so the optional integrations are tested wherever ``make test`` runs."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CLFT_NO_SKIPS") != "1" or reporter is None:
        return
    refused = refused_skips(reporter.stats.get("skipped", []))
    if refused:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter.ensure_newline()
        reporter.write_line(f"CLFT_NO_SKIPS=1: {len(refused)} test(s) skipped for a reason `make test` does not "
                            "accept (install the extras: make install-test):", red=True)
        for report in refused:
            reporter.write_line(f"  {report.nodeid}: {skip_reason(report)}", red=True)
