"""The registry: names, duplicates, lookups and third-party entry points."""

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from clft import registry as registry_module
from clft.errors import ConfigError
from clft.registry import Registry
from clft.types import Strategy


@dataclass
class NoOptions:
    pass


class Dummy(Strategy):
    name = "dummy"
    Config = NoOptions


def test_register_get_and_duplicate_names():
    reg = Registry("strategies")
    reg._entry_points_loaded = True
    reg.add("dummy", Dummy)
    assert reg.get("dummy") is Dummy
    with pytest.raises(ValueError, match="duplicate strategies name 'dummy'"):
        reg.add("dummy", Dummy)
    with pytest.raises(ValueError, match="not lower-kebab"):
        reg.add("Bad_Name", Dummy)


def test_unknown_name_lists_the_valid_ones():
    reg = Registry("strategies")
    reg._entry_points_loaded = True
    reg.add("dummy", Dummy)
    with pytest.raises(ConfigError, match=r"unknown strategy 'ewk'; valid: dummy"):
        reg.get("ewk")


def test_build_checks_options():
    reg = Registry("strategies")
    reg._entry_points_loaded = True
    reg.add("dummy", Dummy)
    assert isinstance(reg.build({"name": "dummy"}), Dummy)
    with pytest.raises(ConfigError, match="unknown key 'lam'"):
        reg.build({"name": "dummy", "lam": 1})


def test_entry_points_are_loaded_lazily_with_their_distribution(monkeypatch):
    calls = []

    class ThirdParty(Strategy):
        Config = NoOptions

    real_entry_points = registry_module.metadata.entry_points

    def fake_entry_points(group):
        if not group.startswith("clft."):
            return real_entry_points(group=group)
        calls.append(group)
        point = SimpleNamespace(name="si-plugin", dist=SimpleNamespace(name="clft-si"), load=lambda: ThirdParty)
        return [point] if group == "clft.strategies" else []

    monkeypatch.setattr(registry_module.metadata, "entry_points", fake_entry_points)
    reg = Registry("strategies")
    assert calls == []  # nothing is discovered at construction
    assert reg.get("si-plugin") is ThirdParty
    assert calls == ["clft.strategies"]
    entry = {e.name: e for e in reg.entries()}["si-plugin"]
    assert entry.distribution == "clft-si"
    assert calls == ["clft.strategies"]  # loaded once


def test_builtins_are_registered_and_supplied_by_clft():
    names = registry_module.strategies.names()
    assert {"finetune", "joint", "replay", "ewc"} <= set(names)
    assert {"split-digits", "permuted-digits"} <= set(registry_module.benchmarks.names())
    assert "mlp" in registry_module.backbones.names()
    assert all(e.distribution == "clft" for e in registry_module.strategies.entries() if e.name == "ewc")
