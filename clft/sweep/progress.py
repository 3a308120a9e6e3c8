"""Sweep-level progress: one line per finished run and a done/total bar with ETA (tqdm).

The line, on stderr: ``done class-il/replay/seed0  12.3s  ACC 0.8125`` for a run
trained now, ``skip class-il/replay/seed0  (finished before)  ACC 0.8125`` for one
whose result was already there. ACC = (1/T) Σ_i R[T,i] (``clft.results.metrics.average_accuracy``)
read back from the run's JSON. The bar is drawn only on a terminal (tqdm's
``disable=None``); the lines are written unless ``clft run --quiet`` (``clft.console``),
through ``tqdm.write``, so they never overwrite the bar.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from clft.console import NORMAL, verbosity
from clft.results.metrics import average_accuracy


def run_line(out_dir: Path, outcome) -> str:
    """``done|skip <run id>  <seconds>s  ACC <acc>`` for a finished run (``outcome``: executors.Outcome)."""
    path = Path(outcome.path)
    try:
        run_id = str(path.relative_to(out_dir).with_suffix(""))
    except ValueError:
        run_id = str(path.with_suffix(""))
    acc = average_accuracy(json.loads(path.read_text(encoding="utf-8"))["acc"])
    if outcome.trained:
        return f"done {run_id}  {outcome.seconds:.1f}s  ACC {acc:.4f}"
    return f"skip {run_id}  (finished before)  ACC {acc:.4f}"


class SweepProgress:
    """A context manager: ``finished(outcome)`` writes the run's line and advances the bar."""

    def __init__(self, out_dir: Path, total: int, enabled: bool = True, stream=None, silent: bool = False) -> None:
        self.out_dir, self.silent = Path(out_dir), silent
        self.stream = stream or sys.stderr
        self.lines: list[str] = []
        self.bar = tqdm(total=total, desc="runs", unit="run", file=self.stream, dynamic_ncols=True,
                        disable=None if enabled and not silent else True)

    def finished(self, outcome) -> None:
        """Write the run's line (unless ``silent``: a data-parallel process other than the main one)."""
        if self.silent:
            return
        line = run_line(self.out_dir, outcome)
        self.lines.append(line)
        if verbosity() >= NORMAL:
            tqdm.write(line, file=self.stream)
        self.bar.update(1)

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
