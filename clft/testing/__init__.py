"""Conformance checks and test helpers for clft plugins, shipped in clft's wheel.

Stable API::

    from clft.testing import check_strategy, check_benchmark, check_backbone

    def test_my_strategy():
        check_strategy("my-strategy")          # or the class itself

``check_*`` raise ``AssertionError`` naming what is wrong (see ``clft.testing._checks``).
``clft.testing.pytest_plugin`` is an opt-in pytest plugin (``pytest_plugins =
["clft.testing.pytest_plugin"]``): offline, single-thread defaults and a ``clft_checks``
fixture whose checks keep their runs under pytest's ``tmp_path``. The other names below
are the helpers clft's own strategy tests use (a tiny digits setup, the runner's step in
miniature, exact state comparison and the checkpoint round trip).
"""

from clft.testing._checks import check_backbone, check_benchmark, check_strategy
from clft.testing._loop import extra_loss, start_task, step, tiny, train, training_data
from clft.testing._state import assert_same, differs, through_checkpoint, without_rng

__all__ = ["assert_same", "check_backbone", "check_benchmark", "check_strategy", "differs", "extra_loss",
           "start_task", "step", "through_checkpoint", "tiny", "train", "training_data", "without_rng"]
