"""Tables of metrics aggregated over seeds (``clft.results.summary``), as Markdown, LaTeX or CSV.

One row per ``(scenario, label)`` group of runs, metric cells mean ± std over seeds (the
mean alone for a one-seed row; ``clft.results.summary`` says how groups and the intransigence
reference are formed).
Where a run's tasks are scored on generated text (a ``metric`` other than
``accuracy`` in its ``tasks`` entries: ROUGE-L, exact match) the matrix is a
score matrix and the ACC column is headed "AP" (average performance, as LLM
papers call it); the metrics are the same functions. Runs with held-out
general-ability tasks (``general`` in the JSON) get two more columns: the mean
general score before training ("general before") and after the last task
("general after").
A metric that reads a cell the runs did not evaluate (``train.eval_scope: seen``: FWT) reads n/d,
with a footnote, as do metrics undefined by construction (class-IL FWT, BWT with one task).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clft.errors import DataError
from clft.results.files import load_results
from clft.results.metrics import METRIC_KEYS, undefined_reason
from clft.results.stats import significant, t_interval, welch_p
from clft.results.summary import Row, Stat, summarize
from clft.results.table_notes import (
    SIGNIFICANT_MARK,
    SUPERSCRIPTS,
    ci_footnote,
    forgetting_footnote,
    provenance_warnings,
    undefined_footnotes,
)

#: Valid ``fmt`` values of :func:`render_table`.
FORMATS = ("md", "latex", "csv")
#: Display names of the metric columns, in table order.
METRIC_HEADERS = {
    "acc": "ACC", "bwt": "BWT", "fwt": "FWT", "forgetting": "Forgetting",
    "aia": "AIA", "la": "LA", "intransigence": "Intransigence",
}
#: The strategy significance markers compare every row against.
FINETUNE = "finetune"


# ---------------------------------------------------------------- rendering
@dataclass(frozen=True)
class TableOptions:
    """What ``clft table`` adds to the plain table."""

    ci: bool = False
    """A 95% t confidence interval over seeds in every metric cell, and † where a row differs from the
    scenario's finetune row by Welch's t-test (p < 0.05; both with ≥ 2 seeds)."""


@dataclass(frozen=True)
class Style:
    """How one output format writes a metric cell's parts."""

    pm: Callable[[Stat], str]
    interval: Callable[[float, float], str]
    mark: str
    undefined: Callable[[int], str]


def mean_spread(stat: Stat, sign: str = "±") -> str:
    """``mean ± std`` over seeds; the mean alone for one seed, where no spread was measured (the row's
    ``n`` column says how many seeds there are)."""
    return f"{stat.mean:.3f} {sign} {stat.std:.3f}" if stat.n > 1 else f"{stat.mean:.3f}"


MD = Style(mean_spread, lambda lo, hi: f" [{lo:.3f}, {hi:.3f}]", SIGNIFICANT_MARK, lambda i: f"n/d{SUPERSCRIPTS[i]}")
LATEX = Style(lambda s: "$" + mean_spread(s, "\\pm") + "$", lambda lo, hi: f" $[{lo:.3f}, {hi:.3f}]$",
              "$^\\dagger$", lambda i: f"n/d$^{i + 1}$")


@dataclass
class Layout:
    """One rendering: the rows, the options, each scenario's significance reference, the footnotes used."""

    rows: list[Row]
    options: TableOptions = field(default_factory=TableOptions)
    undefined_used: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.references = {row.scenario: reference_row(self.rows, row.scenario) for row in self.rows}

    def undefined_index(self, row: Row, key: str) -> int | None:
        reason = undefined_reason(key, row.scenario, row.n_tasks) or unevaluated(row, key)
        if reason is None:
            return None
        if reason not in self.undefined_used:
            self.undefined_used.append(reason)
        return self.undefined_used.index(reason)

    def significant(self, row: Row, key: str) -> bool:
        reference = self.references.get(row.scenario)
        if not self.options.ci or reference is None or reference is row:
            return False
        return significant(row.metrics[key].values, reference.metrics[key].values)


def unevaluated(row: Row, key: str) -> str | None:
    """``not-evaluated`` when the row's runs skipped cells (``train.eval_scope: seen``) and the metric,
    one of R alone (not intransigence, which also needs a reference run), came out ``nan`` for every
    seed: it reads a skipped cell."""
    if row.eval_scope == "seen" and key != "intransigence" and row.metrics[key].n == 0:
        return "not-evaluated"
    return None


