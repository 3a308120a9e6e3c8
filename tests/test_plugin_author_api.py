"""What a plugin author reads: clft.types' docstrings name only what exists, Backbone.model is documented,
a strategy may reset or restore the model's weights (GDumb), clft.testing documents its checks publicly."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import pytest
import torch

import clft.testing
import clft.types
from clft.config import field_docs
from clft.registry import strategies
from clft.testing import check_strategy
from clft.types import Backbone, Strategy


def test_the_docstrings_of_clft_types_name_only_backbone_members_that_exist():
    source = inspect.getsource(clft.types)
    named = set(re.findall(r"backbone\.(\w+)", source))
    assert named, "the docstrings name backbone members"
    missing = sorted(name for name in named if not hasattr(Backbone, name) and name not in Backbone.__annotations__)
    assert not missing, f"clft.types names backbone.{missing} which Backbone does not have"


def test_backbone_model_and_label_space_are_documented_on_the_base_class():
    docs = field_docs(Backbone)
    assert "trainable_parameters" in docs["model"] and "load_weights" in docs["model"]
    assert "runner" in docs["label_space"]


class RetrainFromScratch(Strategy):
    """GDumb's reset (Prabhu et al. 2020, ECCV): before every task after the first, the model's weights go
    back to those it had before the first task."""

    name = "retrain-from-scratch"

    @dataclass
    class Config:
        pass

    def __init__(self, config):
        super().__init__(config)
        self.initial: dict[str, torch.Tensor] = {}
        self.seen_at_start: list[dict[str, torch.Tensor]] = []  # for the test: the weights each task began with

    def before_task(self, backbone, task, stream):
        if not self.initial:
            self.initial = backbone.weights()
        else:
            backbone.load_weights(self.initial)
        self.seen_at_start.append(backbone.weights())

    def extra_state_bytes(self):
        return sum(t.numel() * t.element_size() for t in self.initial.values())

    def state_dict(self):
        return {"initial": self.initial}

    def load_state_dict(self, state):
        self.initial = dict(state["initial"])


def test_a_strategy_resets_the_weights_in_before_task(write_experiment, tmp_path):
    from clft.config.experiment import load_experiment
    from clft.engine.runner import execute
    from clft.sweep.build import build_run
    from clft.sweep.plan import plan_runs

    with strategies.registered(RetrainFromScratch):
        cfg, _ = load_experiment(str(write_experiment(strategies=["retrain-from-scratch"])))
        run = build_run(cfg, plan_runs(cfg)[0], None, False)
        initial = run.backbone.weights()
        execute(run)
    [strategy] = run.strategies
    assert len(strategy.seen_at_start) == 5
    for start in strategy.seen_at_start:  # every task began from the initial weights, bit for bit
        assert all(torch.equal(start[k], initial[k]) for k in initial)
    assert not all(torch.equal(run.backbone.weights()[k], initial[k]) for k in initial)  # and then trained


def test_the_reset_survives_kill_and_resume():
    """check_strategy: the state (the initial weights) round-trips a checkpoint, and a run killed in the
    second task and resumed ends bit for bit like an uninterrupted one."""
    matrices = check_strategy(RetrainFromScratch, ["class-il"])
    assert len(matrices["class-il"]) == 2


def test_load_weights_refuses_what_the_model_lacks(write_experiment):
    from clft.config.experiment import load_experiment
    from clft.sweep.build import build_run
    from clft.sweep.plan import plan_runs

    cfg, _ = load_experiment(str(write_experiment()))
    backbone = build_run(cfg, plan_runs(cfg)[0], None, False).backbone
    weights = backbone.weights()
    assert set(weights) == {n for n, p in backbone.model.named_parameters() if p.requires_grad}
    with pytest.raises(ValueError, match=r"load_weights: the model has no \['nope'\]"):
        backbone.load_weights({"nope": torch.zeros(1)})
    name = next(iter(weights))
    with pytest.raises(ValueError, match=f"load_weights: {re.escape(name)} has shape"):
        backbone.load_weights({name: torch.zeros(3, 1, 2)})
    parameter = dict(backbone.model.named_parameters())[name]
    backbone.load_weights({name: torch.ones_like(weights[name])})
    assert parameter is dict(backbone.model.named_parameters())[name] and bool((parameter == 1).all())  # in place


CHECKS = {
    "check_strategy": ["docstring", "unknown option", "extra_state_bytes", "state_dict", "load_state_dict",
                       "checkpoint", "killed", "resumed", "bit for bit", "AssertionError"],
    "check_benchmark": ["docstring", "unknown option", "deterministic", "label", "task", "AssertionError"],
    "check_backbone": ["docstring", "forward", "Outputs", "main_loss", "gradient", "predict", "finetune",
                       "AssertionError"],
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_each_check_lists_its_checks_in_its_own_docstring(name):
    doc = inspect.getdoc(getattr(clft.testing, name))
    missing = [word for word in CHECKS[name] if word not in doc]
    assert not missing, f"help({name}) does not say: {missing}"
    assert "clft.testing._" not in doc and "module docstring" not in doc  # no pointer into a private module


def test_the_package_docstring_documents_every_check_and_each_helper_has_one():
    doc = clft.testing.__doc__
    assert "clft.testing._" not in doc and all(name in doc for name in CHECKS)
    for name in clft.testing.__all__:
        assert (inspect.getdoc(getattr(clft.testing, name)) or "").strip(), f"clft.testing.{name} has no docstring"
