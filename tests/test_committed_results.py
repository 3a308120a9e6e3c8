"""Every committed results/*/table.md is what its JSONs render to today, and a committed run reproduces.

Convention (docs/architecture.md, "Committed results"): a results folder's README.md names the
command that wrote its table on one line, ``clft table results/<folder> [options] --output
results/<folder>/table.md``; without a README the command is ``clft table results/<folder>
--output results/<folder>/table.md``. Folders whose runs predate code identities are skipped
(they must be regenerated).
"""

import json
import shlex
from pathlib import Path

import pytest

from clft.cli import build_parser, main, table_text
from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.results.files import load_results
from clft.sweep.run import run_experiment

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = sorted(p.parent for p in (ROOT / "results").glob("*/table.md"))


def table_command(folder: Path, root: Path = ROOT) -> list[str]:
    """The ``clft table`` arguments of the folder's README (the default command without one)."""
    relative = folder.relative_to(root).as_posix()
    readme = folder / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines() if readme.is_file() else []
    commands = [line.strip().strip("`") for line in lines if "clft table" in line and "table.md" in line]
    if not commands:
        return ["table", relative, "--output", f"{relative}/table.md"]
    words = shlex.split(commands[0])
    return words[words.index("table"):]


def rendered_again(folder: Path, root: Path) -> tuple[str, str]:
    """(table.md as committed, what its command renders now), rendered from ``root`` as the README says."""
    args = build_parser().parse_args(table_command(folder, root))
    assert (root / args.output).resolve() == (folder / "table.md").resolve()
    return (folder / "table.md").read_text(encoding="utf-8"), table_text(args) + "\n"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_committed_table_renders_again_from_its_jsons(folder, monkeypatch):
    if any("code" not in run for run in load_results(folder)):
        pytest.skip(f"{folder.name}: runs predate code identities; regenerate the folder")
    monkeypatch.chdir(ROOT)
    committed, now = rendered_again(folder, ROOT)
    assert now == committed


def test_table_command_is_read_from_the_readme(tmp_path):
    folder = tmp_path / "results" / "x"
    folder.mkdir(parents=True)
    assert table_command(folder, tmp_path) == ["table", "results/x", "--output", "results/x/table.md"]
    (folder / "README.md").write_text("Made with\n\n    clft table results/x --ci --output results/x/table.md\n")
    assert table_command(folder, tmp_path) == ["table", "results/x", "--ci", "--output", "results/x/table.md"]


def test_the_check_passes_on_a_fresh_folder_and_fails_on_an_edited_one(tmp_path, monkeypatch):
    folder = tmp_path / "results" / "fresh"
    cfg = make_dataclass_instance(ExperimentConfig, {"seeds": [0, 1], "benchmark": {"name": "split-digits"},
                                                     "backbone": {"name": "mlp", "hidden": [8]},
                                                     "train": {"max_steps_per_task": 2}}, where="e")
    run_experiment(cfg, folder, progress=False, log=lambda m: None)
    (folder / "README.md").write_text("clft table results/fresh --ci --output results/fresh/table.md\n")
    monkeypatch.chdir(tmp_path)
    assert main(["table", "results/fresh", "--ci", "--output", "results/fresh/table.md"]) == 0
    committed, now = rendered_again(folder, tmp_path)
    assert now == committed and "[" in committed  # the --ci intervals came from the README's command
    (folder / "table.md").write_text(committed.replace("± 0.", "± 1.", 1))
    assert rendered_again(folder, tmp_path)[0] != now


def test_a_committed_quickstart_run_gives_the_identical_matrix(tmp_path):
    committed = json.loads((ROOT / "results/quickstart-reference/class-il/finetune/seed0.json").read_text())
    cfg = make_dataclass_instance(ExperimentConfig, committed["config"], where="committed config")
    (path,) = run_experiment(cfg, tmp_path, progress=False, log=lambda m: None)
    assert json.loads(path.read_text())["acc"] == committed["acc"]
