"""Conformance checks and test helpers for clft plugins, shipped with clft.

Public API (stable): ``check_strategy``, ``check_benchmark``, ``check_backbone`` and the
helpers re-exported below; ``clft.testing.pytest_plugin`` is an opt-in pytest plugin.
"""

from clft.testing._loop import extra_loss, start_task, step, tiny, train, training_data
from clft.testing._state import assert_same, differs, through_checkpoint, without_rng

__all__ = ["assert_same", "differs", "extra_loss", "start_task", "step", "through_checkpoint", "tiny",
           "train", "training_data", "without_rng"]
