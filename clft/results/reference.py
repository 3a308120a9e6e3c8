"""``clft table DIR --reference``: our numbers beside a paper's, cell by cell.

For each published cell (scenario × entry label, ``clft.config.published``): ours (mean ±
sample std over seeds, the mean alone for one seed, in the block's unit, with the seed count), the paper's mean ±
std, Δ = ours − paper, and a flag ✗ when |Δ| > max(2 · std_paper, 1 point)
(1 point: 1.0 in percent, 0.01 in fractions; without a published std the tolerance is
1 point). The block comes from an experiment file given to ``--reference``, or else from
the runs' stored configs, merged (``merge_published``): a folder filled by several presets
(one per scenario, as the Hsu reproduction) gets every preset's cells.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

from clft.config.experiment import load_experiment
from clft.config.published import Published, PublishedCell, parse_published
from clft.errors import DataError
from clft.results.files import load_results
from clft.results.summary import Row, summarize
from clft.results.table_notes import provenance_warnings
from clft.results.tables import FORMATS
from clft.types import SCENARIOS

FLAG = "✗"
HEADERS = ["scenario", "entry", "ours", "n", "paper", "Δ", "flag", "source"]


@dataclass(frozen=True)
class Comparison:
    """One published cell beside our row (``ours`` None: not run)."""

    scenario: str
    label: str
    cell: PublishedCell
    ours: Row | None
    published: Published

    @property
    def ours_mean(self) -> float | None:
        stat = self.ours.metrics[self.published.metric] if self.ours else None
        return None if stat is None or stat.n == 0 else stat.mean * self.published.scale

    @property
    def delta(self) -> float | None:
        return None if self.ours_mean is None else self.ours_mean - self.cell.mean

    @property
    def tolerance(self) -> float:
        """max(2 · std_paper, 1 point)."""
        return max(2 * (self.cell.std or 0.0), self.published.point)

    @property
    def outside(self) -> bool:
        return self.delta is not None and abs(self.delta) > self.tolerance

    def source(self) -> str:
        return f"{self.cell.source or self.published.source}, {self.cell.table or self.published.table}"


def published_of(runs: list[dict], experiment: str | Path | None = None) -> Published:
    """The block of ``experiment`` (a YAML file) if given, else the runs' blocks merged (``merge_published``)."""
    if experiment is not None:
        cfg, _ = load_experiment(str(experiment))
        return parse_published(cfg.published)
    with_cells = [r for r in runs if ((r.get("config") or {}).get("published") or {}).get("cells")]
    if not with_cells:
        raise DataError("no run here records a published block with cells; add `published: {cells: ...}` to the "
                        "experiment and pass its file: clft table DIR --reference EXP.yaml")
    latest_first = sorted(with_cells, key=lambda r: str(r.get("finished_at", "")), reverse=True)
    return merge_published([parse_published(r["config"]["published"]) for r in latest_first])


def merge_published(blocks: list[Published]) -> Published:
    """One block holding every cell of ``blocks`` (given latest first: a cell of an earlier block wins).

    Each cell keeps its own source and table (the block's defaults are filled in); scenarios
    come in ``SCENARIOS`` order, a scenario's labels in the order of the block with the most
    cells there (a run made before cells were added records fewer). Blocks
    that disagree on metric or unit cannot be merged (a one-line error naming both).
    """
    first = blocks[0]
    cells: dict[str, dict[str, PublishedCell]] = {}
    for block in blocks:
        if (block.metric, block.unit) != (first.metric, first.unit):
            raise DataError(f"the runs' published blocks disagree: metric {first.metric!r} in {first.unit} vs "
                            f"{block.metric!r} in {block.unit}; pass one block: clft table DIR --reference EXP.yaml")
        for scenario, by_label in block.cells.items():
            for label, cell in by_label.items():
                cells.setdefault(scenario, {}).setdefault(label, replace(
                    cell, source=cell.source or block.source, table=cell.table or block.table))
    notes = list(dict.fromkeys(b.note for b in blocks if b.note))
    ordered = {scenario: _in_fullest_order(cells[scenario], [b.cells.get(scenario, {}) for b in blocks])
               for scenario in SCENARIOS if scenario in cells}
    return Published(first.source, first.table, first.metric, first.unit, "\n".join(notes), ordered)


