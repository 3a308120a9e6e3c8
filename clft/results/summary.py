"""Runs grouped and aggregated over seeds, computed from run JSONs only (what ``clft.results.tables`` renders).

Runs are grouped by ``(scenario, label)`` (the compare entry's label; ``strategy``
for results that carry none). For each group every metric of
``clft.results.metrics.compute_all`` is reported as mean ± sample standard deviation
over seeds (ddof = 1; 0 with one seed), with the seed count ``n``.
Intransigence of a run uses the reference run of the same experiment, scenario
and seed: the ``offline`` run (re-initialised at every task, so a*_k is a model
trained from scratch on tasks ≤ k, as Chaudhry et al. 2018 define it) when the
experiment has one, else the incremental ``joint`` run; it is the mean over the
seeds that have one, and blank when none do.
Cells a run did not evaluate (``train.eval_scope: seen``: null in its JSON) are ``nan`` here, so a
metric that reads one is ``nan`` (``clft.results.tables`` prints it n/d).
A group's runs must share the task list and, where they record it, their resolved
config up to the seed (``clft.results.staleness.setting_hash``): a row never averages
seeds trained with different settings (point the table at one experiment's results
when several experiments share a scenario and strategy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from clft.errors import DataError
from clft.results.check import eval_scope
from clft.results.metrics import METRIC_KEYS, compute_all
from clft.results.staleness import config_differences, setting_hash

JOINT = "joint"
OFFLINE = "offline"
#: Strategies whose runs can be the intransigence reference, preferred first.
REFERENCES = (OFFLINE, JOINT)


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof = 1, 0 for one value) of ``n`` values; ``nan`` when n = 0."""

    mean: float
    std: float
    n: int
    values: tuple[float, ...] = ()
    """The values themselves (for confidence intervals and tests)."""

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        vals = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
        if vals.size == 0:
            return cls(math.nan, math.nan, 0)
        std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        return cls(float(vals.mean()), std, int(vals.size), tuple(float(v) for v in vals))


@dataclass(frozen=True)
class Row:
    """One table row: a (scenario, entry label) group aggregated over its seeds.

    ``strategy`` is the entry's label (the strategies joined by ``+`` unless the
    experiment gave a label); ``composition`` the strategies joined by ``+``.
    ``metrics`` is keyed by ``clft.results.metrics.METRIC_KEYS``; ``final_acc`` maps a
    task name to R[T, j] over seeds; ``extra`` holds the numeric ``extra``
    entries the strategy reported.
    """

    scenario: str
    strategy: str
    n: int
    seeds: tuple[int, ...]
    metrics: dict[str, Stat]
    extra_state_mb: Stat
    train_seconds: Stat
    peak_memory_mb: Stat
    final_acc: dict[str, Stat] = field(default_factory=dict)
    extra: dict[str, Stat] = field(default_factory=dict)
    generative: bool = False
    """Whether any task of the group is scored on generated text (the ACC column reads "AP")."""
    general: dict[str, Stat] = field(default_factory=dict)
    """``before`` / ``after``: mean general-ability score before training and after the last task."""
    composition: str = ""
    eval_scope: str = "full"
    """``seen`` when a run of the group evaluated only the tasks trained so far (``train.eval_scope``)."""

    @property
    def n_tasks(self) -> int:
        return len(self.final_acc)


# ---------------------------------------------------------------- reading runs
def _where(run: dict) -> str:
    """How error messages name a run: its file, else its ``run`` name."""
    return str(run.get("_path") or run.get("run") or "run")


def _get(run: dict, key: str):
    if key not in run:
        raise DataError(f"{_where(run)}: missing key {key!r}")
    return run[key]


def strategy_of(run: dict) -> str:
    """The run's table row: its ``label``; else ``strategy``; else the part of ``run`` before ``/seed``."""
    for key in ("label", "strategy"):
        if key in run:
            return str(run[key])
    return str(_get(run, "run")).rsplit("/", 1)[0]


def task_names(run: dict) -> list[str]:
    """The task names of a run, checked against the shape of its T×T ``acc`` matrix."""
    names = [str(t.get("name", t.get("id"))) for t in _get(run, "tasks")]
    try:
        shape = np.asarray(_get(run, "acc"), dtype=float).shape
    except (TypeError, ValueError):
        raise DataError(f"{_where(run)}: acc is not a numeric T×T matrix") from None
    if shape != (len(names), len(names)):
        raise DataError(f"{_where(run)}: acc has shape {shape}, expected {len(names)}×{len(names)}")
    return names


