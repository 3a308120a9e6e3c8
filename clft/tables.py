"""Tables of metrics aggregated over seeds, computed from run JSONs only.

Runs are grouped by ``(scenario, strategy)``. For each group every metric of
``clft.metrics.compute_all`` is reported as mean ± sample standard deviation
over seeds (ddof = 1; 0 with one seed), with the seed count ``n``.
Intransigence of a run uses the reference run of the same experiment, scenario
and seed: the ``offline`` run (re-initialised at every task, so a*_k is a model
trained from scratch on tasks ≤ k, as Chaudhry et al. 2018 define it) when the
experiment has one, else the incremental ``joint`` run; it is the mean over the
seeds that have one, and blank when none do.
A group's runs must share the task list (point the table at one experiment's
results when several experiments share a scenario and strategy).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clft.errors import DataError
from clft.metrics import METRIC_KEYS, compute_all
from clft.results import load_results

#: Valid ``fmt`` values of :func:`render_table`.
FORMATS = ("md", "latex", "csv")
#: Display names of the metric columns, in table order.
METRIC_HEADERS = {
    "acc": "ACC", "bwt": "BWT", "fwt": "FWT", "forgetting": "Forgetting",
    "aia": "AIA", "la": "LA", "intransigence": "Intransigence",
}
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

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        vals = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
        if vals.size == 0:
            return cls(math.nan, math.nan, 0)
        std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        return cls(float(vals.mean()), std, int(vals.size))


@dataclass(frozen=True)
class Row:
    """One table row: a (scenario, strategy) group aggregated over its seeds.

    ``metrics`` is keyed by ``clft.metrics.METRIC_KEYS``; ``final_acc`` maps a
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
    final_acc: dict[str, Stat] = field(default_factory=dict)
    extra: dict[str, Stat] = field(default_factory=dict)


# ---------------------------------------------------------------- reading runs
def _where(run: dict) -> str:
    """How error messages name a run: its file, else its ``run`` name."""
    return str(run.get("_path") or run.get("run") or "run")


def _get(run: dict, key: str):
    if key not in run:
        raise DataError(f"{_where(run)}: missing key {key!r}")
    return run[key]


def strategy_of(run: dict) -> str:
    """The run's strategy name (``strategy``; else the part of ``run`` before ``/seed``)."""
    if "strategy" in run:
        return str(run["strategy"])
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

    Raises DataError when a group mixes task lists or repeats a seed.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((str(_get(run, "scenario")), strategy_of(run)), []).append(run)
    for key, members in groups.items():
        members.sort(key=lambda r: _get(r, "seed"))
        _check_group(key, members)
    return dict(sorted(groups.items()))


def _check_group(key: tuple[str, str], members: list[dict]) -> None:
    first = members[0]
    for run in members:
        if task_names(run) != task_names(first):
            raise DataError(f"{key[0]}/{key[1]}: {_where(run)} and {_where(first)} have different tasks; "
                            "make one table per experiment")
    for a, b in zip(members, members[1:]):
        if a["seed"] == b["seed"]:
            raise DataError(f"{key[0]}/{key[1]}: seed {a['seed']} appears twice ({_where(a)}, {_where(b)}); "
                            "make one table per experiment")


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
    names = task_names(members[0])
    extra_keys = sorted({k for run in members for k, v in (run.get("extra") or {}).items() if _is_number(v)})
    return Row(
        scenario=key[0],
        strategy=key[1],
        n=len(members),
        seeds=tuple(run["seed"] for run in members),
        metrics={k: Stat.of(r[k] for r in per_run) for k in METRIC_KEYS},
        extra_state_mb=Stat.of(_number(c.get("extra_state_bytes")) / 2**20 for c in costs),
        train_seconds=Stat.of(float(np.sum(c["train_seconds"])) if "train_seconds" in c else None for c in costs),
        final_acc={name: Stat.of(finals[:, j]) for j, name in enumerate(names)},
        extra={k: Stat.of(_number((run.get("extra") or {}).get(k)) for run in members) for k in extra_keys},
    )


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


