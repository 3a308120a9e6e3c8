"""`clft run`: options and overrides in any order, --help with the override syntax, --dry-run, `clft presets`."""

import json

from clft.cli import parse_args


def test_options_and_overrides_in_any_order():
    args = parse_args(["run", "exp.yaml", "--out", "d", "train.lr=0.5", "--quiet", "seeds=[1]"])
    assert (args.experiment, args.out, args.overrides, args.quiet) == ("exp.yaml", "d", ["train.lr=0.5", "seeds=[1]"],
                                                                         True)
    args = parse_args(["run", "--dry-run", "train.lr=0.5"])  # an override alone: the default experiment
    assert (args.experiment, args.overrides, args.dry_run) == ("train.lr=0.5", [], True)


def test_run_help_shows_the_override_syntax(cli):
    proc = cli("run", "--help")
    assert proc.returncode == 0
    assert "KEY=VALUE" in proc.stdout and "clft run quickstart --out /tmp/qs train.epochs=1" in proc.stdout


def test_override_after_options_reaches_the_run(cli, write_experiment, tmp_path):
    out = tmp_path / "o"
    proc = cli("run", str(write_experiment()), "--out", str(out), "--quiet", "train.lr=0.02", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "class-il" / "finetune" / "seed0.json").read_text())
    assert result["config"]["train"]["lr"] == 0.02


def test_dry_run_classifies_runs_and_trains_nothing(cli, write_experiment, tmp_path):
    out = tmp_path / "o"
    experiment = str(write_experiment(seeds=[0]))
    assert cli("run", experiment, "--out", str(out), "--quiet", "--no-plots").returncode == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    proc = cli("run", experiment, "--dry-run", "--out", str(out), "seeds=[0,1]")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(None, 3) for line in proc.stdout.splitlines()[2:]]
    assert rows == [["class-il", "finetune", "0", "done"], ["class-il", "finetune", "1", "to do"]]
    changed = cli("run", experiment, "--dry-run", "--out", str(out), "train.lr=0.5").stdout.splitlines()[2]
    assert changed.split(None, 3)[3] == "other config"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_presets_command_lists_names_and_descriptions(cli):
    proc = cli("presets", "experiments")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "experiments:"
    assert any(line.split(None, 1) == ["quickstart", "Split digits (5 x 2 classes), MLP, finetune vs EWC vs replay "
                                       "vs joint."] for line in lines)
    assert "benchmarks:" not in lines
