"""Runs made by other code are stale: named before anything trains, re-run only with --rerun-stale."""

import json

import pytest

from clft.config.experiment import load_experiment
from clft.results.check import CHECKSUM_KEY, with_checksum
from clft.results.staleness import DONE, STALE, StaleResultsError
from clft.sweep.classify import classify_runs
from clft.sweep.run import run_experiment

COMPARE = {"strategies": None, "compare": ["finetune", {"name": "ewc", "lam": 10.0}]}


def mark_made_by_other_code(path, code="other"):
    data = json.loads(path.read_text())
    data.pop(CHECKSUM_KEY)  # a genuine result of that code: its own checksum (clft.results.check)
    if code is None:
        data.pop("code")
    else:
        data["code"] = {"source_sha256": "f" * 64, "git_commit": "0123456789" * 4, "git_dirty": False}
    path.write_text(json.dumps(with_checksum(data)))
    return path.read_bytes()


@pytest.fixture
def finished(write_experiment, tmp_path):
    cfg, _ = load_experiment(str(write_experiment(**COMPARE)))
    out = tmp_path / "out"
    paths = run_experiment(cfg, out, progress=False, log=lambda m: None)
    return cfg, out, paths


def test_classification_done_stale_and_old_results(finished):
    cfg, out, (finetune, ewc) = finished
    assert [p.status for p in classify_runs(cfg, out)] == [DONE, DONE]
    mark_made_by_other_code(ewc)
    assert [p.status for p in classify_runs(cfg, out)] == [DONE, STALE]
    mark_made_by_other_code(finetune, code=None)  # written before clft recorded code identities
    assert [p.status for p in classify_runs(cfg, out)] == [STALE, STALE]


def test_without_the_flag_nothing_trains(finished):
    cfg, out, (finetune, ewc) = finished
    ewc_bytes = mark_made_by_other_code(ewc)
    finetune_bytes = finetune.read_bytes()
    with pytest.raises(StaleResultsError, match=r"1 of 2 runs .*\(ffffffff \(commit 0123456\): 1 run"):
        run_experiment(cfg, out, progress=False, log=lambda m: None)
    assert (ewc.read_bytes(), finetune.read_bytes()) == (ewc_bytes, finetune_bytes)


def test_rerun_stale_reruns_exactly_the_stale_runs(finished):
    cfg, out, (finetune, ewc) = finished
    matrix = json.loads(ewc.read_text())["acc"]
    mark_made_by_other_code(ewc)
    finetune_bytes = finetune.read_bytes()
    log = []
    run_experiment(cfg, out, rerun_stale=True, progress=False, log=log.append)
    assert finetune.read_bytes() == finetune_bytes  # done: untouched
    rerun = json.loads(ewc.read_text())
    assert rerun["code"]["source_sha256"] != "f" * 64 and rerun["acc"] == matrix
    assert log[0] == "2 planned run(s): 1 done, 1 stale"
    assert sum("training" in line for line in log) == 1


@pytest.mark.slow
def test_cli_exits_2_with_one_line_naming_the_flag(cli, write_experiment, tmp_path):
    exp = write_experiment(**COMPARE)
    out = tmp_path / "cli-out"
    assert cli("run", str(exp), "--out", str(out), "--no-plots", "--quiet").returncode == 0
    mark_made_by_other_code(out / "class-il" / "ewc" / "seed0.json", code=None)
    done = cli("run", str(exp), "--out", str(out), "--no-plots", "--quiet")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("clft: error: 1 of 2 runs in") and "no code identity: 1 run" in last
    assert "nothing was trained: pass --rerun-stale" in last and "Traceback" not in done.stderr
    again = cli("run", str(exp), "--out", str(out), "--no-plots", "--rerun-stale")
    assert again.returncode == 0 and "re-running 1 stale run(s)" in again.stderr
    assert "done class-il/ewc/seed0" in again.stderr and "skip class-il/finetune/seed0" in again.stderr
    assert "source_sha256" in json.loads((out / "class-il" / "ewc" / "seed0.json").read_text())["code"]


# ---------------------------------------------------------------- --verify-stale / --accept-stale
def made_by(path, source, acc=None):
    """Rewrite ``path`` as a genuine result of the code ``source`` (optionally with another matrix)."""
    data = json.loads(path.read_text())
    data.pop(CHECKSUM_KEY)
    data["code"] = {"source_sha256": source * 64, "git_commit": None, "git_dirty": None, "plugins": []}
    if acc is not None:
        data["acc"] = acc
    path.write_text(json.dumps(with_checksum(data)))
    return data


def sweep(cfg, out, **options):
    from clft.sweep.executors import run_sweep

    return run_sweep(cfg, out, progress=False, **options)


