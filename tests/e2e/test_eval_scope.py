"""train.eval_scope: seen evaluates the tasks trained so far and the last row on every task (issue 23):
the JSON, the table (FWT n/d), the plots, the trackers, result validation and resume."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml
from conftest import TINY_EXPERIMENT, run_cli

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.engine import runner
from clft.errors import DataError
from clft.results.check import check_result, with_checksum
from clft.results.files import load_results
from clft.results.metrics import compute_all
from clft.results.plots import figures
from clft.results.trackers import log_finished_run
from clft.sweep.run import run_experiment

STRATEGIES = ("ewc", "finetune")
T = 5  # split-digits: 5 tasks of 2 classes
EXPERIMENT = {**TINY_EXPERIMENT, "scenarios": ["task-il"],  # task-IL: FWT is defined there with the full matrix
              "compare": ["finetune", {"name": "ewc", "lam": 10.0}], "strategies": None,
              "train": {"epochs": 1, "batch_size": 32, "lr": 0.01, "threads": 1, "log_with": ["csv"]}}


def result(out, strategy: str) -> dict:
    return json.loads((out / "task-il" / strategy / "seed0.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(folder of the full-matrix runs, folder of the same runs with train.eval_scope=seen), by the CLI."""
    root = tmp_path_factory.mktemp("eval-scope")
    (root / "exp.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    folders = {}
    for scope in ("full", "seen"):
        folders[scope] = root / scope
        proc = run_cli("run", str(root / "exp.yaml"), f"train.eval_scope={scope}", "--out", str(folders[scope]),
                       "--quiet")
        assert proc.returncode == 0, proc.stderr
    return folders["full"], folders["seen"], root / "exp.yaml"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_seen_runs_null_exactly_the_unseen_cells_and_match_the_full_run_elsewhere(runs, strategy):
    full, seen = result(runs[0], strategy), result(runs[1], strategy)
    assert seen["config"]["train"]["eval_scope"] == "seen" and full["config"]["train"]["eval_scope"] == "full"
    assert seen["baseline_acc"] == [None] * T and None not in full["baseline_acc"]
    for i in range(T):
        evaluated = range(T) if i == T - 1 else range(i + 1)
        assert [j for j in range(T) if seen["acc"][i][j] is None] == [j for j in range(T) if j not in evaluated]
        assert [seen["acc"][i][j] for j in evaluated] == [full["acc"][i][j] for j in evaluated]  # same training
    assert seen["config_hash"] != full["config_hash"]


def table_cells(out) -> tuple[dict[str, dict[str, str]], str]:
    """({strategy: {column: cell}}, the whole output) of `clft table`."""
    proc = run_cli("table", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    headers = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(headers, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return {row["strategy"]: row for row in rows}, proc.stdout


def test_the_table_prints_fwt_nd_and_the_metrics_of_the_evaluated_cells(runs):
    full, full_text = table_cells(runs[0])
    seen, seen_text = table_cells(runs[1])
    run = result(runs[1], "finetune")
    skipped = {k for k, v in compute_all(run["acc"], run["baseline_acc"]).items() if math.isnan(v)}
    assert skipped - {"intransigence"} == {"fwt"}  # intransigence: no joint/offline reference run here
    assert "n/d" not in full_text and full["finetune"]["FWT"] != ""
    assert "n/d¹: not evaluated: the run scored only the tasks trained so far (train.eval_scope: seen)" in seen_text
    columns = {"acc": "ACC", "bwt": "BWT", "fwt": "FWT", "forgetting": "Forgetting", "aia": "AIA", "la": "LA"}
    for strategy in STRATEGIES:
        for key, column in columns.items():
            expected = "n/d¹" if key in skipped else full[strategy][column]
            assert seen[strategy][column] == expected, (strategy, column)


def test_the_heatmap_writes_nd_in_the_cells_not_evaluated(runs):
    heatmap = dict(figures(load_results(runs[1])))["heatmap_task-il_finetune"]
    texts = [t.get_text() for t in heatmap.axes[0].texts]
    assert len(texts) == T * T and texts.count("n/d") == T * (T - 1) // 2 and "nan" not in texts


def test_the_tracker_logs_only_evaluated_cells_and_no_fwt(runs):
    with open(runs[1] / "logs" / "task-il" / "finetune" / "seed0" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    run = result(runs[1], "finetune")
    for j, task in enumerate(run["tasks"]):
        logged = [float(r["value"]) for r in rows if r["name"] == f"acc/{task['name']}"]
        assert logged == [run["acc"][i][j] for i in range(j, T)]  # after tasks j..T (1-based)
    final = {r["name"] for r in rows if r["name"].startswith("final/")}
    assert "final/acc" in final and "final/bwt" in final and "final/fwt" not in final


def test_a_finished_seen_run_logged_from_its_result_file_skips_the_null_cells(runs, tmp_path):
    path = runs[1] / "task-il" / "finetune" / "seed0.json"
    assert log_finished_run(["csv"], path, tmp_path, "task-il/finetune/seed0") == ["csv"]
    with open(tmp_path / "task-il" / "finetune" / "seed0" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    run = result(runs[1], "finetune")
    assert sum(r["name"].startswith("acc/") and r["name"] != "acc/seen" for r in rows) == T * (T + 1) // 2
    assert "final/fwt" not in {r["name"] for r in rows} and "final/acc" in {r["name"] for r in rows}
    assert [float(r["value"]) for r in rows if r["name"] == f"acc/{run['tasks'][0]['name']}"] == \
        [run["acc"][i][0] for i in range(T)]


def test_a_killed_seen_run_resumes_to_the_uninterrupted_matrix(runs, tmp_path):
    out = tmp_path / "killed"
    proc = run_cli("run", str(runs[2]), "train.eval_scope=seen", "--out", str(out), "--quiet", "--no-plots",
                   env={"CLFT_KILL_AT": "train:task3:step0"})
    assert proc.returncode == -9  # SIGKILL in the fourth task: three rows with skipped cells checkpointed
    assert (out / ".checkpoints" / "task-il" / "finetune" / "seed0" / "LATEST").read_text().strip() == "task002"
    resumed = run_cli("run", str(runs[2]), "train.eval_scope=seen", "--out", str(out), "--quiet", "--no-plots",
                      "--resume")
    assert resumed.returncode == 0, resumed.stderr
    for strategy in STRATEGIES:
        got, expected = result(out, strategy), result(runs[1], strategy)
        assert got["acc"] == expected["acc"] and got["baseline_acc"] == expected["baseline_acc"] == [None] * T


@pytest.mark.parametrize("scope, evaluations", [("full", T * (T + 1)), ("seen", T * (T + 1) // 2)])
def test_seen_evaluates_half_of_the_task_test_sets(scope, evaluations, tmp_path, monkeypatch):
    calls = []
    evaluate = runner.evaluate_task
    monkeypatch.setattr(runner, "evaluate_task", lambda run, task, predict: (calls.append(task.id),
                                                                             evaluate(run, task, predict))[1])
    raw = {**TINY_EXPERIMENT, "train": {"epochs": 1, "max_steps_per_task": 1, "eval_scope": scope}}
    run_experiment(make_dataclass_instance(ExperimentConfig, raw, where="e"), tmp_path, progress=False,
                   log=lambda *_: None)
    assert len(calls) == evaluations


def test_a_bad_eval_scope_is_a_one_line_error_naming_the_valid_ones(tmp_path):
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    proc = run_cli("run", str(tmp_path / "exp.yaml"), "train.eval_scope=some", "--out", str(tmp_path / "o"))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1
    assert "eval_scope" in lines[0] and "'full'" in lines[0] and "'seen'" in lines[0]


def test_metrics_of_the_evaluated_cells_equal_those_of_the_full_matrix():
    full = [[0.9, 0.2, 0.1], [0.6, 0.8, 0.3], [0.5, 0.7, 0.9]]
    seen = [[0.9, None, None], [0.6, 0.8, None], [0.5, 0.7, 0.9]]
    joint = [[0.95, 0.0, 0.0], [0.9, 0.85, 0.0], [0.9, 0.8, 0.95]]
    expected, got = compute_all(full, [0.1, 0.1, 0.1], joint), compute_all(seen, [None] * 3, joint)
    assert math.isnan(got.pop("fwt")) and not math.isnan(expected.pop("fwt"))
    assert got == pytest.approx(expected)  # ACC, BWT, forgetting (rows l >= j), AIA, LA, intransigence


# ---------------------------------------------------------------- result validation
def document(scope: str | None, acc: list, baseline: list | None = None) -> dict:
    """A minimal valid-looking 2-task result made with ``train.eval_scope: scope`` (None: no config)."""
    data = {"schema_version": 1, "tasks": [{"name": "a"}, {"name": "b"}], "acc": acc, "seed": 0,
            "scenario": "task-il", "baseline_acc": baseline}
    if scope is not None:
        data["config"] = {"train": {"eval_scope": scope}}
    return with_checksum(data)


def test_a_seen_run_may_hold_nulls_above_the_diagonal():
    check_result(document("seen", [[0.9, None], [0.5, 0.8]], [None, None]), "r.json")


@pytest.mark.parametrize("acc, baseline, where", [
    ([[None, None], [0.5, 0.8]], None, r"acc\[0\]"),  # on the diagonal
    ([[0.9, None], [None, 0.8]], None, r"acc\[1\]"),  # below it (the last row is evaluated in full)
    ([[0.9, None], [0.5, None]], None, r"acc\[1\]"),  # the last row's diagonal
])
def test_a_seen_run_refuses_nulls_on_or_below_the_diagonal(acc, baseline, where):
    with pytest.raises(DataError, match=where + r" holds None; .*\(null only above the diagonal"):
        check_result(document("seen", acc, baseline), "r.json")


@pytest.mark.parametrize("scope", ["full", None])
def test_a_full_run_refuses_every_null(scope):
    with pytest.raises(DataError, match=r"acc\[0\] holds None"):
        check_result(document(scope, [[0.9, None], [0.5, 0.8]]), "r.json")
    with pytest.raises(DataError, match="baseline_acc holds None"):
        check_result(document(scope, [[0.9, 0.1], [0.5, 0.8]], [0.5, None]), "r.json")
