"""results/moved.py: one seed of every committed run group made again and compared bit for bit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.sweep.run import run_experiment

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("moved", REPO / "results" / "moved.py")
moved = importlib.util.module_from_spec(spec)
spec.loader.exec_module(moved)


def make_folder(root: Path) -> Path:
    folder = root / "tiny"
    cfg = make_dataclass_instance(ExperimentConfig, {
        "seeds": [0, 1], "benchmark": {"name": "split-digits", "n_tasks": 2},
        "backbone": {"name": "mlp", "hidden": [8]}, "compare": ["finetune", {"name": "ewc", "lam": 10.0}],
        "train": {"max_steps_per_task": 2}}, where="e")
    run_experiment(cfg, folder, progress=False, log=lambda m: None)
    return folder


def test_one_representative_per_group_with_the_lowest_seed(tmp_path):
    folder = make_folder(tmp_path)
    picked = moved.representatives(folder)
    assert [(moved.group_key(r, folder), r["seed"]) for r in picked] == [
        ("class-il/ewc", 0), ("class-il/finetune", 0)]
    assert moved.committed_folders(tmp_path) == [folder]


def test_an_unchanged_run_is_same_and_an_edited_or_invalid_one_moved(tmp_path, capsys, monkeypatch):
    folder = make_folder(tmp_path)
    run = moved.representatives(folder)[1]
    assert moved.verdict(run, moved.rerun(run)) == "same"
    published = {"cells": {"class-il": {"no-such-row": 0.5}}}  # a preset's numbers name all its rows
    assert moved.verdict(run, moved.rerun({**run, "config": {**run["config"], "published": published}})) == "same"
    edited = {**run, "acc": [[cell + 0.25 for cell in row] for row in run["acc"]]}
    assert moved.verdict(edited, moved.rerun(run)).startswith("moved (max |Δ| 0.2500")
    broken = {**run, "config": {**run["config"], "compare": [{"name": "finetune", "no_such_option": 1}]}}
    assert "config no longer runs" in moved.verdict(broken, moved.rerun(broken))


def test_main_reports_the_folders_that_moved_and_exits_1(tmp_path, capsys, monkeypatch):
    make_folder(tmp_path)
    monkeypatch.setattr(moved, "RESULTS", tmp_path)
    assert moved.main(["tiny", "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["tiny/class-il/ewc seed 0", "tiny/class-il/finetune seed 0"]
    assert moved.main(["tiny"]) == 0 and capsys.readouterr().out.strip().endswith("moved: none")
    made_again = moved.rerun

    def drifted(run):  # what code that changes the ewc run's numbers would give
        again = made_again(run)
        return {**again, "acc": [[0.0] * len(row) for row in again["acc"]]} if run["label"] == "ewc" else again

    monkeypatch.setattr(moved, "rerun", drifted)
    assert moved.main(["tiny"]) == 1
    assert capsys.readouterr().out.strip().endswith("moved: tiny")
