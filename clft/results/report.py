"""``clft report DIR``: one self-contained HTML page of an experiment's results.

Computed from the run JSONs only, like tables and plots. The page holds, in order:
the metrics table of ``clft.results.tables`` (columns sortable by a click; ``#sort=ACC`` or
``#sort=ACC:desc`` in the address sorts on load), the published numbers of the
experiment file (its ``published:`` block) where present, the heatmaps and
accuracy curves of ``clft.results.plots`` as base64 PNGs, the environment (``env``: package
versions, device, git revision; and the code identity, ``clft.results.provenance.describe``)
once for what every run shares, and a table of the runs: each one's resolved config
and the part of its environment where runs differ (no such column when none does).
Under the metrics table a note says what ``mean ± std`` means. No external resource
is referenced (no CDN, no web font): the file can be mailed as it is.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import yaml

from clft.errors import DataError
from clft.results.files import load_results
from clft.results.plots import figures, png_bytes
from clft.results.provenance import describe
from clft.results.reference import HEADERS as REFERENCE_HEADERS
from clft.results.reference import compare, comparison_cells, published_of
from clft.results.summary import summarize
from clft.results.tables import MD, Layout, row_cells, table_headers, table_notes  # the cells `clft table` shows
from clft.storage.atomic import atomic_write_text

SORT_SCRIPT = """
function cellKey(row, col) {
  const text = row.cells[col].textContent.trim();
  const number = parseFloat(text);
  return text === "" ? null : (isNaN(number) ? text : number);
}
function sortTable(table, col, dir) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellKey(a, col), y = cellKey(b, col);
    if (x === null || y === null) return (x === null) - (y === null);  // blanks last
    const c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
    return dir === "desc" ? -c : c;
  });
  rows.forEach((row) => body.appendChild(row));
  table.querySelectorAll("th").forEach((th, i) => { th.dataset.dir = i === col ? dir : ""; });
}
document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () =>
    sortTable(table, col, th.dataset.dir === "asc" ? "desc" : "asc")));
});
const wanted = new URLSearchParams(location.hash.slice(1)).get("sort");
if (wanted) {
  const [name, dir] = wanted.split(":");
  const table = document.querySelector("table.sortable");
  const col = Array.from(table.querySelectorAll("th")).findIndex((th) => th.textContent.trim() === name);
  if (col >= 0) sortTable(table, col, dir === "desc" ? "desc" : "asc");
}
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f0f0f0; }
th[data-dir="asc"]::after { content: " ▲"; } th[data-dir="desc"]::after { content: " ▼"; }
.scroll { overflow-x: auto; } .figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figures img { max-width: 420px; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 8px; font-size: 12px; overflow-x: auto; }
"""


def write_report(directory: Path, output: Path | None = None) -> Path:
    """Write the page for every run JSON under ``directory`` (default ``DIRECTORY/report.html``)."""
    runs = load_results(directory)
    if not runs:
        raise DataError(f"no run JSON files under {directory}")
    path = output or Path(directory) / "report.html"
    atomic_write_text(path, render_report(runs))
    return path


def render_report(runs: list[dict]) -> str:
    """The HTML text of the page (see the module docstring)."""
    names = sorted({str(run.get("experiment", "experiment")) for run in runs})
    title = f"clft report: {', '.join(names)}"
    body = [f"<h1>{_e(title)}</h1>", _summary(runs), "<h2>Metrics</h2>", _metrics_table(runs), _reference_table(runs),
            _published(runs), "<h2>Plots</h2>", _figures(runs), "<h2>Environment</h2>", _environment(runs),
            "<h2>Runs</h2>", _runs_table(runs)]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + f"\n<script>{SORT_SCRIPT}</script>"
            "\n</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _summary(runs: list[dict]) -> str:
    descriptions = dict.fromkeys(str((run.get("config") or {}).get("description") or "") for run in runs)
    lines = [f"<p>{_e(d)}</p>" for d in descriptions if d]
    seeds = sorted({run["seed"] for run in runs})
    return "\n".join(lines + [f"<p>{len(runs)} run(s); seeds {_e(seeds)}; click a column header to sort.</p>"])


def _html_table(table_id: str, headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = ["<tr>" + "".join(f"<td{' class=num' if i > 1 else ''}>{_e(c)}</td>" for i, c in enumerate(cells)) + "</tr>"
            for cells in rows]
    return (f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _metrics_table(runs: list[dict]) -> str:
    """The `clft table` rows (mean ± std over seeds) and its notes (footnotes, provenance warnings)."""
    layout = Layout(summarize(runs))
    table = _html_table("metrics", table_headers(layout.rows), [row_cells(row, layout, MD) for row in layout.rows])
    notes = [SPREAD_NOTE, *table_notes(layout, runs)]
    return table + "".join(f"<p class=note>{_e(note)}</p>" for note in notes)


SPREAD_NOTE = ("mean ± std: the mean over the row's seeds (n) ± their sample standard deviation (n − 1 in the "
               "denominator), seed to seed, not a confidence interval (`clft table --ci` adds the 95% t interval); "
               "a one-seed row shows the mean alone.")


def environment(run: dict) -> dict:
    """What a run ran on: its recorded ``env`` and its code identity (``code identity``)."""
    return {**(run.get("env") or {}), "code identity": describe(run.get("code"))}


def shared_environment(runs: list[dict]) -> tuple[dict, list[str]]:
    """(the environment entries every run has alike, the keys where runs differ)."""
    envs = [environment(run) for run in runs]
    keys = list(dict.fromkeys(key for env in envs for key in env))
    differ = [k for k in keys if any(json.dumps(env.get(k)) != json.dumps(envs[0].get(k)) for env in envs)]
    return {k: envs[0][k] for k in keys if k not in differ}, differ


def _environment(runs: list[dict]) -> str:
    shared, differ = shared_environment(runs)
    where = (f"shared by all {len(runs)} runs" if not differ
             else f"shared by all {len(runs)} runs; where they differ ({', '.join(differ)}): the runs table")
    return f"<p>{_e(where)}</p><pre id=environment>{_e(json.dumps(shared, indent=1))}</pre>"


def _reference_table(runs: list[dict]) -> str:
    """`clft table --reference`: ours beside the published cells, when a run records a published block."""
    try:
        comparisons = compare(runs, published_of(runs))
    except DataError:
        return ""
    rows = [comparison_cells(c) for c in comparisons]
    return "<h2>Ours and the paper's</h2>\n" + _html_table("reference", REFERENCE_HEADERS, rows)


def _published(runs: list[dict]) -> str:
    blocks = dict.fromkeys(yaml.safe_dump(p, sort_keys=False, allow_unicode=True)
                           for p in ((run.get("config") or {}).get("published") for run in runs) if p)
    if not blocks:
        return ""
    return "<h2>Published reference</h2>\n" + "\n".join(f"<pre>{_e(b)}</pre>" for b in blocks)


def _figures(runs: list[dict]) -> str:
    images = []
    for stem, fig in figures(runs):
        data = base64.b64encode(png_bytes(fig, dpi=100)).decode("ascii")
        images.append(f'<figure><img alt="{_e(stem)}" id="{_e(stem)}" src="data:image/png;base64,{data}">'
                      f"<figcaption>{_e(stem)}</figcaption></figure>")
    return f'<div class="figures">{"".join(images)}</div>'


def _runs_table(runs: list[dict]) -> str:
    """One row per run: its identity, its environment where runs differ (``_environment`` holds the rest),
    and the resolved config (folded)."""
    _, differ = shared_environment(runs)
    headers = ["run", "scenario", "seed", "config hash", "finished", *(["env (where runs differ)"] if differ else []),
               "config"]
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for run in sorted(runs, key=lambda r: (r.get("scenario", ""), r.get("run", ""))):
        config = yaml.safe_dump(run.get("config") or {}, sort_keys=False, allow_unicode=True)
        cells = [run.get("run", ""), run.get("scenario", ""), run.get("seed", ""), run.get("config_hash", ""),
                 run.get("finished_at", "")]
        own = {k: environment(run).get(k) for k in differ}
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells)
                    + (f"<td><pre>{_e(json.dumps(own, indent=1))}</pre></td>" if differ else "")
                    + f"<td><details><summary>config</summary><pre>{_e(config)}</pre></details></td></tr>")
    return (f'<div class="scroll"><table class="sortable" id="runs"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")
