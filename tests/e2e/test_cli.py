"""The command line: one-line errors with exit status 2, `clft list`, and resume after SIGKILL."""

import json

import pytest


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_experiment_file(cli, tmp_path):
    assert_one_line_error(cli("run", str(tmp_path / "missing.yaml")), "experiment file not found")


@pytest.mark.parametrize(
    "changes, fragments",
    [
        ({"strategies": ["ewk"]}, ["unknown strategy 'ewk'", "finetune", "replay"]),
        ({"benchmark": {"name": "split-digitz"}}, ["unknown benchmark 'split-digitz'", "split-digits"]),
        ({"backbone": {"name": "mlp", "hiden": [3]}}, ["unknown key 'hiden'", "valid keys", "hidden"]),
        ({"train": {"epochs": "three"}}, ["train.epochs: expected int, got str 'three'"]),
        ({"strategies": [{"name": "ewc", "lam": "big"}]}, ["lam: expected float"]),
        ({"benchmark": {"name": "split-digits", "scenario": "class-incr"}}, ["'class-incr' is not valid"]),
        ({"epochz": 3}, ["unknown key 'epochz'", "valid keys"]),
    ],
)
def test_bad_experiments_fail_in_one_line(cli, write_experiment, tmp_path, changes, fragments):
    proc = cli("run", str(write_experiment(**changes)), "--out", str(tmp_path / "o"), "--quiet")
    assert_one_line_error(proc, *fragments)


def test_bad_override_type(cli, write_experiment, tmp_path):
    proc = cli("run", str(write_experiment()), "train.batch_size=big", "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "train.batch_size: expected int")


def test_list_shows_names_and_distribution(cli):
    proc = cli("list")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert "strategies:" in lines and "benchmarks:" in lines and "backbones:" in lines
    for name in ("finetune", "ewc", "replay", "joint", "split-digits", "mlp"):
        assert any(line.split()[:2] == [name, "clft"] for line in lines), name
    only = cli("list", "backbones").stdout
    assert "mlp" in only and "finetune" not in only


def test_run_prints_the_table_and_writes_json_and_plots(cli, write_experiment, tmp_path):
    out = tmp_path / "o"
    proc = cli("run", str(write_experiment(compare=["finetune", "joint"], strategies=None)), "--out", str(out),
               "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "| finetune" in proc.stdout and "| joint" in proc.stdout
    assert (out / "class-il" / "joint" / "seed0.json").is_file()
    assert any(p.suffix == ".png" for p in (out / "plots").iterdir())
    table = cli("table", str(out), "--format", "csv")
    assert table.returncode == 0 and "finetune" in table.stdout


def test_sigkill_in_third_task_then_resume_gives_the_uninterrupted_matrix(cli, write_experiment, tmp_path):
    experiment = write_experiment(
        strategies=[{"name": "replay", "memory_size": 40}, {"name": "ewc", "lam": 50.0}],
        train={"epochs": 2, "batch_size": 16, "lr": 0.01},
    )
    reference = tmp_path / "ref"
    assert cli("run", str(experiment), "--out", str(reference), "--quiet", "--no-plots").returncode == 0
    killed = tmp_path / "killed"
    proc = cli("run", str(experiment), "--out", str(killed), "--quiet", "--no-plots",
               env={"CLFT_KILL_AT": "train:task2:step5"})
    assert proc.returncode == -9  # SIGKILL
    assert not (killed / "class-il" / "replay+ewc" / "seed0.json").exists()
    latest = killed / ".checkpoints" / "class-il" / "replay+ewc" / "seed0" / "LATEST"
    assert latest.read_text().strip() == "task001"  # two tasks finished before the kill
    resumed = cli("run", str(experiment), "--out", str(killed), "--quiet", "--no-plots", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((reference / "class-il" / "replay+ewc" / "seed0.json").read_text())
    got = json.loads((killed / "class-il" / "replay+ewc" / "seed0.json").read_text())
    assert got["acc"] == expected["acc"] and got["baseline_acc"] == expected["baseline_acc"]
    assert not (killed / ".checkpoints" / "class-il" / "replay+ewc" / "seed0").exists()


def test_checkpoint_of_another_experiment_is_refused(cli, write_experiment, tmp_path):
    out = tmp_path / "o"
    experiment = write_experiment(train={"epochs": 1, "lr": 0.01})
    cli("run", str(experiment), "--out", str(out), "--quiet", env={"CLFT_KILL_AT": "train:task1:step2"})
    changed = write_experiment("other.yaml", train={"epochs": 1, "lr": 0.02})
    checkpoint = out / ".checkpoints" / "class-il" / "finetune" / "seed0"
    before = {p.relative_to(checkpoint): p.read_bytes() for p in checkpoint.rglob("*") if p.is_file()}
    assert_one_line_error(cli("run", str(changed), "--out", str(out), "--quiet", "--resume"), "another config_hash")
    assert {p.relative_to(checkpoint): p.read_bytes() for p in checkpoint.rglob("*") if p.is_file()} == before
    assert (checkpoint / "LATEST").read_text().strip() == "task000" and not list(out.rglob("seed0.json"))
