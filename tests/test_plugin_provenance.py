"""Plugin provenance: a run records every plugin distribution it used (name, version, sha256 of its
installed files); an edited plugin makes the run stale as an edit of clft's code does."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
from fake_distribution import write_distribution

from clft.config.experiment import load_experiment
from clft.registry import strategies
from clft.results.provenance import describe, forget_plugin_identities, plugin_identities
from clft.results.staleness import DONE, STALE, StaleResultsError
from clft.sweep.classify import classify_runs, run_status
from clft.sweep.plan import plan_runs
from clft.sweep.run import run_experiment

PLUGIN = '''
from dataclasses import dataclass

from clft.types import Strategy


class Decay(Strategy):
    """A pull of every trainable weight to zero: factor * sum(|w|^power)."""

    name = "decay"

    @dataclass
    class Config:
        factor: float = 0.01
        """The weight of the term."""

    def extra_loss(self, backbone, batch, outputs, task):
        return self.config.factor * sum((p.abs() ** {power}).sum() for p in backbone.trainable_parameters())
'''


def install_plugin(site: Path, version: str, power: int, module: str = "decayplug") -> None:
    write_distribution(site, module, version, textwrap.dedent(PLUGIN.format(power=power)))


def by_hand(site: Path, names: list[str]) -> str:
    """The documented hash: sha256 over 'path NUL content NUL' of the installed files, sorted by path."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0" + (site / name).read_bytes() + b"\0")
    return digest.hexdigest()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Installs ``decayplug`` 0.1.0 into a folder on sys.path and registers its strategy; yields a function
    that replaces it by another version (its source edited) and returns the new class."""
    import importlib
    import sys

    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    registered = []

    def install(version: str, power: int):
        install_plugin(site, version, power)
        sys.modules.pop("decayplug", None)
        importlib.invalidate_caches()
        forget_plugin_identities()
        cls = importlib.import_module("decayplug").Decay
        strategies.remove("decay")
        strategies.add("decay", cls, "decayplug")
        registered.append(cls)
        return cls

    yield site, install
    strategies.remove("decay")
    sys.modules.pop("decayplug", None)
    forget_plugin_identities()


def test_the_identity_is_name_version_and_the_hash_of_the_installed_files(plugin):
    site, install = plugin
    cls = install("0.1.0", 2)
    info = "decayplug-0.1.0.dist-info"
    expected = by_hand(site, ["decayplug/__init__.py", f"{info}/METADATA", f"{info}/top_level.txt"])  # no RECORD,
    assert plugin_identities([cls]) == [{"name": "decayplug", "version": "0.1.0", "sha256": expected}]  # INSTALLER
    assert plugin_identities([strategies.get("ewc")]) == []  # clft's own: covered by its source hash
    assert describe({"source_sha256": "a" * 64, "git_commit": None, "plugins": plugin_identities([cls])}) == \
        f"aaaaaaaa (no git) + decayplug 0.1.0 ({expected[:8]})"


def test_an_edited_plugin_makes_its_runs_stale(plugin, write_experiment, tmp_path):
    _, install = plugin
    install("0.1.0", 2)
    cfg, _ = load_experiment(str(write_experiment(strategies=None, compare=["finetune", "decay"])))
    out = tmp_path / "out"
    finetune, decay = run_experiment(cfg, out, progress=False, log=lambda m: None)
    recorded = json.loads(decay.read_text())["code"]["plugins"]
    assert [(p["name"], p["version"]) for p in recorded] == [("decayplug", "0.1.0")]
    assert json.loads(finetune.read_text())["code"]["plugins"] == []
    assert [p.status for p in classify_runs(cfg, out)] == [DONE, DONE]

    install("0.2.0", 1)  # the plugin edited and its version bumped
    assert [p.status for p in classify_runs(cfg, out)] == [DONE, STALE]
    assert [run_status(cfg, plan, out, None).state for plan in plan_runs(cfg)] == [DONE, STALE]  # --dry-run
    with pytest.raises(StaleResultsError, match=r"1 of 2 runs .*decayplug 0\.1\.0 .*this code: .*decayplug 0\.2\.0"):
        run_experiment(cfg, out, progress=False, log=lambda m: None)
    run_experiment(cfg, out, rerun_stale=True, progress=False, log=lambda m: None)
    assert json.loads(decay.read_text())["code"]["plugins"][0]["version"] == "0.2.0"


def test_an_edit_without_a_version_bump_is_seen_too(plugin):
    site, install = plugin
    first = plugin_identities([install("0.1.0", 2)])
    second = plugin_identities([install("0.1.0", 3)])
    assert first[0]["version"] == second[0]["version"] and first[0]["sha256"] != second[0]["sha256"]


def test_an_editable_install_hashes_the_source_it_points_to(tmp_path, monkeypatch):
    """An editable install's RECORD lists a .pth file, not the source: the package's source is hashed too."""
    import importlib
    import sys

    site, source = tmp_path / "site", tmp_path / "src"
    (source / "editplug").mkdir(parents=True)
    info = site / "editplug-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "__editable__.editplug-1.0.pth").write_text(str(source) + "\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: editplug\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("editplug\n")
    (info / "RECORD").write_text("__editable__.editplug-1.0.pth,,\neditplug-1.0.dist-info/METADATA,,\n"
                                 "editplug-1.0.dist-info/top_level.txt,,\neditplug-1.0.dist-info/RECORD,,\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(source))
    hashes = []
    for power in (1, 2):
        (source / "editplug" / "__init__.py").write_text(textwrap.dedent(PLUGIN.format(power=power)))
        sys.modules.pop("editplug", None)
        importlib.invalidate_caches()
        forget_plugin_identities()
        identities = plugin_identities([importlib.import_module("editplug").Decay])
        assert [(p["name"], p["version"]) for p in identities] == [("editplug", "1.0")]
        hashes.append(identities[0]["sha256"])
    sys.modules.pop("editplug", None)
    forget_plugin_identities()
    assert hashes[0] != hashes[1]


def test_a_class_no_distribution_owns_is_recorded_by_its_module(tmp_path, monkeypatch):
    import importlib
    import sys

    (tmp_path / "loose_strategy.py").write_text(textwrap.dedent(PLUGIN.format(power=2)))
    monkeypatch.syspath_prepend(str(tmp_path))
    forget_plugin_identities()
    try:
        cls = importlib.import_module("loose_strategy").Decay
        [identity] = plugin_identities([cls])
    finally:
        sys.modules.pop("loose_strategy", None)
        forget_plugin_identities()
    assert identity["name"] == "loose_strategy" and identity["version"] is None
    assert identity["sha256"] == by_hand(tmp_path, ["loose_strategy.py"])
