"""Opt-in pytest plugin for clft plugin packages: ``pytest_plugins = ["clft.testing.pytest_plugin"]``.

- offline and single-threaded by default (``HF_HUB_OFFLINE=1``, ``OMP_NUM_THREADS=1``,
  ``TOKENIZERS_PARALLELISM=false``; values already set are kept);
- the ``clft_checks`` fixture: ``clft_checks.strategy(name_or_cls)``,
  ``clft_checks.benchmark(...)``, ``clft_checks.backbone(...)``, the ``clft.testing``
  checks with their runs kept under the test's ``tmp_path`` for inspection.
"""

from __future__ import annotations

import os
from functools import partial
from types import SimpleNamespace

import pytest

from clft.testing import check_backbone, check_benchmark, check_strategy

DEFAULTS = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def pytest_configure(config) -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


@pytest.fixture
def clft_checks(tmp_path) -> SimpleNamespace:
    """``strategy``/``benchmark``/``backbone``: clft.testing's checks, runs under ``tmp_path``."""
    return SimpleNamespace(strategy=partial(check_strategy, workdir_path=tmp_path / "strategy"),
                           benchmark=check_benchmark,
                           backbone=partial(check_backbone, workdir_path=tmp_path / "backbone"))
