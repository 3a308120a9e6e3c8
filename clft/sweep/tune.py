"""``clft tune``: choose one hyper-parameter on validation data, never on the test stream.

``clft tune EXP --key compare.1.lam --values 10,100,1000`` runs the experiment once per
value (the value set by the dotted override ``KEY=VALUE``, each value parsed as YAML)
with ``eval_split: val`` (``clft.data.holdout``: each task's validation split, or a stratified
hold-out carved from its training data), into ``OUT/<key>=<value>/``. A key under
``compare.I.`` runs only entry I. The score of a value is its validation ACC (the
final row's mean, ``clft.results.metrics``) averaged over seeds, per scenario; the best value
is the highest score (the first in grid order on ties). ``OUT/tune.json`` and
``OUT/tune.md`` hold the scores and the best value per scenario.

``--jobs N`` runs N (value, seed) pairs of the grid at a time, each in a spawned worker
(``clft.sweep.process_pool``, ``cores // N`` torch threads unless ``train.threads`` is set, one GPU
round-robin), like ``clft run --jobs N`` does with runs. A pair's config is its value's with
``seeds: [seed]``, which resolves to the same per-run config, so the same results, as the whole
grid's. Every value's runs pass ``clft.sweep.preflight`` before anything trains, so a bad value
stops the grid at once. A killed grid (or a worker that died, which fails the grid with its exit
status) keeps its finished runs and task checkpoints: the same command with ``--resume`` continues it.
"""

from __future__ import annotations

import re
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from clft import console
from clft.config.experiment import ExperimentConfig
from clft.config.loading import apply_overrides, load_yaml, make_dataclass_instance
from clft.config.yaml_safe import safe_load_bounded
from clft.errors import ConfigError
from clft.results.files import load_results
from clft.results.metrics import average_accuracy
from clft.results.summary import Stat
from clft.results.tables import mean_spread
from clft.storage.atomic import atomic_write_json, atomic_write_text
from clft.sweep.executors import check_executor_options, gpu_slots, threads_per_job
from clft.sweep.plan import plan_runs
from clft.sweep.preflight import preflight
from clft.sweep.process_pool import WorkerPool
from clft.sweep.run import run_experiment
from clft.sweep.worker import prepare_worker

ENTRY_KEY = re.compile(r"compare\.(\d+)\.")


@dataclass
class TuneResult:
    """Validation ACC per scenario and value (values as given on the command line)."""

    key: str
    values: list[str]
    scores: dict[str, dict[str, Stat]] = field(default_factory=dict)

    def best(self) -> dict[str, str]:
        """Per scenario, the value with the highest mean validation ACC (first in grid order on ties)."""
        return {scenario: max(self.values, key=lambda v: (by_value[v].mean, -self.values.index(v)))
                for scenario, by_value in self.scores.items()}


