"""``clft.testing``: the shipped checks pass on good plugins and catch broken ones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from clft.backbones.mlp import MLP
from clft.benchmarks.digits import SplitDigits
from clft.registry import benchmarks, strategies
from clft.strategies.replay import Replay
from clft.testing import check_backbone, check_benchmark, check_strategy
from clft.types import Outputs, Strategy

pytest_plugins = ["clft.testing.pytest_plugin"]


class Undocumented(Strategy):
    """A strategy whose option has no docstring."""

    @dataclass
    class Config:
        lam: float = 1.0

    name = "undocumented"


def test_an_undocumented_option_fails_the_check():
    with pytest.raises(AssertionError, match=r"Config fields without a docstring: \['lam'\]"):
        check_strategy(Undocumented)
    assert "undocumented" not in strategies  # a class is registered for the check only


class Forgetful(Replay):
    """Replay whose state_dict leaves out how many examples the reservoir has seen."""

    def state_dict(self) -> dict:
        return {k: v for k, v in super().state_dict().items() if k != "n_seen"}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict({**state, "n_seen": 0})


def test_a_strategy_that_does_not_save_all_its_state_fails_the_resume_check(tmp_path):
    Forgetful.name = "forgetful"
    with pytest.raises(AssertionError, match="forgetful"):
        check_strategy(Forgetful, ["class-il"], workdir_path=tmp_path)


def test_the_pytest_plugin_fixture_checks_a_builtin_strategy(clft_checks, tmp_path):
    matrices = clft_checks.strategy("replay", ["task-il"])
    assert list(matrices) == ["task-il"] and len(matrices["task-il"]) == 2
    assert (tmp_path / "strategy" / "task-il" / "straight").is_dir()  # runs kept for inspection


def test_check_benchmark_passes_builtins_and_catches_a_stream_that_changes_between_calls():
    tasks = check_benchmark("split-digits", {"n_tasks": 2})
    assert [t.classes for t in tasks] == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)]

    class Drifting(SplitDigits):
        """Split digits whose task order changes at every call: not a pure description."""

        name = "drifting-digits"
        calls = 0

        def tasks(self, seed):
            Drifting.calls += 1
            return super().tasks(seed + Drifting.calls)

    Drifting.Config = dataclass(type("Config", (SplitDigits.Config,), {}))
    with pytest.raises(AssertionError, match="drifting-digits: tasks"):
        check_benchmark(Drifting, {"shuffle_classes": True})
    assert "drifting-digits" not in benchmarks


def test_check_backbone_passes_the_mlp_and_catches_a_loss_that_is_not_the_forward_pass(tmp_path):
    outputs = check_backbone("mlp", {"hidden": [8]}, workdir_path=tmp_path)
    assert isinstance(outputs, Outputs) and outputs.logits.shape == (8, 10)

    class DoubleLoss(MLP):
        """An MLP whose loss() disagrees with forward()."""

        name = "double-loss-mlp"

        def loss(self, batch, task) -> torch.Tensor:
            return 2 * self.forward(batch, task).main_loss()

    with pytest.raises(AssertionError, match="loss\\(\\) is not forward\\(\\).main_loss\\(\\)"):
        check_backbone(DoubleLoss, {"hidden": [8]}, workdir_path=tmp_path / "double")
