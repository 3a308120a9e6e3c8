"""Runs made by other code are stale: named before anything trains, re-run only with --rerun-stale."""

import json

import pytest

from clft.experiment import load_experiment
from clft.result_check import CHECKSUM_KEY, with_checksum
from clft.staleness import DONE, STALE, StaleResultsError
from clft.sweep import classify_runs, run_experiment

COMPARE = {"strategies": None, "compare": ["finetune", {"name": "ewc", "lam": 10.0}]}


def mark_made_by_other_code(path, code="other"):
    data = json.loads(path.read_text())
    data.pop(CHECKSUM_KEY)  # a genuine result of that code: its own checksum (clft.result_check)
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
