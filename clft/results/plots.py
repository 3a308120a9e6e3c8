"""Plots computed from run JSONs only: accuracy-matrix heatmaps and accuracy curves.

matplotlib is imported inside the functions and drives the Agg canvas
directly (``Figure`` + ``FigureCanvasAgg``, no pyplot), so importing this
module has no side effects and never touches the user's global backend.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clft.config.validation import check_no_links
from clft.errors import DataError
from clft.results.files import load_results
from clft.results.metrics import accuracy_curve
from clft.results.summary import group_runs, group_task_names
from clft.storage.atomic import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure


def write_plots(directory: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write PNG plots of every run JSON under ``directory``; return the paths written.

    * ``heatmap_<scenario>_<strategy>.png`` per (scenario, strategy): the mean
      accuracy matrix over seeds, row i = after training task i, column j =
      evaluated on task j, values written in the cells;
    * ``curves_<scenario>.png`` per scenario: ``accuracy_curve`` (mean over
      seeds, ± one sample std band) of every strategy against tasks trained.

    ``out_dir`` defaults to ``directory/plots`` (refused when it is a symbolic link). Files are
    written atomically.
    Raises DataError when the directory is missing or holds no run.
    """
    runs = load_results(directory)
    if not runs:
        raise DataError(f"no run JSON files under {directory}")
    out = Path(out_dir) if out_dir is not None else Path(directory) / "plots"
    if out_dir is None:  # inside the results folder: never written through a planted link
        check_no_links(Path(directory), out)
    return [_save(fig, out / f"{stem}.png") for stem, fig in figures(runs)]


def figures(runs: list[dict]) -> list[tuple[str, Figure]]:
    """(file stem, figure) of every plot of :func:`write_plots`: heatmaps first, then one curve plot per scenario."""
    groups = group_runs(runs)
    made = [(f"heatmap_{_slug(scenario)}_{_slug(strategy)}", _heatmap(scenario, strategy, members))
            for (scenario, strategy), members in groups.items()]
    for scenario in dict.fromkeys(scenario for scenario, _ in groups):
        by_strategy = {strategy: members for (sc, strategy), members in groups.items() if sc == scenario}
        made.append((f"curves_{_slug(scenario)}", _curves(scenario, by_strategy)))
    return made


def png_bytes(fig: Figure, dpi: int = 120) -> bytes:
    """``fig`` rendered to PNG in memory."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _slug(name: str) -> str:
    """A file-name-safe version of a scenario or strategy name (``replay+ewc`` stays)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "unnamed"


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to PNG in memory, then write it atomically to ``path``."""
    atomic_write_bytes(path, png_bytes(fig))
    return path


def _heatmap(scenario: str, strategy: str, members: list[dict]) -> Figure:
    """The mean accuracy matrix of one group, numbers in the cells (n/d where not evaluated)."""
    mean = np.mean([np.asarray(run["acc"], dtype=float) for run in members], axis=0)
    names = group_task_names(members)
    t = len(names)
    side = 2.5 + 0.55 * t
    fig = _new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(mean, vmin=0.0, vmax=1.0, cmap="viridis")
    fontsize = max(4.0, 10.0 - 0.3 * t)
    for i in range(t):
        for j in range(t):
            colour = "white" if mean[i, j] < 0.6 else "black"
            text = "n/d" if np.isnan(mean[i, j]) else f"{mean[i, j]:.2f}"  # train.eval_scope: seen skipped it
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    ax.set_xticks(range(t), names, rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticks(range(t), [f"{i + 1}: {name}" for i, name in enumerate(names)], fontsize=fontsize)
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ax.set_title(f"{scenario} — {strategy} (mean of {len(members)} seed{'s' * (len(members) > 1)})")
    fig.colorbar(image, ax=ax, label="accuracy")
    return fig


def _curves(scenario: str, by_strategy: dict[str, list[dict]]) -> Figure:
    """Average accuracy on the tasks seen so far after each task, one line per strategy."""
    fig = _new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    for strategy, members in by_strategy.items():
        curves = np.asarray([accuracy_curve(run["acc"]) for run in members])
        mean = curves.mean(axis=0)
        std = curves.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
        x = np.arange(1, len(mean) + 1)
        (line,) = ax.plot(x, mean, marker="o", label=f"{strategy} (n={len(members)})")
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("tasks trained")
    ax.set_ylabel("average accuracy on tasks seen so far")
    ax.set_ylim(0.0, 1.0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.set_title(f"{scenario}: accuracy over tasks (band: ± 1 std over seeds)")
    ax.legend(fontsize="small")
    return fig