def reference_row(rows: list[Row], scenario: str) -> Row | None:
    """The scenario's finetune row (labelled ``finetune``, else the only row composed of finetune alone)
    when it has ≥ 2 seeds; else None."""
    candidates = [r for r in rows if r.scenario == scenario and r.strategy == FINETUNE]
    candidates = candidates or [r for r in rows if r.scenario == scenario and r.composition == FINETUNE]
    return candidates[0] if len(candidates) == 1 and candidates[0].n >= 2 else None


def metric_cell(row: Row, key: str, layout: Layout, style: Style) -> str:
    """``mean ± std`` (+ ``[low, high]`` and † with ``ci``); ``n/d¹`` where undefined; blank where missing."""
    index = layout.undefined_index(row, key)
    if index is not None:
        return style.undefined(index)
    stat = row.metrics[key]
    if stat.n == 0 or math.isnan(stat.mean):
        return ""
    text = style.pm(stat)
    interval = t_interval(stat.values) if layout.options.ci else None
    if interval is not None:
        text += style.interval(*interval)
    return text + (style.mark if layout.significant(row, key) else "")


def render_table(directory: str | Path, fmt: str = "md", options: TableOptions | None = None) -> str:
    """The table of every run JSON under ``directory`` as ``md``, ``latex`` or ``csv`` text.

    Markdown and LaTeX end with the notes (footnotes of ``n/d`` cells, the forgetting definition,
    the ``--ci`` footnote, provenance warnings; LaTeX as ``%`` comments); CSV holds the table only
    (:func:`table_notes` gives its notes). Raises ValueError for another ``fmt`` and
    DataError when the directory is missing or holds no run.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    runs = load_results(directory)
    if not runs:
        raise DataError(f"no run JSON files under {directory}")
    layout = Layout(summarize(runs), options or TableOptions())
    text = render_layout(layout, fmt)
    notes = table_notes(layout, runs)
    if fmt == "csv" or not notes:
        return text
    if fmt == "latex":
        return text + "".join(f"% {line}\n" for line in notes)
    return text + "\n" + "\n\n".join(notes) + "\n"


def table_notes(layout: Layout, runs: list[dict]) -> list[str]:
    """Footnotes of the rendered ``layout`` (render it first) and the runs' provenance warnings."""
    notes = undefined_footnotes(layout.undefined_used) + forgetting_footnote([row.n_tasks for row in layout.rows])
    if layout.options.ci:
        notes.append(ci_footnote(any(ref is not None for ref in layout.references.values())))
    return notes + provenance_warnings(runs)


def render_rows(rows: list[Row], fmt: str = "md", options: TableOptions | None = None) -> str:
    """Render rows from :func:`summarize` without notes (``fmt`` as in :func:`render_table`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return render_layout(Layout(rows, options or TableOptions()), fmt)


def render_layout(layout: Layout, fmt: str) -> str:
    renderers: dict[str, Callable[[Layout], str]] = {"md": _markdown, "latex": _latex, "csv": _csv}
    return renderers[fmt](layout)


def _union(rows: list[Row], attr: str) -> list[str]:
    """Keys of ``row.<attr>`` over all rows, in order of first appearance."""
    return list(dict.fromkeys(k for row in rows for k in getattr(row, attr)))


GENERAL_HEADERS = {"before": "general before", "after": "general after"}


def metric_headers(rows: list[Row]) -> list[str]:
    """The metric column names; ACC reads AP when any row's tasks are generation-scored."""
    generative = any(row.generative for row in rows)
    return [("AP" if generative and k == "acc" else name) for k, name in METRIC_HEADERS.items()]


def table_headers(rows: list[Row]) -> list[str]:
    fixed = ["scenario", "strategy", "n", *metric_headers(rows), "extra state (MB)", "train time (s)",
             "peak memory (MB)"]
    general = [GENERAL_HEADERS[k] for k in _union(rows, "general")]
    return fixed + general + _union(rows, "final_acc") + _union(rows, "extra")


