"""Conformance checks and test helpers for clft plugins, shipped in clft's wheel.

Stable API::

    from clft.testing import check_strategy, check_benchmark, check_backbone

    def test_my_strategy():
        check_strategy("my-strategy")          # or the class itself

Each ``check_*`` raises ``AssertionError`` naming the plugin and what is wrong:

- ``check_strategy``: a documented ``Config`` (a docstring under every field, unknown options
  refused); a two-task run through the real sweep in each scenario it supports, with a full
  matrix; its state survives the checkpoint format exactly; a run killed in the second task and
  resumed ends bit for bit like an uninterrupted one;
- ``check_benchmark``: a documented ``Config``; ``tasks(seed)`` deterministic and well formed
  (task ids, classes, ``label``/``task`` columns, non-empty splits);
- ``check_backbone``: a documented ``Config``; ``forward``/``loss``/``predict`` on one batch
  (shapes, finite losses, a gradient, allowed labels); a finetune run through ``check_strategy``.

``help(check_strategy)`` (and the others) list every check. ``clft.testing.pytest_plugin`` is an
opt-in pytest plugin (``pytest_plugins =
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
