"""One line per plugin: clft's own conformance checks (``clft.testing``), run on the installed entry points."""

from clft.testing import check_benchmark, check_strategy

pytest_plugins = ["clft.testing.pytest_plugin"]


def test_er_ace(clft_checks):
    clft_checks.strategy("er-ace")


def test_rotated_digits():
    check_benchmark("rotated-digits")


def test_small_cnn(clft_checks):
    clft_checks.backbone("small-cnn", benchmark={"name": "rotated-digits", "n_tasks": 2})


def test_er_ace_with_the_other_plugins():
    check_strategy("er-ace", backbone={"name": "small-cnn"}, benchmark={"name": "rotated-digits", "n_tasks": 2})
