"""Compare entries: labels, per-entry train blocks, validation."""

import json
from dataclasses import dataclass

import pytest

from clft.config import make_dataclass_instance
from clft.config.entries import parse_entry
from clft.config.experiment import ExperimentConfig, load_experiment
from clft.errors import ConfigError
from clft.registry import strategies
from clft.results.files import load_results
from clft.results.summary import summarize
from clft.sweep.plan import plan_runs
from clft.sweep.run import run_experiment
from clft.types import Strategy


def experiment(compare, **more):
    return make_dataclass_instance(ExperimentConfig, {"compare": compare, **more}, where="experiment")


def test_entry_forms_and_default_labels():
    assert parse_entry("ewc", "e").label == "ewc"
    assert parse_entry(["replay", {"name": "ewc", "lam": 5}], "e").label == "replay+ewc"
    labelled = parse_entry({"label": "ewc-online", "strategies": {"name": "ewc", "mode": "online"},
                            "train": {"lr": 0.5}}, "e")
    assert (labelled.label, labelled.strategies, labelled.train) == (
        "ewc-online", [{"name": "ewc", "mode": "online"}], {"lr": 0.5})


@pytest.mark.parametrize("label", ["EWC", "ewc_online", "-ewc", "ewc--x", "", 3, "replay+ewc"])
def test_labels_must_be_lower_kebab(label):
    with pytest.raises(ConfigError, match=r"compare\[0\]\.label: .* is not a lower-kebab name"):
        experiment([{"label": label, "strategies": "ewc"}])


def test_two_unlabelled_ewc_entries_collide_with_a_one_line_error():
    with pytest.raises(ConfigError, match=r"compare\[1\]: label 'ewc' is already used by compare\[0\]"):
        experiment([{"name": "ewc", "lam": 1.0}, {"name": "ewc", "lam": 100.0}])


def test_labelled_entry_rejects_unknown_keys_and_bad_train_keys():
    with pytest.raises(ConfigError, match="unknown key 'lam'; a labelled entry takes label, strategies, train"):
        experiment([{"label": "a", "strategies": "ewc", "lam": 3}])
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        experiment([{"label": "a", "strategies": "ewc", "train": {"lrr": 3}}])


def test_entry_train_is_merged_over_the_experiments():
    cfg = experiment([{"label": "sgd", "strategies": "finetune", "train": {"optimizer": "sgd", "lr": 0.01}},
                      "finetune"], train={"epochs": 3, "lr": 0.001})
    sgd, adam = plan_runs(cfg)
    assert (sgd.label, sgd.train.optimizer, sgd.train.lr, sgd.train.epochs) == ("sgd", "sgd", 0.01, 3)
    assert (adam.label, adam.train.optimizer, adam.train.lr) == ("finetune", "adam", 0.001)


def test_two_labelled_ewc_entries_run_into_their_own_folders_and_rows(write_experiment, tmp_path):
    compare = [{"label": "ewc-weak", "strategies": {"name": "ewc", "lam": 1.0}},
               {"label": "ewc-strong", "strategies": {"name": "ewc", "lam": 1.0e4}, "train": {"lr": 0.05}}]
    cfg, _ = load_experiment(str(write_experiment(strategies=None, compare=compare)))
    weak, strong = run_experiment(cfg, tmp_path / "out", progress=False, log=lambda m: None)
    assert (weak.parent.name, strong.parent.name) == ("ewc-weak", "ewc-strong")
    weak_doc, strong_doc = json.loads(weak.read_text()), json.loads(strong.read_text())
    assert (weak_doc["label"], weak_doc["strategy"]) == ("ewc-weak", "ewc")
    assert strong_doc["config"]["strategies"][0]["lam"] == 1.0e4 and strong_doc["config"]["train"]["lr"] == 0.05
    assert weak_doc["config"]["train"]["lr"] == 0.01 and weak_doc["acc"] != strong_doc["acc"]
    rows = summarize(load_results(tmp_path / "out"))
    assert [(r.strategy, r.composition) for r in rows] == [("ewc-strong", "ewc"), ("ewc-weak", "ewc")]


class WithExtra(Strategy):
    """A strategy whose option ``extra`` adds a component its (imaginary) paper does not have."""

    name = "with-extra"

    @dataclass
    class Config:
        extra: bool = False
        """Switch the component on."""
        part: str = "with-extra+component"
        """What default_label returns when ``extra`` is on."""

    @classmethod
    def default_label(cls, config):
        return config.part if config.extra else cls.name


def test_default_labels_come_from_each_strategys_resolved_config_and_explicit_labels_stay():
    with strategies.registered(WithExtra):
        cfg = experiment(["with-extra", {"name": "with-extra", "extra": True}, ["replay", {"name": "with-extra",
                          "extra": True}], {"label": "plain", "strategies": {"name": "with-extra", "extra": True}}])
        assert [plan.label for plan in plan_runs(cfg)] == [
            "with-extra", "with-extra+component", "replay+with-extra+component", "plain"]
        with pytest.raises(ConfigError, match="default_label returned 'Bad Part', not lower-case words"):
            experiment([{"name": "with-extra", "extra": True, "part": "Bad Part"}])
