"""Table statistics (--ci), undefined-metric markers and provenance warnings."""

import json

import pytest

from clft.results.check import with_checksum
from clft.results.stats import t_interval, welch_p
from clft.results.tables import TableOptions, render_table

CLEAN = {"source_sha256": "a" * 64, "git_commit": "1" * 40, "git_dirty": False}


def write(directory, label, seed, acc, *, scenario="task-il", code=CLEAN, baseline=None):
    tasks = [{"id": i, "name": f"t{i}", "classes": [i]} for i in range(len(acc))]
    run = {"schema_version": 1, "experiment": "e", "run": f"{label}/seed{seed}", "strategy": label, "label": label,
           "seed": seed, "scenario": scenario, "tasks": tasks, "acc": acc,
           "baseline_acc": baseline or [0.0] * len(acc), "code": code}
    path = directory / scenario / label / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(with_checksum(run) if code else run))  # as clft writes it (clft.results.check)


def line_of(text, label, scenario="task-il"):
    return next(line for line in text.splitlines() if line.startswith(f"| {scenario} | {label} |"))


def test_t_interval_by_hand():
    # mean 0.2, s = 0.1, n = 3: half-width t_{0.975, 2} · 0.1/√3 = 4.302653 · 0.0577350 = 0.2484138
    low, high = t_interval([0.1, 0.2, 0.3])
    assert (low, high) == (pytest.approx(0.2 - 0.2484138), pytest.approx(0.2 + 0.2484138))
    assert t_interval([0.5]) is None


def test_welch_p_by_hand():
    # a = 1,2,3 and b = 4,5,6: t = −3/√(1/3 + 1/3) = −3.674235, Welch df = 4, two-sided p = 0.021311
    assert welch_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.021311, abs=1e-6)
    assert welch_p([1], [4, 5]) is None and welch_p([1, 1], [1, 1]) is None


def test_ci_cells_and_significance_marks(tmp_path):
    for seed, (ft, good, same) in enumerate([(0.50, 0.90, 0.52), (0.52, 0.91, 0.49), (0.48, 0.92, 0.51)]):
        write(tmp_path, "finetune", seed, [[0.9, 0.1], [ft, 0.9]])
        write(tmp_path, "replay", seed, [[0.9, 0.1], [good, 0.9]])
        write(tmp_path, "lwf", seed, [[0.9, 0.1], [same, 0.9]])
    text = render_table(tmp_path, "md", TableOptions(ci=True))
    # replay ACC per seed (x + 0.9)/2 = 0.9, 0.905, 0.91: mean 0.905, s 0.005, half-width 4.302653·0.005/√3 = 0.0124
    assert "| 0.905 ± 0.005 [0.893, 0.917]† |" in line_of(text, "replay")
    assert "†" not in line_of(text, "lwf") and "†" not in line_of(text, "finetune")
    assert "†: differs from the scenario's finetune row by Welch's t-test, p < 0.05." in text
    plain = render_table(tmp_path, "md")
    assert "[" not in line_of(plain, "replay") and "†" not in plain


def test_no_marks_when_finetune_has_one_seed(tmp_path):
    write(tmp_path, "finetune", 0, [[0.9, 0.1], [0.5, 0.9]])
    for seed in (0, 1):
        write(tmp_path, "replay", seed, [[0.9, 0.1], [0.9 + seed / 100, 0.9]])
    text = render_table(tmp_path, "md", TableOptions(ci=True))
    assert "†" not in line_of(text, "replay") and "no significance marks" in text


def test_class_il_fwt_and_one_task_metrics_say_undefined(tmp_path):
    write(tmp_path, "finetune", 0, [[0.9, 0.0], [0.0, 0.9]], scenario="class-il", baseline=[0.1, 0.1])
    write(tmp_path, "finetune", 0, [[0.9, 0.3], [0.5, 0.9]], baseline=[0.1, 0.1])
    write(tmp_path, "single", 0, [[0.8]], scenario="domain-il")
    text = render_table(tmp_path, "md")
    class_il = line_of(text, "finetune", "class-il").split(" | ")
    assert class_il[5] == "n/d¹" and class_il[4] == "-0.900"  # FWT column; BWT stays a number
    assert line_of(text, "finetune").split(" | ")[5] == "0.200"  # task-IL FWT: 0.3 − 0.1
    single = line_of(text, "single", "domain-il").split(" | ")
    assert single[4:7] == ["n/d²", "n/d²", "n/d²"]
    assert "n/d¹: class-IL FWT is undefined" in text and "n/d²: BWT, FWT and forgetting need T ≥ 2 tasks." in text
    csv_text = render_table(tmp_path, "csv")
    assert csv_text.splitlines()[1].split(",")[7] == ""  # class-IL fwt_mean is empty, not −baseline


def test_provenance_warnings(tmp_path):
    write(tmp_path, "finetune", 0, [[0.9]])
    assert "warning" not in render_table(tmp_path, "md")
    write(tmp_path, "finetune", 1, [[0.8]], code={**CLEAN, "source_sha256": "b" * 64, "git_dirty": True})
    notes = [line for line in render_table(tmp_path, "md").splitlines() if line.startswith("warning")]
    assert notes[0].startswith("warning: these runs come from 2 code identities (")
    assert "aaaaaaaa (commit 1111111): 1 run" in notes[0] and "bbbbbbbb (commit 1111111, dirty): 1 run" in notes[0]
    assert notes[1].startswith("warning: 1 of 2 runs were made from a tree with uncommitted changes")
    assert len(notes) == 2


def test_the_forgetting_definition_is_stated_under_tables_that_show_forgetting(tmp_path):
    # Zero-shot skill: task 2 scores 0.9 before it is trained and 0.6 after; forgetting counts from 0.6.
    write(tmp_path / "two", "finetune", 0, [[0.8, 0.9, 0.2], [0.7, 0.6, 0.3], [0.5, 0.4, 0.9]])
    text = render_table(tmp_path / "two", "md")
    assert line_of(text, "finetune").split(" | ")[6] == "0.250"  # ((0.8 − 0.5) + (0.6 − 0.4)) / 2
    definition = "Forgetting: F = mean over j < T of f_j = max_{j ≤ l < T} R[l,j] − R[T,j]"
    assert definition in text and "before task j was trained (zero-shot) do not count." in text
    assert definition in render_table(tmp_path / "two", "latex")
    write(tmp_path / "one", "finetune", 0, [[0.8]])  # one task: no forgetting value, no definition
    assert "Forgetting:" not in render_table(tmp_path / "one", "md")