def row_cells(row: Row, layout: Layout, style: Style) -> list[str]:
    """A row's display cells in ``style``."""
    rows = layout.rows
    cells = [row.scenario, row.strategy, str(row.n)]
    cells += [metric_cell(row, k, layout, style) for k in METRIC_KEYS]
    cells += [_plain(row.extra_state_mb.mean, ".2f"), _plain(row.train_seconds.mean, ".1f"),
              _plain(row.peak_memory_mb.mean, ".0f")]
    cells += [_stat(row.general[k], style) if k in row.general else "" for k in _union(rows, "general")]
    cells += [_plain(row.final_acc[k].mean, ".3f") if k in row.final_acc else "" for k in _union(rows, "final_acc")]
    cells += [_plain(row.extra[k].mean, ".4g") if k in row.extra else "" for k in _union(rows, "extra")]
    return cells


def _stat(stat: Stat, style: Style) -> str:
    return "" if stat.n == 0 or math.isnan(stat.mean) else style.pm(stat)


def _plain(value: float, spec: str) -> str:
    return "" if math.isnan(value) else format(value, spec)


def _markdown(layout: Layout) -> str:
    """GitHub Markdown; metric cells read ``0.812 ± 0.010``; blank where missing, ``n/d¹`` where undefined."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    headers = table_headers(layout.rows)
    out = [line(headers), "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
    out += [line(row_cells(row, layout, MD)) for row in layout.rows]
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(layout: Layout) -> str:
    """A booktabs ``tabular``; metric cells read ``$0.812 \\pm 0.010$``."""
    headers = table_headers(layout.rows)
    out = [r"\begin{tabular}{ll" + "r" * (len(headers) - 2) + "}", r"\toprule",
           " & ".join(tex_escape(h) for h in headers) + r" \\", r"\midrule"]
    for row in layout.rows:
        cells = row_cells(row, layout, LATEX)
        out.append(" & ".join([tex_escape(cells[0]), tex_escape(cells[1]), *cells[2:]]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def _csv_columns(rows: list[Row]) -> list[tuple[str, Callable[[Row], Stat | None]]]:
    """(column stem, getter) for every Stat column; each becomes ``<stem>_mean`` and ``<stem>_std``."""
    cols: list[tuple[str, Callable[[Row], Stat | None]]] = [
        (k, lambda r, k=k: None if undefined_reason(k, r.scenario, r.n_tasks) else r.metrics[k]) for k in METRIC_KEYS
    ]
    cols += [("extra_state_mb", lambda r: r.extra_state_mb), ("train_seconds", lambda r: r.train_seconds),
             ("peak_memory_mb", lambda r: r.peak_memory_mb)]
    cols += [(f"general_{k}", lambda r, k=k: r.general.get(k)) for k in _union(rows, "general")]
    cols += [(f"final_acc:{k}", lambda r, k=k: r.final_acc.get(k)) for k in _union(rows, "final_acc")]
    cols += [(f"extra:{k}", lambda r, k=k: r.extra.get(k)) for k in _union(rows, "extra")]
    return cols


def _csv_stats(layout: Layout, row: Row) -> list[str]:
    """With ``ci``: ``<metric>_ci_low``, ``<metric>_ci_high`` and ``<metric>_p_finetune`` (Welch) per metric."""
    reference = layout.references.get(row.scenario)
    values = []
    for key in METRIC_KEYS:
        stat = None if undefined_reason(key, row.scenario, row.n_tasks) else row.metrics[key]
        interval = t_interval(stat.values) if stat is not None else None
        p = welch_p(stat.values, reference.metrics[key].values) if stat and reference and reference is not row else None
        values += ["", ""] if interval is None else [repr(interval[0]), repr(interval[1])]
        values.append("" if p is None else repr(p))
    return values


def _csv(layout: Layout) -> str:
    """Machine-readable: ``<metric>_mean`` and ``<metric>_std`` columns, full precision, empty for undefined
    (and ``_std`` empty for a one-seed row: no spread was measured, as in Markdown)."""
    rows, ci = layout.rows, layout.options.ci
    cols = _csv_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["scenario", "strategy", "n", *(f"{stem}_{part}" for stem, _ in cols for part in ("mean", "std"))]
    stats_header = [f"{k}_{part}" for k in METRIC_KEYS for part in ("ci_low", "ci_high", "p_finetune")]
    writer.writerow(header + (stats_header if ci else []))
    for row in rows:
        values = []
        for _, get in cols:
            s = get(row)
            values += ["", ""] if s is None or s.n == 0 else [repr(s.mean), repr(s.std) if s.n > 1 else ""]
        writer.writerow([row.scenario, row.strategy, row.n, *values, *(_csv_stats(layout, row) if ci else [])])
    return buf.getvalue()
