"""results/regenerate.sh, run in a clone of this checkout: it refuses a changed tree and a bad HELPERS before it
touches the folder, and HELPERS=N processes share the runs and are recorded in the README it writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ["seeds=[0,1]", "scenarios=[class-il]", "train.epochs=1", "backbone.hidden=[8]", "train.max_steps_per_task=2"]


@pytest.fixture
def checkout(tmp_path) -> tuple[Path, dict]:
    """A clone of this checkout's HEAD with this tree's script, and the environment that runs this tree's clft."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs the project's git checkout (regenerate.sh asks git whether the tree is clean)")
    clone = tmp_path / "clft"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shutil.copy(ROOT / "results" / "regenerate.sh", clone / "results" / "regenerate.sh")
    command = tmp_path / "clft-command"
    command.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m clft "$@"\n')
    command.chmod(0o755)
    return clone, {"CLFT": str(command), "HELPER_DELAY": "1"}


def regenerate(clone: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "results/regenerate.sh", *args], cwd=clone, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)


@pytest.mark.slow
def test_helpers_share_the_runs_and_the_readme_records_them(checkout):
    clone, env = checkout
    done = regenerate(clone, {**env, "HELPERS": "1"}, "tiny-helpers", "quickstart", *TINY)
    assert done.returncode == 0, done.stderr
    out = clone / "results" / "tiny-helpers"
    runs = sorted(p.relative_to(out).as_posix() for p in out.rglob("seed*.json"))
    assert runs == [f"class-il/{s}/seed{k}.json" for s in ("ewc", "finetune", "joint", "replay") for k in (0, 1)]
    readme = (out / "README.md").read_text()
    run_line = "    clft run quickstart --out results/tiny-helpers --quiet " + " ".join(TINY)
    assert readme.count(run_line) == 2  # the main process's command and the helper's
    assert "and 1 helper process(es) running, at the same time, on the same folder:" in readme
    assert f"Regenerate: `HELPERS=1 results/regenerate.sh tiny-helpers quickstart {' '.join(TINY)}`" in readme
    assert (out / "table.md").read_text().startswith("| scenario |")
    leftovers = [p for p in out.rglob("*") if p.is_file() and (".checkpoints" in p.parts or p.suffix == ".lock")]
    assert not list(out.glob(".sweeps*")) and not leftovers  # both processes ended cleanly
    assert "s (the whole sweep, including start-up and evaluation)." in readme
    made = {p: p.stat().st_mtime_ns for p in out.rglob("seed*.json")}
    again = regenerate(clone, {**env, "KEEP": "1"}, "tiny-helpers", "quickstart", *TINY)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("seed*.json")} == made  # KEEP=1: the finished runs are kept
    assert "s for this invocation only (KEEP=1: it continued the folder;" in (out / "README.md").read_text()


def test_a_bad_helpers_value_or_a_changed_tree_is_refused_before_the_folder_is_touched(checkout):
    clone, env = checkout
    kept = clone / "results" / "quickstart-reference"
    before = sorted(p.name for p in kept.iterdir())
    bad = regenerate(clone, {**env, "HELPERS": "two"}, "quickstart-reference", "quickstart")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "regenerate.sh: HELPERS must be a whole number (0 or more), got 'two'"
    (clone / "clft" / "__init__.py").write_text("# changed\n", encoding="utf-8")
    dirty = regenerate(clone, env, "quickstart-reference", "quickstart")
    assert dirty.returncode == 2 and "differ from HEAD; commit first" in dirty.stderr
    assert sorted(p.name for p in kept.iterdir()) == before  # neither removed the folder
