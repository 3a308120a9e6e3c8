"""clft.results.tables and clft.results.plots on synthetic run JSONs whose aggregates are computed by hand below."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys

import pytest

from clft.errors import DataError
from clft.results.files import load_results
from clft.results.metrics import FORGETTING_DEFINITION
from clft.results.plots import write_plots
from clft.results.summary import summarize
from clft.results.tables import FORMATS, render_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = ["alpha", "beta"]


def write_run(directory, strategy, seed, acc, baseline=(0.1, 0.1), *, scenario="class-il", experiment="exp",
              train_seconds=(1.0, 1.0), extra_state_bytes=0, extra=None, tasks=TASKS, peak_memory_mb=100.0):
    """Write one schema-v1 run JSON as the runner would, under ``directory/<strategy>/seed<seed>.json``."""
    run = {
        "schema_version": 1, "experiment": experiment, "run": f"{strategy}/seed{seed}", "strategy": strategy,
        "seed": seed, "scenario": scenario,
        "tasks": [{"id": i, "name": n, "classes": [2 * i, 2 * i + 1], "n_train": 10, "n_test": 4}
                  for i, n in enumerate(tasks)],
        "acc": acc, "baseline_acc": list(baseline),
        "cost": {"train_seconds": list(train_seconds), "peak_memory_mb": peak_memory_mb, "trainable_params": 1000,
                 "extra_state_bytes": extra_state_bytes},
    }
    if extra is not None:
        run["extra"] = extra
    path = directory / scenario / strategy / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run))
    return path


@pytest.fixture
def results(tmp_path):
    """2 strategies × 2 seeds + joint runs (class-il), and one task-il run without a joint reference."""
    mb2 = 2 * 2**20
    # ewc seed 0: ACC (0.5+0.8)/2 = 0.65, BWT 0.5−0.9 = −0.4, FWT R[1,2]−b[2] = 0.1−0.05 = 0.05,
    #             F 0.9−0.5 = 0.4, AIA (0.9 + 0.65)/2 = 0.775, LA (0.9+0.8)/2 = 0.85
    write_run(tmp_path, "ewc", 0, [[0.9, 0.1], [0.5, 0.8]], (0.1, 0.05), train_seconds=(10, 20),
              extra_state_bytes=mb2, peak_memory_mb=300.0)
    # ewc seed 1: ACC 0.75, BWT −0.2, FWT 0.2−0.1 = 0.1, F 0.2, AIA (0.8 + 0.75)/2 = 0.775, LA 0.85
    write_run(tmp_path, "ewc", 1, [[0.8, 0.2], [0.6, 0.9]], (0.1, 0.1), train_seconds=(12, 24),
              extra_state_bytes=mb2)
    # replay+ewc: ACC 0.825 both seeds, BWT −0.05 and −0.15; task_inference_acc 0.9 and 0.7
    write_run(tmp_path, "replay+ewc", 0, [[0.9, 0.1], [0.85, 0.8]], extra={"task_inference_acc": 0.9, "note": "x"})
    write_run(tmp_path, "replay+ewc", 1, [[0.9, 0.1], [0.75, 0.9]], extra={"task_inference_acc": 0.7, "ok": True})
    # joint: diag seed 0 = [0.9, 0.9]; seed 1 = [0.9, 0.95]
    write_run(tmp_path, "joint", 0, [[0.9, 0.1], [0.9, 0.9]])
    write_run(tmp_path, "joint", 1, [[0.9, 0.2], [0.9, 0.95]])
    # task-il: one run, no joint → intransigence blank, std 0
    write_run(tmp_path, "ewc", 0, [[0.7, 0.3], [0.6, 0.8]], scenario="task-il", tasks=["gamma", "delta"])
    return tmp_path


def rows_by_key(directory):
    return {(r.scenario, r.strategy): r for r in summarize(load_results(directory))}


def test_rows_are_sorted_by_scenario_then_strategy(results):
    keys = [(r.scenario, r.strategy) for r in summarize(load_results(results))]
    assert keys == [("class-il", "ewc"), ("class-il", "joint"), ("class-il", "replay+ewc"), ("task-il", "ewc")]


def test_summarize_ewc_means_and_sample_stds(results):
    row = rows_by_key(results)[("class-il", "ewc")]
    assert (row.n, row.seeds) == (2, (0, 1))
    s = math.sqrt(2 * 0.05**2)  # sample std (ddof=1) of two values 0.1 apart: |a−b|/√2 = 0.0707107
    expected = {  # key: (mean, std)
        "acc": (0.70, s), "bwt": (-0.30, 2 * s), "fwt": (0.075, s / 2), "forgetting": (0.30, 2 * s),
        "aia": (0.775, 0.0), "la": (0.85, 0.0),
        # I seed 0 = ((0.9−0.9) + (0.9−0.8))/2 = 0.05 ; seed 1 = ((0.9−0.8) + (0.95−0.9))/2 = 0.075
        "intransigence": (0.0625, 0.025 / math.sqrt(2)),
    }
    for key, (mean, std) in expected.items():
        assert row.metrics[key].mean == pytest.approx(mean), key
        assert row.metrics[key].std == pytest.approx(std, abs=1e-12), key
        assert row.metrics[key].n == 2
    assert row.final_acc["alpha"].mean == pytest.approx(0.55)  # (0.5 + 0.6) / 2
    assert row.final_acc["beta"].mean == pytest.approx(0.85)  # (0.8 + 0.9) / 2
    assert row.train_seconds.mean == pytest.approx(33.0)  # (10+20 + 12+24) / 2
    assert row.peak_memory_mb.mean == pytest.approx(200.0)  # (300 + 100) / 2
    assert row.extra_state_mb.mean == pytest.approx(2.0)
    assert row.extra == {}


def test_summarize_replay_extra_and_joint_row(results):
    rows = rows_by_key(results)
    replay = rows[("class-il", "replay+ewc")]
    assert replay.metrics["acc"].mean == pytest.approx(0.825)
    assert replay.metrics["acc"].std == pytest.approx(0.0, abs=1e-12)
    assert replay.metrics["bwt"].mean == pytest.approx(-0.1)  # (−0.05 − 0.15) / 2
    assert set(replay.extra) == {"task_inference_acc"}  # strings and booleans are not numbers
    assert replay.extra["task_inference_acc"].mean == pytest.approx(0.8)
    assert rows[("class-il", "joint")].metrics["intransigence"].mean == pytest.approx(0.0)


def test_single_seed_without_joint(results):
    row = rows_by_key(results)[("task-il", "ewc")]
    assert row.n == 1
    assert row.metrics["acc"].mean == pytest.approx(0.7) and row.metrics["acc"].std == 0.0
    assert row.metrics["intransigence"].n == 0 and math.isnan(row.metrics["intransigence"].mean)
    assert set(row.final_acc) == {"gamma", "delta"}


def test_markdown(results):
    text = render_table(results, "md")
    lines = text.splitlines()
    assert lines[0].startswith("| scenario | strategy | n | ACC | BWT | FWT | Forgetting | AIA | LA | Intransigence |")
    assert ("| extra state (MB) | train time (s) | peak memory (MB) | alpha | beta | gamma | delta "
            "| task_inference_acc |") in lines[0]
    ewc = next(line for line in lines if line.startswith("| class-il | ewc |"))
    assert ewc.startswith("| class-il | ewc | 2 | 0.700 ± 0.071 | -0.300 ± 0.141 | n/d¹ | 0.300 ± 0.141 "
                          "| 0.775 ± 0.000 | 0.850 ± 0.000 | 0.062 ± 0.018 | 2.00 | 33.0 | 200 "
                          "| 0.550 | 0.850 |  |  |  |")
    task_il = next(line for line in lines if line.startswith("| task-il |"))
    assert "| 0.750 |  | 0.00 | 2.0 | 100 |" in task_il  # LA (0.7+0.8)/2, blank I, extra state, time
    assert "±" not in task_il  # its one seed measured no spread; the two-seed ewc row shows "0.775 ± 0.000"
    assert task_il.endswith("|  |  | 0.600 | 0.800 |  |")
    assert lines[2 + 4:] == ["", "n/d¹: class-IL FWT is undefined: before task i is trained its classes are masked "
                             "out of the predictions, so R[i−1,i] = 0 and FWT = −mean(b[2..T]) for every strategy.", "",
                             FORGETTING_DEFINITION + ".", "",
                             "warning: none of these 7 runs records a code identity (made before clft recorded one); "
                             "re-run them with `clft run EXP --rerun-stale` to tie them to code"]


def test_latex(results):
    text = render_table(results, "latex")
    assert text.startswith("\\begin{tabular}{ll" + "r" * 16 + "}\n\\toprule\n")
    assert "\\midrule" in text and "\\bottomrule\n\\end{tabular}\n% n/d¹: class-IL FWT is undefined" in text
    assert "task\\_inference\\_acc" in text
    assert "class-il & ewc & 2 & $0.700 \\pm 0.071$ & $-0.300 \\pm 0.141$" in text
    assert "class-il & replay+ewc & 2 & $0.825 \\pm 0.000$" in text
    task_il = next(line for line in text.splitlines() if line.startswith("task-il"))
    assert "& $0.750$ &" in task_il and "\\pm" not in task_il  # one seed: the mean alone


def test_csv(results):
    rows = list(csv.DictReader(io.StringIO(render_table(results, "csv"))))
    assert [(r["scenario"], r["strategy"]) for r in rows][0] == ("class-il", "ewc")
    ewc = rows[0]
    assert int(ewc["n"]) == 2
    assert float(ewc["acc_mean"]) == pytest.approx(0.7)
    assert float(ewc["acc_std"]) == pytest.approx(math.sqrt(2 * 0.05**2))
    assert float(ewc["intransigence_mean"]) == pytest.approx(0.0625)
    assert float(ewc["train_seconds_mean"]) == pytest.approx(33.0)
    assert float(ewc["peak_memory_mb_mean"]) == pytest.approx(200.0)
    assert float(ewc["final_acc:alpha_mean"]) == pytest.approx(0.55)
    assert ewc["extra:task_inference_acc_mean"] == ""
    assert float(rows[2]["extra:task_inference_acc_mean"]) == pytest.approx(0.8)
    assert rows[3]["intransigence_mean"] == rows[3]["intransigence_std"] == ""
    task_il = next(r for r in rows if r["scenario"] == "task-il")  # one seed: a mean, no std
    assert task_il["n"] == "1" and float(task_il["la_mean"]) == pytest.approx(0.75) and task_il["la_std"] == ""


def test_unknown_format_names_the_valid_ones(results):
    with pytest.raises(ValueError, match="md, latex, csv"):
        render_table(results, "html")
    assert FORMATS == ("md", "latex", "csv")


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(DataError):
        render_table(tmp_path / "nope")
    with pytest.raises(DataError):
        write_plots(tmp_path / "nope")
    with pytest.raises(DataError, match="no run"):
        render_table(tmp_path)


def test_group_with_repeated_seed_or_other_tasks_is_an_error(tmp_path):
    write_run(tmp_path, "ewc", 0, [[0.9, 0.1], [0.5, 0.8]])
    write_run(tmp_path / "other", "ewc", 0, [[0.9, 0.1], [0.5, 0.8]], experiment="other")
    with pytest.raises(DataError, match="seed 0 appears twice"):
        render_table(tmp_path)
    write_run(tmp_path / "other", "ewc", 1, [[0.9, 0.1, 0.1], [0.5, 0.8, 0.1], [0.5, 0.8, 0.7]],
              baseline=(0.1, 0.1, 0.1), tasks=["x", "y", "z"])
    with pytest.raises(DataError, match="different numbers of tasks"):
        render_table(tmp_path)


def test_seeds_with_their_own_class_orders_share_columns_by_position(tmp_path):
    # shuffle_classes: every seed cuts the classes into tasks in its own order, so task names differ
    write_run(tmp_path, "ewc", 0, [[0.9, 0.1], [0.5, 0.8]], tasks=["digits-3-7", "digits-0-5"])
    write_run(tmp_path, "ewc", 1, [[0.9, 0.1], [0.7, 0.6]], tasks=["digits-1-2", "digits-4-9"])
    text = render_table(tmp_path, "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and math.isclose(float(rows[0]["acc_mean"]), (0.65 + 0.65) / 2)
    finals = (float(rows[0][f"final_acc:task {i}_mean"]) for i in (1, 2))
    assert [round(x, 9) for x in finals] == [0.6, 0.7]


def test_malformed_matrix_is_a_data_error(tmp_path):
    write_run(tmp_path, "ewc", 0, [[0.9, 0.1, 0.3], [0.5, 0.8, 0.2]])
    with pytest.raises(DataError, match=r"seed0.json: acc\[0\] must be a list of 2 accuracies"):
        render_table(tmp_path)


def test_write_plots(results):
    paths = write_plots(results)
    names = sorted(p.name for p in paths)
    assert names == sorted([
        "heatmap_class-il_ewc.png", "heatmap_class-il_joint.png", "heatmap_class-il_replay+ewc.png",
        "heatmap_task-il_ewc.png", "curves_class-il.png", "curves_task-il.png",
    ])
    for path in paths:
        assert path.parent == results / "plots"
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert not list((results / "plots").glob(".*"))  # no temporary files left behind
    # the plots directory does not disturb the table
    assert len(summarize(load_results(results))) == 4


def test_write_plots_out_dir(results, tmp_path):
    out = tmp_path / "elsewhere"
    paths = write_plots(results, out)
    assert paths and all(p.parent == out and p.stat().st_size > 0 for p in paths)


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, clft.results.plots, clft.results.tables; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_intransigence_prefers_the_offline_reference_over_joint(results):
    # offline diag seed 0 = [1.0, 1.0], seed 1 = [0.9, 0.9]; joint's (fixture) would give 0.05 and 0.075
    write_run(results, "offline", 0, [[1.0, 0.1], [0.9, 1.0]])
    write_run(results, "offline", 1, [[0.9, 0.1], [0.9, 0.9]])
    rows = rows_by_key(results)
    # ewc seed 0: ((1.0−0.9) + (1.0−0.8))/2 = 0.15 ; seed 1: ((0.9−0.8) + (0.9−0.9))/2 = 0.05
    assert rows[("class-il", "ewc")].metrics["intransigence"].mean == pytest.approx(0.10)
    assert rows[("class-il", "offline")].metrics["intransigence"].mean == pytest.approx(0.0)