def split_values(text: str) -> list[str]:
    """``10,100,1000`` -> ``['10', '100', '1000']`` (each later parsed as YAML by the override)."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ConfigError(f"--values {text!r}: give comma-separated values, e.g. --values 10,100,1000")
    return values


def tune_config(path: Path, key: str, value: str, overrides: list[str]) -> ExperimentConfig:
    """The experiment with ``key=value``, evaluated on validation data, reduced to the tuned entry."""
    raw = apply_overrides(load_yaml(path), [*overrides, f"{key}={value}"])
    entry = ENTRY_KEY.match(key)
    if entry and isinstance(raw.get("compare"), list):
        index = int(entry.group(1))
        if index >= len(raw["compare"]):
            raise ConfigError(f"--key {key}: the experiment has {len(raw['compare'])} compare entries")
        raw["compare"] = [raw["compare"][index]]
    raw.update(eval_split="val", published={})  # the paper's cells name entries this run may not have
    return make_dataclass_instance(ExperimentConfig, raw, where="experiment")


def value_folder(out: Path, key: str, value: str) -> Path:
    return out / re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{key}={value}")


def score_runs(runs: list[dict]) -> dict[str, Stat]:
    """Validation ACC over seeds per scenario."""
    by_scenario: dict[str, list[float]] = {}
    for run in runs:
        by_scenario.setdefault(run["scenario"], []).append(average_accuracy(run["acc"]))
    return {scenario: Stat.of(values) for scenario, values in by_scenario.items()}


@dataclass(frozen=True)
class GridPoint:
    """One value of the grid: its experiment (reduced to the tuned entry, on validation data) and folder."""

    value: str
    cfg: ExperimentConfig
    folder: Path


def tune(path: Path, key: str, values: list[str], out: Path, overrides: list[str] | None = None, *,
         jobs: int = 1, resume: bool = False, rerun_stale: bool = False, progress: bool = False,
         log=print) -> TuneResult:
    """Run the grid (finished runs of this code are reused) and score every value; writes tune.json and tune.md."""
    check_executor_options("local", jobs, None)
    grid = [GridPoint(value, tune_config(path, key, value, overrides or []), value_folder(out, key, value))
            for value in values]
    base_dir = path.resolve().parent
    for point in grid:  # every value's runs checked before any trains (a bad last value costs no hours)
        preflight(point.cfg, plan_runs(point.cfg), base_dir)
    for point in grid:
        log(f"[tune] {key}={point.value} -> {point.folder}")
    options = {"base_dir": base_dir, "resume": resume, "rerun_stale": rerun_stale}
    if jobs > 1:
        run_grid_in_workers(grid, jobs, options, log)
    else:
        for point in grid:
            run_experiment(point.cfg, point.folder, progress=progress, log=log, **options)
    result = TuneResult(key, values)
    for point in grid:
        for scenario, stat in score_runs(load_results(point.folder)).items():
            result.scores.setdefault(scenario, {})[point.value] = stat
    atomic_write_json(out / "tune.json", to_json(result))
    atomic_write_text(out / "tune.md", render(result))
    return result


def run_grid_in_workers(grid: list[GridPoint], jobs: int, options: dict, log) -> None:
    """Each (value, seed) pair in one of ``min(jobs, pairs)`` worker processes; logs each pair as it finishes;
    re-raises the first failure (after ending the other workers: their finished tasks are checkpointed)."""
    pairs = [replace(point, cfg=replace(point.cfg, seeds=[seed])) for point in grid for seed in point.cfg.seeds]
    workers = min(jobs, len(pairs))
    pool = WorkerPool(gpu_slots(workers, grid[0].cfg.train.device))
    try:
        futures = {pool.submit(run_grid_point, pair, threads_per_job(workers), options): pair for pair in pairs}
        for future in as_completed(futures):
            future.result()
            pair = futures[future]
            log(f"[tune] finished {pair.folder} seed {pair.cfg.seeds[0]}")
    except BaseException:
        pool.terminate()
        raise
    pool.close()


def run_grid_point(point: GridPoint, threads: int, options: dict) -> None:
    """In a worker (``clft.sweep.worker.prepare_worker``): one grid point's runs (``run_experiment`` with
    ``options``)."""
    prepare_worker(point.cfg, threads)
    run_experiment(point.cfg, point.folder, progress=False, log=console.detail, **options)


def to_json(result: TuneResult) -> dict:
    scores = {scenario: {v: {"mean": s.mean, "std": s.std, "n": s.n, "values": list(s.values)}
                         for v, s in by_value.items()} for scenario, by_value in result.scores.items()}
    best = {scenario: safe_load_bounded(value) for scenario, value in result.best().items()}
    return {"key": result.key, "values": [safe_load_bounded(v) for v in result.values], "metric": "val ACC",
            "scores": scores, "best": best}


def score_cell(score: Stat) -> str:
    """``mean ± std`` over seeds (``clft.results.tables.mean_spread``); ``mean (1 seed)`` when there is no spread
    to show (this table has no ``n`` column)."""
    return mean_spread(score) + (" (1 seed)" if score.n == 1 else "")


def render(result: TuneResult) -> str:
    """A Markdown table (value × scenario: validation ACC mean ± std) and the best value per scenario."""
    scenarios = list(result.scores)
    lines = ["| " + " | ".join([result.key, *(f"{s} val ACC" for s in scenarios)]) + " |",
             "|---|" + "---:|" * len(scenarios)]
    for value in result.values:
        cells = [score_cell(result.scores[s][value]) for s in scenarios]
        lines.append("| " + " | ".join([value, *cells]) + " |")
    best = "; ".join(f"{scenario}: {result.key}={value}" for scenario, value in result.best().items())
    return "\n".join(lines) + f"\n\nbest by validation ACC: {best}\n"
