"""Config loading: unknown keys, wrong types and overrides fail with one clear line."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from clft.config import apply_overrides, make_dataclass_instance, parse_yaml
from clft.config.experiment import ExperimentConfig, load_experiment, resolve_spec
from clft.errors import ConfigError


@dataclass
class Example:
    lam: float = 1.0
    mode: Literal["separate", "online"] = "separate"
    hidden: list[int] = field(default_factory=lambda: [4])
    cap: int | None = None
    flag: bool = False


def test_int_is_accepted_for_float_and_values_are_kept():
    made = make_dataclass_instance(Example, {"lam": 3, "hidden": [8, 8], "cap": 5}, "x")
    assert made.lam == 3.0 and isinstance(made.lam, float)
    assert made.hidden == [8, 8] and made.cap == 5


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"lamda": 1.0}, "unknown key 'lamda'; valid keys: cap, flag, hidden, lam, mode"),
        ({"lam": "big"}, "x.lam: expected float, got str 'big'"),
        ({"mode": "offline"}, "'offline' is not valid; valid: 'separate', 'online'"),
        ({"hidden": [1, "a"]}, "x.hidden[1]: expected int"),
        ({"flag": 1}, "x.flag: expected true or false"),
        ({"lam": True}, "expected float, got boolean"),
        ({"cap": 2.5}, "x.cap: expected int, got float 2.5"),
    ],
)
def test_bad_options_name_the_key_and_the_valid_values(options, fragment):
    with pytest.raises(ConfigError) as info:
        make_dataclass_instance(Example, options, "x")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_post_init_validation_becomes_a_config_error():
    with pytest.raises(ConfigError, match=r"epochs must lie in \[1, 100000\], got 0"):
        make_dataclass_instance(ExperimentConfig, {"train": {"epochs": 0}}, "experiment")


def test_dotted_overrides_reach_lists_and_parse_yaml_values():
    raw = {"train": {"epochs": 1}, "strategies": [{"name": "ewc", "lam": 1.0}]}
    out = apply_overrides(raw, ["train.epochs=3", "strategies.0.lam=50", "train.lr=1e-4", "name=x"])
    assert out["train"]["epochs"] == 3 and out["strategies"][0]["lam"] == 50
    lr = make_dataclass_instance(ExperimentConfig, {"train": {"lr": out["train"]["lr"]}}, "e").train.lr
    assert lr == 1e-4  # YAML 1.1 reads 1e-4 as a string; float fields accept numeric strings
    assert raw["train"]["epochs"] == 1  # the input is not modified


@pytest.mark.parametrize("override", ["noequals", "strategies.3.lam=1", "train.epochs.x=1", "=5"])
def test_bad_overrides_are_config_errors(override):
    raw = {"train": {"epochs": 1}, "strategies": [{"name": "ewc"}]}
    with pytest.raises(ConfigError):
        apply_overrides(raw, [override])


def test_override_types_are_checked_by_the_schema():
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        make_dataclass_instance(ExperimentConfig, apply_overrides({}, ["train.epochs=two"]), "experiment")


def test_yaml_errors_name_the_line():
    with pytest.raises(ConfigError, match="invalid YAML at line 2"):
        parse_yaml("a: 1\nb: : x\n", "f.yaml")
    with pytest.raises(ConfigError, match="must be a mapping, got list"):
        parse_yaml("- 1\n- 2\n", "f.yaml")


def test_missing_experiment_file(tmp_path):
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(str(tmp_path / "nope.yaml"))


def test_strategy_groups_and_exclusive_keys():
    cfg = make_dataclass_instance(
        ExperimentConfig, {"compare": ["finetune", {"name": "ewc", "lam": 2}, ["replay", "ewc"]]}, "e"
    )
    groups = cfg.strategy_groups()
    assert [[s["name"] for s in g] for g in groups] == [["finetune"], ["ewc"], ["replay", "ewc"]]
    assert groups[1][0]["lam"] == 2
    with pytest.raises(ConfigError, match="not both"):
        make_dataclass_instance(ExperimentConfig, {"compare": ["a"], "strategies": ["b"]}, "e")


def test_resolve_spec_merges_a_benchmark_file(tmp_path):
    (tmp_path / "bench.yaml").write_text("name: split-digits\nn_tasks: 5\nscenario: task-il\n")
    spec = resolve_spec({"file": "bench.yaml", "scenario": "class-il"}, tmp_path)
    assert spec == {"name": "split-digits", "n_tasks": 5, "scenario": "class-il"}
    with pytest.raises(ConfigError, match="not found"):
        resolve_spec({"file": "missing.yaml"}, tmp_path)


def test_yes_no_on_off_are_strings_as_in_yaml_1_2(tmp_path):
    """PyYAML reads YAML 1.1, where ``no`` is False: ``train.mixed_precision=no`` (a valid value)
    used to fail with "False is not valid; valid: 'no', ...". Only true/false are booleans now."""
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\ntrain: {mixed_precision: no, deterministic: true}\n")
    cfg, _ = load_experiment(str(path))
    assert cfg.train.mixed_precision == "no" and cfg.train.deterministic is True
    cfg, _ = load_experiment(str(path), ["train.mixed_precision=no", "train.deterministic=False"])
    assert cfg.train.mixed_precision == "no" and cfg.train.deterministic is False
    with pytest.raises(ConfigError, match="deterministic: expected true or false, got 'yes'"):
        load_experiment(str(path), ["train.deterministic=yes"])