def group_runs(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs keyed by ``(scenario, strategy)``, keys sorted, each group sorted by seed.

    Raises DataError when a group mixes numbers of tasks or repeats a seed.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((str(_get(run, "scenario")), strategy_of(run)), []).append(run)
    for key, members in groups.items():
        members.sort(key=lambda r: _get(r, "seed"))
        _check_group(key, members)
    return dict(sorted(groups.items()))


def group_task_names(members: list[dict]) -> list[str]:
    """The task names the seeds of a group share; ``task 1`` .. ``task T`` (by position) when the seeds
    ran the same number of tasks under different names (``shuffle_classes``: a class order per seed)."""
    names = [task_names(run) for run in members]
    if all(n == names[0] for n in names):
        return names[0]
    return [f"task {i + 1}" for i in range(len(names[0]))]


def _check_group(key: tuple[str, str], members: list[dict]) -> None:
    first, count = members[0], len(task_names(members[0]))
    for run in members:
        if len(task_names(run)) != count:
            raise DataError(f"{key[0]}/{key[1]}: {_where(run)} and {_where(first)} have different numbers of "
                            "tasks; make one table per experiment")
    _check_one_setting(key, members)
    for a, b in zip(members, members[1:]):
        if a["seed"] == b["seed"]:
            raise DataError(f"{key[0]}/{key[1]}: seed {a['seed']} appears twice ({_where(a)}, {_where(b)}); "
                            "make one table per experiment")


def _check_one_setting(key: tuple[str, str], members: list[dict]) -> None:
    """A row averages seeds of ONE configuration: runs whose resolved configs differ beyond the seed
    (``clft.results.staleness.setting_hash``) are a DataError naming two of them and what differs. Runs that record
    no config (written before clft recorded one) are not compared."""
    recorded = [run for run in members if isinstance(run.get("config"), dict)]
    first = recorded[0] if recorded else None
    for run in recorded[1:]:
        if setting_hash(run["config"]) != setting_hash(first["config"]):
            differences = "; ".join(config_differences(first["config"], run["config"])) or "the configs differ"
            raise DataError(f"{key[0]}/{key[1]}: {_where(first)} and {_where(run)} were run with different configs "
                            f"({differences}); a row averages seeds of one config: make one table per config")


# ---------------------------------------------------------------- aggregation
def _run_metrics(run: dict, joints: dict[tuple, dict]) -> dict[str, float]:
    joint = joints.get(_joint_key(run))
    try:
        return compute_all(run["acc"], run.get("baseline_acc"), None if joint is None else joint["acc"])
    except ValueError as exc:
        raise DataError(f"{_where(run)}: {exc}") from None


def _summarize_group(key: tuple[str, str], members: list[dict], joints: dict[tuple, dict]) -> Row:
    per_run = [_run_metrics(run, joints) for run in members]
    costs = [run.get("cost") or {} for run in members]
    finals = np.asarray([np.asarray(run["acc"], dtype=float)[-1] for run in members])
    names = group_task_names(members)
    extra_keys = sorted({k for run in members for k, v in (run.get("extra") or {}).items() if _is_number(v)})
    return Row(
        scenario=key[0],
        strategy=key[1],
        n=len(members),
        seeds=tuple(run["seed"] for run in members),
        metrics={k: Stat.of(r[k] for r in per_run) for k in METRIC_KEYS},
        extra_state_mb=Stat.of(_number(c.get("extra_state_bytes")) / 2**20 for c in costs),
        train_seconds=Stat.of(float(np.sum(c["train_seconds"])) if "train_seconds" in c else None for c in costs),
        peak_memory_mb=Stat.of(_number(c.get("peak_memory_mb")) for c in costs),
        final_acc={name: Stat.of(finals[:, j]) for j, name in enumerate(names)},
        extra={k: Stat.of(_number((run.get("extra") or {}).get(k)) for run in members) for k in extra_keys},
        composition=str(members[0].get("strategy", key[1])),
        generative=any(t.get("metric", "accuracy") != "accuracy" for run in members for t in run["tasks"]),
        general=_general(members),
        eval_scope="seen" if any(eval_scope(run) == "seen" for run in members) else "full",
    )


def _general(members: list[dict]) -> dict[str, Stat]:
    """Mean general-ability score before training (row 0) and after the last task (last row)."""
    rows = [np.asarray(run["general"]["scores"], dtype=float) for run in members if run.get("general")]
    rows = [r for r in rows if r.ndim == 2 and len(r)]
    if not rows:
        return {}
    return {"before": Stat.of(float(r[0].mean()) for r in rows), "after": Stat.of(float(r[-1].mean()) for r in rows)}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value) -> float:
    return float(value) if _is_number(value) else math.nan


def summarize(runs: list[dict]) -> list[Row]:
    """One :class:`Row` per ``(scenario, strategy)``, sorted by scenario then strategy.

    ``runs`` are dicts as returned by ``clft.results.load_results``. The
    reference strategy's own row is included (its intransigence is 0).
    """
    groups = group_runs(runs)
    joints: dict[tuple, dict] = {}
    for reference in reversed(REFERENCES):  # the preferred reference is written last, so it wins
        for (_, strategy), members in groups.items():
            if strategy == reference:
                joints.update({_joint_key(r): r for r in members})
    return [_summarize_group(key, members, joints) for key, members in groups.items()]


def _joint_key(run: dict) -> tuple:
    """Which reference run (offline, else joint) belongs to ``run``: same experiment, scenario and seed."""
    return (run.get("experiment"), run["scenario"], run["seed"])