def test_verify_stale_reruns_k_per_older_code_and_restamps_every_stale_run(finished, capsys):
    cfg, out, (finetune, ewc) = finished
    stored = {p: made_by(p, "a") for p in (finetune, ewc)}
    sweep(cfg, out, verify_stale=1)
    err = capsys.readouterr().err
    assert "--verify-stale: re-running 1 of 2 stale run(s) made by aaaaaaaa (no git)" in err
    assert "2 run(s) re-stamped" in err and "done " not in err  # nothing else trained: both done now
    for path, before in stored.items():
        after = json.loads(path.read_text())
        assert after["acc"] == before["acc"] and after["code"]["source_sha256"] != "a" * 64
        record = after["stale_verification"]
        assert record["previous_code"]["source_sha256"] == "a" * 64
        assert record["stale_runs"] == 2 and record["k"] == 1 and len(record["rerun"]) == 1
    assert [p.status for p in classify_runs(cfg, out)] == [DONE, DONE]
    assert not (out / ".verify-stale").exists()
    from clft.results.tables import render_table

    assert "re-stamped after --verify-stale re-ran 1 of them with identical matrices" in render_table(out)


def test_verify_stale_samples_from_each_older_code(finished, capsys):
    cfg, out, (finetune, ewc) = finished
    made_by(finetune, "a")
    made_by(ewc, "b")
    sweep(cfg, out, verify_stale=1)
    err = capsys.readouterr().err
    assert "re-running 1 of 1 stale run(s) made by aaaaaaaa" in err and "made by bbbbbbbb" in err
    assert [p.status for p in classify_runs(cfg, out)] == [DONE, DONE]


def test_verify_stale_stops_naming_the_run_that_differs(finished):
    from clft.sweep.stale_runs import StaleMismatchError

    cfg, out, (finetune, ewc) = finished
    acc = json.loads(ewc.read_text())["acc"]
    acc[1][0] = 0.5 if acc[1][0] != 0.5 else 0.25
    made_by(finetune, "a")
    made_by(ewc, "a", acc=acc)
    before = (finetune.read_bytes(), ewc.read_bytes())
    with pytest.raises(StaleMismatchError, match=r"class-il/ewc/seed0 differs from its stored result .*acc\[1\]\[0\]"):
        sweep(cfg, out, verify_stale=2)
    assert (finetune.read_bytes(), ewc.read_bytes()) == before  # nothing re-stamped
    assert not (out / ".verify-stale").exists()


def test_accept_stale_keeps_the_runs_records_it_and_flags_them(finished, capsys):
    from clft.results.tables import render_table

    cfg, out, (finetune, ewc) = finished
    stored = made_by(ewc, "a")
    sweep(cfg, out, accept_stale=True)
    assert "--accept-stale: 1 stale run(s) kept" in capsys.readouterr().err
    kept = json.loads(ewc.read_text())
    assert kept["acc"] == stored["acc"] and kept["code"] == stored["code"]  # still names the code that made it
    assert kept["stale_accepted"]["code"]["source_sha256"] == json.loads(finetune.read_text())["code"]["source_sha256"]
    assert [p.status for p in classify_runs(cfg, out)] == [DONE, DONE]  # done for the code that accepted it
    table = render_table(out)
    assert "1 of 2 runs were made by other code and kept with --accept-stale" in table


def test_verify_and_accept_exclude_each_other_and_k_is_positive(finished):
    from clft.errors import ConfigError

    cfg, out, (_, ewc) = finished
    made_by(ewc, "a")
    with pytest.raises(ConfigError, match="--verify-stale and --accept-stale exclude each other"):
        sweep(cfg, out, verify_stale=2, accept_stale=True)
    with pytest.raises(ConfigError, match="--rerun-stale and --accept-stale exclude each other"):
        sweep(cfg, out, rerun_stale=True, accept_stale=True)
    with pytest.raises(ConfigError, match="K must be >= 1, got 0"):
        sweep(cfg, out, verify_stale=0)


def test_the_cli_reads_verify_stale_with_and_without_k():
    from clft.cli import parse_args

    assert parse_args(["run", "q", "--verify-stale"]).verify_stale == 2
    args = parse_args(["run", "q", "--verify-stale", "train.epochs=1"])
    assert args.verify_stale == 2 and args.overrides == ["train.epochs=1"]
    assert parse_args(["run", "q", "--verify-stale", "3", "seeds=[0]"]).verify_stale == 3
    assert parse_args(["run", "q", "--accept-stale"]).accept_stale and parse_args(["run"]).verify_stale is None


def test_the_sample_spreads_over_entries_and_scenarios_first(tmp_path):
    import itertools
    import random

    from clft.sweep.classify import PlannedRun
    from clft.sweep.plan import RunPlan
    from clft.sweep.stale_runs import spread_sample

    keys = list(itertools.product(("class-il", "task-il"), ("a", "b"), (0, 1, 2)))
    group = [PlannedRun(RunPlan([], scenario, seed, label), tmp_path / scenario / label / f"seed{seed}.json", "h",
                        STALE, {}) for scenario, label, seed in keys]
    for seed in range(20):
        picked = spread_sample(group, 4, random.Random(seed))
        assert len({(p.plan.scenario, p.plan.label) for p in picked}) == 4  # one per (scenario, entry)
        assert picked == sorted(picked, key=group.index)  # in plan order
    assert len(spread_sample(group, 6, random.Random(0))) == 6
    assert spread_sample(group[:1], 2, random.Random(0)) == group[:1]
