"""Presets by name: every experiments/*.yaml and benchmarks/*.yaml is one; a user's own file wins."""

from pathlib import Path

import pytest
import yaml

from clft.config.experiment import resolve_spec
from clft.config.presets import find_experiment, presets
from clft.errors import ConfigError

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", ["experiments", "benchmarks"])
def test_every_yaml_of_the_folder_is_a_preset(kind):
    assert [p.name for p in presets(kind)] == sorted(p.stem for p in (CHECKOUT / kind).glob("*.yaml"))


def test_descriptions_come_from_the_files():
    by_name = {p.name: p.description for p in presets("experiments") + presets("benchmarks")}
    assert by_name["quickstart"] == "Split digits (5 x 2 classes), MLP, finetune vs EWC vs replay vs joint."
    assert by_name["clinc150-by-domain"].startswith("CLINC150 (Larson et al., EMNLP 2019), in-scope queries")
    assert "Data:" not in by_name["clinc150-by-domain"]


def test_a_name_finds_the_preset_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = (CHECKOUT / "experiments" / "quickstart.yaml").resolve()
    assert find_experiment("quickstart").resolve() == preset
    assert find_experiment("experiments/quickstart.yaml").resolve() == preset


@pytest.mark.parametrize("own", ["quickstart.yaml", "experiments/quickstart.yaml", "quickstart"])
def test_the_users_own_file_wins_over_the_preset(tmp_path, monkeypatch, own):
    monkeypatch.chdir(tmp_path)
    (tmp_path / own).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / own).write_text("name: mine\n")
    assert find_experiment("quickstart").resolve() == (tmp_path / own).resolve()


def test_unknown_name_lists_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no experiment file or preset named: quikstart; presets: .*quickstart"):
        find_experiment("quikstart")


def test_benchmark_file_of_an_experiment_outside_the_checkout_is_the_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = resolve_spec({"file": "benchmarks/clinc150-by-domain.yaml", "train_per_class": 3}, tmp_path)
    preset = yaml.safe_load((CHECKOUT / "benchmarks" / "clinc150-by-domain.yaml").read_text())
    assert spec == {**preset, "train_per_class": 3} and preset["name"] == "clinc150"
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "clinc150-by-domain.yaml").write_text("name: clinc150\nsplit: mine\n")
    assert resolve_spec({"file": "benchmarks/clinc150-by-domain.yaml"}, tmp_path)["split"] == "mine"