def _in_fullest_order(cells: dict[str, PublishedCell], blocks: list[dict]) -> dict[str, PublishedCell]:
    fullest = max(blocks, key=len)  # the first (latest) on ties
    order = [label for label in fullest if label in cells] + [label for label in cells if label not in fullest]
    return {label: cells[label] for label in order}


def compare(runs: list[dict], published: Published) -> list[Comparison]:
    """One :class:`Comparison` per published cell, in the block's order."""
    rows = {(row.scenario, row.strategy): row for row in summarize(runs)}
    return [Comparison(scenario, label, cell, rows.get((scenario, label)), published)
            for scenario, by_label in published.cells.items() for label, cell in by_label.items()]


def comparison_cells(c: Comparison) -> list[str]:
    stat = c.ours.metrics[c.published.metric] if c.ours else None
    spread = f" ± {stat.std * c.published.scale:.2f}" if stat is not None and stat.n > 1 else ""  # one seed: none
    ours = "not run" if c.ours_mean is None else f"{c.ours_mean:.2f}{spread}"
    paper = f"{c.cell.mean:.2f}" + ("" if c.cell.std is None else f" ± {c.cell.std:.2f}")
    delta = "" if c.delta is None else f"{c.delta:+.2f}"
    return [c.scenario, c.label, ours, "" if c.ours is None else str(c.ours.n), paper, delta,
            FLAG if c.outside else "", c.source()]


def render_reference(directory: str | Path, fmt: str = "md", experiment: str | Path | None = None) -> str:
    """The comparison table of the runs under ``directory`` as md, latex or csv, with its notes (md, latex)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    runs = load_results(directory)
    if not runs:
        raise DataError(f"no run JSON files under {directory}")
    published = published_of(runs, experiment)
    comparisons = compare(runs, published)
    if fmt == "csv":
        return _csv(comparisons)
    notes = _notes(comparisons, published) + provenance_warnings(runs)
    if fmt == "latex":
        return _latex(comparisons) + "".join(f"% {line}\n" for line in notes)
    return _markdown(comparisons) + "\n" + "\n\n".join(notes) + "\n"


def _notes(comparisons: list[Comparison], published: Published) -> list[str]:
    unit = "%" if published.unit == "percent" else "fraction"
    flagged = sum(c.outside for c in comparisons)
    return [f"{published.metric.upper()} in {unit}; ours: mean ± sample std over n seeds; Δ = ours − paper; "
            f"{FLAG}: |Δ| > max(2·std_paper, 1 point) ({flagged} of {len(comparisons)} cells)."]


def _markdown(comparisons: list[Comparison]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---|---:|---:|---:|---:|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in comparison_cells(c)) + " |" for c in comparisons]
    return "\n".join(lines) + "\n"


def _latex(comparisons: list[Comparison]) -> str:
    from clft.results.tables import tex_escape

    lines = [r"\begin{tabular}{llrrrrll}", r"\toprule", " & ".join(tex_escape(h) for h in HEADERS) + r" \\",
             r"\midrule"]
    for c in comparisons:
        cells = [tex_escape(x).replace("±", r"$\pm$").replace("Δ", r"$\Delta$") for x in comparison_cells(c)]
        lines.append(" & ".join(cells).replace(FLAG, r"$\times$") + r" \\")
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _csv(comparisons: list[Comparison]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["scenario", "entry", "ours_mean", "ours_std", "n", "paper_mean", "paper_std", "delta", "outside",
                     "source"])
    for c in comparisons:
        stat = c.ours.metrics[c.published.metric] if c.ours else None
        std = "" if stat is None or stat.n < 2 or math.isnan(stat.std) else repr(stat.std * c.published.scale)
        writer.writerow([c.scenario, c.label, "" if c.ours_mean is None else repr(c.ours_mean), std,
                         "" if c.ours is None else c.ours.n, repr(c.cell.mean),
                         "" if c.cell.std is None else repr(c.cell.std),
                         "" if c.delta is None else repr(c.delta), int(c.outside), c.source()])
    return buf.getvalue()
