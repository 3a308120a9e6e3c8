"""The registry: names, conflicts, lookups, third-party entry points (real .dist-info folders)."""

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from clft import registry as registry_module
from clft.errors import ConfigError
from clft.registry import PluginWarning, Registry
from clft.types import Strategy


@dataclass
class NoOptions:
    pass


class Dummy(Strategy):
    name = "dummy"
    Config = NoOptions


class Other(Strategy):
    name = "dummy"
    Config = NoOptions


def loaded_registry() -> Registry:
    """A fresh strategies registry with the built-ins but without entry points."""
    reg = Registry("strategies", "clft.strategies")
    reg._loaded = True
    return reg


def test_register_get_and_name_rules():
    reg = loaded_registry()
    reg.add("dummy", Dummy, "a")
    reg.add("dummy", Dummy, "a")  # the same registration again is no conflict
    assert reg.get("dummy") is Dummy
    with pytest.raises(ValueError, match="not lower-kebab"):
        reg.add("Bad_Name", Dummy)


def test_a_name_claimed_twice_is_a_one_line_error_naming_both_distributions():
    reg = loaded_registry()
    reg.add("dummy", Dummy, "clft-a")
    reg.add("dummy", Other, "clft-b")
    with pytest.raises(ConfigError, match=r"^strategy name 'dummy' is claimed by clft-a and clft-b; uninstall one"):
        reg.get("dummy")
    assert "dummy" not in reg.names() and "dummy" not in reg
    assert [(e.name, e.status, e.distribution) for e in reg.entries()] == [("dummy", "conflict", "clft-a and clft-b")]


def test_unknown_name_lists_the_valid_ones():
    reg = loaded_registry()
    reg.add("dummy", Dummy)
    with pytest.raises(ConfigError, match=r"unknown strategy 'ewk'; valid: dummy"):
        reg.get("ewk")


def test_build_checks_options():
    reg = loaded_registry()
    reg.add("dummy", Dummy)
    assert isinstance(reg.build({"name": "dummy"}), Dummy)
    with pytest.raises(ConfigError, match="unknown key 'lam'"):
        reg.build({"name": "dummy", "lam": 1})


def fake_points(monkeypatch, points: list) -> list:
    calls = []
    real_entry_points = registry_module.metadata.entry_points

    def entry_points(group):
        if not group.startswith("clft."):
            return real_entry_points(group=group)
        calls.append(group)
        return points if group == "clft.strategies" else []

    monkeypatch.setattr(registry_module.metadata, "entry_points", entry_points)
    return calls


def point(name, dist, load):
    return SimpleNamespace(name=name, value=f"{dist}:x", dist=SimpleNamespace(name=dist), load=load)


def test_entry_points_are_loaded_lazily_once_with_their_distribution(monkeypatch):
    class ThirdParty(Strategy):
        Config = NoOptions

    calls = fake_points(monkeypatch, [point("si-plugin", "clft-si", lambda: ThirdParty)])
    reg = Registry("strategies", "clft.strategies")
    assert calls == []  # nothing is discovered at construction
    assert reg.get("si-plugin") is ThirdParty
    assert {e.name: e.distribution for e in reg.entries()}["si-plugin"] == "clft-si"
    assert calls == ["clft.strategies"]  # loaded once


def test_decorator_plus_entry_point_is_one_registration_of_the_entry_points_distribution(monkeypatch):
    """The documented pattern: ``@strategies.register()`` in the module the entry point names."""
    reg = Registry("strategies", "clft.strategies")

    def load():
        @reg.register()
        class Decorated(Strategy):
            name = "decorated"
            Config = NoOptions

        return Decorated

    fake_points(monkeypatch, [point("decorated", "clft-deco", load)])
    assert reg.get("decorated").__name__ == "Decorated"
    assert {e.name: e.distribution for e in reg.entries()}["decorated"] == "clft-deco"


def test_a_broken_plugin_is_reported_once_and_the_rest_keeps_working(monkeypatch):
    def boom():
        raise ImportError("No module named 'missing_dependency'")

    fake_points(monkeypatch, [point("broken", "clft-broken", boom)])
    reg = Registry("strategies", "clft.strategies")
    reg.add("dummy", Dummy, "clft-a")
    with pytest.warns(PluginWarning, match=r"'broken' from clft-broken failed to load \(ImportError") as caught:
        assert reg.names() == ["dummy"]
    assert len(caught) == 1
    assert reg.get("dummy") is Dummy and reg.names() == ["dummy"]  # reported once, the rest works
    with pytest.raises(ConfigError, match=r"^strategy plugin 'broken' from clft-broken failed to load \(ImportError"):
        reg.get("broken")
    assert [e.status for e in reg.entries() if e.name == "broken"] == ["broken"]


def test_builtins_are_registered_and_supplied_by_clft():
    names = registry_module.strategies.names()
    assert {"finetune", "joint", "replay", "ewc"} <= set(names)
    assert {"split-digits", "permuted-digits"} <= set(registry_module.benchmarks.names())
    assert "mlp" in registry_module.backbones.names()
    assert all(e.distribution == "clft" for e in registry_module.strategies.entries() if e.name == "ewc")


def test_the_registry_module_imports_no_plugin_package():
    code = "import sys, clft.registry; print(sorted(m for m in sys.modules if m.startswith('clft.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # yaml_safe: message quoting; clft.config: its package, which imports none of its modules until asked
    assert out.strip() == "['clft.config', 'clft.config.yaml_safe', 'clft.errors', 'clft.registry']"


def install_dist(site, dist: str, module: str, source: str, entry_points: str) -> None:
    """A real installed distribution: a module plus its ``.dist-info`` with ``entry_points.txt``."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def site_with_bad_plugins(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_dist(site, "clft-broken-plugin", "clft_broken_plugin", "import no_such_dependency_xyz\n",
                 "[clft.strategies]\nbroken-method = clft_broken_plugin:Method\n")
    install_dist(site, "clft-colliding-plugin", "clft_colliding_plugin", """
        from dataclasses import dataclass
        from clft.types import Strategy

        class Replay(Strategy):
            '''A second strategy called replay.'''
            @dataclass
            class Config:
                pass
        """, "[clft.strategies]\nreplay = clft_colliding_plugin:Replay\n")
    return site


def test_clft_list_and_run_with_a_broken_and_a_colliding_plugin_installed(site_with_bad_plugins, cli, write_experiment):
    env = {"PYTHONPATH": str(site_with_bad_plugins)}
    listed = cli("list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert {"ewc", "finetune", "split-digits", "mlp"} <= set(lines)
    assert "[broken: strategy plugin 'broken-method' from clft-broken-plugin failed to load (ModuleNotFoundError" \
        in lines["broken-method"]
    assert "[conflict:" in lines["replay"] and "clft and clft-colliding-plugin" in lines["replay"]
    assert listed.stderr.count("clft: warning: strategy plugin 'broken-method'") == 1

    ran = cli("run", str(write_experiment(strategies=["replay"])), "--quiet", "--no-plots", env=env)
    assert ran.returncode == 2
    errors = [line for line in ran.stderr.splitlines() if line.startswith("clft: error")]
    assert errors == ["clft: error: strategy name 'replay' is claimed by clft and clft-colliding-plugin; "
                      "uninstall one of them"]
    assert "Traceback" not in ran.stderr
