"""benchmarks/split_preset.py: a preset cut per entry plans the same runs, with the same config hashes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.sweep.classify import classify_runs

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("split_preset", REPO / "benchmarks" / "split_preset.py")
split_preset = importlib.util.module_from_spec(spec)
spec.loader.exec_module(split_preset)

RAW = {"name": "cut", "seeds": [0, 1], "scenarios": ["class-il", "task-il"], "benchmark": {"name": "split-digits"},
       "backbone": {"name": "mlp", "hidden": [8]}, "train": {"max_steps_per_task": 2},
       "compare": [{"label": "adam", "strategies": ["finetune"]},
                   {"label": "sgd", "strategies": ["finetune"], "train": {"optimizer": "sgd", "lr": 0.01}},
                   {"name": "ewc", "lam": 5.0}],
       "published": {"source": "s", "table": "t", "metric": "acc",
                     "cells": {"class-il": {"adam": {"mean": 19.0, "std": 1.0}, "sgd": {"mean": 18.0, "std": 1.0}}}}}


def hashes(raw: dict, out: Path) -> dict[str, str]:
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    return {str(run.result_path.relative_to(out)): run.config_hash for run in classify_runs(cfg, out)}


def test_cut_entries_plan_the_presets_runs_with_its_hashes(tmp_path):
    whole = hashes(RAW, tmp_path)
    parts = {}
    for keep in (["adam"], ["sgd", "ewc"]):
        part = split_preset.cut(yaml.safe_load(yaml.safe_dump(RAW)), keep)
        assert [split_preset.entry_name(e) for e in part["compare"]] == keep
        assert set(part["published"]["cells"]["class-il"]) == set(keep) & {"adam", "sgd"}
        parts.update(hashes(part, tmp_path))
    assert len(whole) == 3 * 2 * 2 and parts == whole  # entries x seeds x scenarios