# ---------------------------------------------------------------- rendering
def render_table(directory: str | Path, fmt: str = "md") -> str:
    """The table of every run JSON under ``directory`` as ``md``, ``latex`` or ``csv`` text.

    Raises ValueError for another ``fmt`` and DataError when the directory is
    missing or holds no run.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    runs = load_results(directory)
    if not runs:
        raise DataError(f"no run JSON files under {directory}")
    return render_rows(summarize(runs), fmt)


def render_rows(rows: list[Row], fmt: str = "md") -> str:
    """Render rows from :func:`summarize` (``fmt`` as in :func:`render_table`)."""
    renderers: dict[str, Callable[[list[Row]], str]] = {"md": _markdown, "latex": _latex, "csv": _csv}
    if fmt not in renderers:
        raise ValueError(f"unknown table format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return renderers[fmt](rows)


def _union(rows: list[Row], attr: str) -> list[str]:
    """Keys of ``row.<attr>`` over all rows, in order of first appearance."""
    return list(dict.fromkeys(k for row in rows for k in getattr(row, attr)))


def _headers(rows: list[Row]) -> list[str]:
    fixed = ["scenario", "strategy", "n", *METRIC_HEADERS.values(), "extra state (MB)", "train time (s)"]
    return fixed + _union(rows, "final_acc") + _union(rows, "extra")


def _cells(row: Row, rows: list[Row], pm: Callable[[Stat], str], num: Callable[[float, str], str]) -> list[str]:
    """A row's display cells; ``pm`` formats a mean ± std, ``num`` a mean with a format spec."""
    cells = [row.scenario, row.strategy, str(row.n)]
    cells += [pm(row.metrics[k]) for k in METRIC_KEYS]
    cells += [num(row.extra_state_mb.mean, ".2f"), num(row.train_seconds.mean, ".1f")]
    cells += [num(row.final_acc[k].mean, ".3f") if k in row.final_acc else "" for k in _union(rows, "final_acc")]
    cells += [num(row.extra[k].mean, ".4g") if k in row.extra else "" for k in _union(rows, "extra")]
    return cells


def _plain(value: float, spec: str) -> str:
    return "" if math.isnan(value) else format(value, spec)


def _markdown(rows: list[Row]) -> str:
    """GitHub Markdown; metric cells read ``0.812 ± 0.010``; blank where undefined."""

    def pm(s: Stat) -> str:
        return "" if s.n == 0 or math.isnan(s.mean) else f"{s.mean:.3f} ± {s.std:.3f}"

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    headers = _headers(rows)
    out = [line(headers), "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
    out += [line(_cells(row, rows, pm, _plain)) for row in rows]
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(rows: list[Row]) -> str:
    """A booktabs ``tabular``; metric cells read ``$0.812 \\pm 0.010$``."""

    def pm(s: Stat) -> str:
        return "" if s.n == 0 or math.isnan(s.mean) else f"${s.mean:.3f} \\pm {s.std:.3f}$"

    headers = _headers(rows)
    out = [r"\begin{tabular}{ll" + "r" * (len(headers) - 2) + "}", r"\toprule",
           " & ".join(_tex(h) for h in headers) + r" \\", r"\midrule"]
    for row in rows:
        cells = _cells(row, rows, pm, _plain)
        out.append(" & ".join([_tex(cells[0]), _tex(cells[1]), *cells[2:]]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def _csv_columns(rows: list[Row]) -> list[tuple[str, Callable[[Row], Stat | None]]]:
    """(column stem, getter) for every Stat column; each becomes ``<stem>_mean`` and ``<stem>_std``."""
    cols: list[tuple[str, Callable[[Row], Stat | None]]] = [
        (k, lambda r, k=k: r.metrics[k]) for k in METRIC_KEYS
    ]
    cols += [("extra_state_mb", lambda r: r.extra_state_mb), ("train_seconds", lambda r: r.train_seconds)]
    cols += [(f"final_acc:{k}", lambda r, k=k: r.final_acc.get(k)) for k in _union(rows, "final_acc")]
    cols += [(f"extra:{k}", lambda r, k=k: r.extra.get(k)) for k in _union(rows, "extra")]
    return cols


def _csv(rows: list[Row]) -> str:
    """Machine-readable: ``<metric>_mean`` and ``<metric>_std`` columns, full precision, empty for undefined."""
    cols = _csv_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["scenario", "strategy", "n", *(f"{stem}_{part}" for stem, _ in cols for part in ("mean", "std"))])
    for row in rows:
        values = []
        for _, get in cols:
            s = get(row)
            values += ["", ""] if s is None or s.n == 0 else [repr(s.mean), repr(s.std)]
        writer.writerow([row.scenario, row.strategy, row.n, *values])
    return buf.getvalue()
