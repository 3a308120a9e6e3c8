"""Stage 1 of a sweep: the plan. An experiment expands into runs, one per (compare entry, scenario, seed).

A run's files, under the output folder::

    <out>/<scenario>/<label>/seed<k>.json        the result (written last, atomically)
    <out>/.checkpoints/<scenario>/<label>/seed<k>/  per-task checkpoints (removed when done)
    <out>/<scenario>/<label>/seed<k>.lock         held while a process runs it
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clft.config.entries import group_label
from clft.config.experiment import ExperimentConfig, TrainConfig
from clft.config.validation import safe_join
from clft.config.yaml_safe import brief
from clft.errors import ConfigError


@dataclass
class RunPlan:
    group: list[dict]
    scenario: str | None
    seed: int
    entry_label: str | None = None
    """The compare entry's label (default: the strategies joined by '+'): the run's folder and table row."""
    train: TrainConfig | None = None
    """The entry's training options (default: the experiment's ``train``)."""

    @property
    def label(self) -> str:
        return self.entry_label or group_label(self.group)

    def train_of(self, cfg: ExperimentConfig) -> TrainConfig:
        return self.train or cfg.train


def plan_runs(cfg: ExperimentConfig) -> list[RunPlan]:
    """Every (compare entry, scenario, seed), scenarios outermost."""
    scenarios = cfg.scenarios or [None]
    entries = [(entry, cfg.train_for(entry)) for entry in cfg.entries()]
    return [RunPlan(entry.strategies, scenario, seed, entry.label, train)
            for scenario in scenarios for entry, train in entries for seed in cfg.seeds]


def result_path(out_dir: Path, scenario: str, plan: RunPlan) -> Path:
    return run_paths(out_dir, scenario, plan)[0]


def run_paths(out_dir: Path, scenario: str, plan: RunPlan) -> tuple[Path, Path]:
    """(result JSON, checkpoint folder) of a run."""
    return (safe_join(out_dir, scenario, plan.label, f"seed{plan.seed}.json"),
            safe_join(out_dir / ".checkpoints", scenario, plan.label, f"seed{plan.seed}"))


def check_restart_runs(restart_runs, run_keys: list[str] | None) -> None:
    """Every ``--restart-run`` names a planned run (when the plan's run names are known)."""
    for key in restart_runs:
        if run_keys is not None and key not in run_keys:
            raise ConfigError(f"--restart-run {brief(key)} names no run of this experiment; "
                              f"runs: {brief(', '.join(run_keys))}")
