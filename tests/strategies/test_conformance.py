"""Conformance: every registered strategy, with its default config, through ``clft.testing``.

Parametrised over ``clft.registry.strategies.names()`` (in the spirit of timm's
``tests/test_models.py``), so a new strategy is covered without new test code; the
checks themselves (two-task run per scenario, state round trip through the checkpoint
format, kill/resume bit identity, documented config) are ``clft.testing``'s, the same
ones plugin packages run. A strategy that needs another backbone or stream declares it
with ``conformance_backbone`` / ``conformance_benchmark`` class attributes.
"""

from __future__ import annotations

import pytest

from clft.registry import strategies
from clft.testing import check_strategy
from clft.testing._checks import DEFAULT_BENCHMARK, check_documented_config, scenarios_for

CASES = [(name, scenario) for name in strategies.names()
         for scenario in scenarios_for(strategies.get(name),
                                       getattr(strategies.get(name), "conformance_benchmark", DEFAULT_BENCHMARK))]


@pytest.mark.parametrize("name, scenario", CASES)
def test_strategy_runs_round_trips_and_resumes_exactly(name, scenario, tmp_path):
    matrices = check_strategy(name, [scenario], workdir_path=tmp_path)
    assert list(matrices) == [scenario] and len(matrices[scenario]) == 2  # the two-task conformance stream


@pytest.mark.parametrize("name", strategies.names())
def test_config_is_a_documented_dataclass_that_rejects_unknown_options(name):
    check_documented_config(strategies, name)
    assert strategies.build({"name": name}).extra_state_bytes() == 0
