"""docs/writing-plugins.md is executed: its code blocks are the files of a plugin package.

Every fenced block is preceded by ``<!-- file: PATH -->``; blocks naming the same file are
appended in order. The package is installed with pip into a folder (a real distribution with
its entry points), its tests run, ``clft list`` shows its plugins and ``clft run`` trains the
doc's experiment. The YAML-only benchmark passes ``clft.testing.check_benchmark``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clft.config.experiment import resolve_spec
from clft.testing import check_benchmark

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "writing-plugins.md"
MARKED = re.compile(r"<!-- file: (?P<path>\S+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)^```$", re.S | re.M)


def write_walkthrough(folder: Path) -> dict[str, str]:
    """Write every marked block of the doc under ``folder``; returns {path: text}."""
    files: dict[str, str] = {}
    for block in MARKED.finditer(DOC.read_text(encoding="utf-8")):
        previous = files.get(block["path"])
        files[block["path"]] = block["code"] if previous is None else previous + "\n\n" + block["code"]
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")
    return files


def test_every_code_block_of_the_doc_is_a_file_of_the_walkthrough(tmp_path):
    text = DOC.read_text(encoding="utf-8")
    fences = re.findall(r"^```", text, re.M)
    assert len(fences) == 2 * len(MARKED.findall(text)) > 0  # no unmarked (so unexecuted) block
    files = write_walkthrough(tmp_path)
    assert {"my_clft_plugin.py", "pyproject.toml", "tests/test_my_clft_plugin.py", "experiment.yaml"} <= set(files)


def run(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_walkthrough_installs_passes_its_tests_lists_and_runs(tmp_path):
    project, site = tmp_path / "project", tmp_path / "site"
    project.mkdir()
    write_walkthrough(project)
    installed = run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                     "--target", str(site), str(project)], tmp_path, dict(os.environ))
    assert installed.returncode == 0, installed.stderr
    assert (site / "my_clft_plugin.py").is_file() and list(site.glob("my_clft_plugin-*.dist-info"))
    (project / "my_clft_plugin.py").unlink()  # from now on only the installed distribution
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "HF_HUB_OFFLINE": "1"}

    tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], project, env)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "5 passed" in tests.stdout

    listed = run([sys.executable, "-m", "clft.cli", "list"], project, env)
    assert listed.returncode == 0 and "PluginWarning" not in listed.stderr, listed.stderr
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert {name: rows.get(name) for name in ("l2-anchor", "focal", "restart", "blobs", "linear")} == dict.fromkeys(
        ("l2-anchor", "focal", "restart", "blobs", "linear"), "my-clft-plugin")
    shown = run([sys.executable, "-m", "clft.cli", "show", "restart"], project, env)
    assert shown.returncode == 0 and shown.stdout.startswith("strategy restart (distribution my-clft-plugin 0.1.0)")
    assert "every: int = 1\n        Reset before every ``every``-th task" in shown.stdout

    ran = run([sys.executable, "-m", "clft.cli", "run", "experiment.yaml", "--out", "out", "--quiet", "--no-plots"],
              project, env)
    assert ran.returncode == 0, ran.stderr
    result = json.loads((project / "out" / "class-il" / "focal+l2-anchor" / "seed0.json").read_text())
    assert len(result["acc"]) == 3 and result["acc"][0][0] > 0.9  # two well-separated blobs
    [plugin] = result["code"]["plugins"]  # the distribution that supplied the strategies, benchmark and backbone
    assert (plugin["name"], plugin["version"], len(plugin["sha256"])) == ("my-clft-plugin", "0.1.0", 64)


def test_the_yaml_only_benchmark_of_the_doc_is_a_valid_stream(tmp_path, monkeypatch):
    write_walkthrough(tmp_path)
    monkeypatch.setenv("CLFT_DATA_DIR", str(tmp_path))
    spec = resolve_spec({"file": "benchmarks/my-intents.yaml"}, tmp_path)
    tasks = check_benchmark(spec.pop("name"), spec)
    assert [len(t.classes) for t in tasks] == [2, 2] and sum(len(t.train) for t in tasks) == 8
