"""The ``published:`` block of an experiment: a paper's numbers, cell by cell, to print beside ours.

::

    published:
      source: Hsu, Liu, Ramasamy & Kira 2018, Re-evaluating Continual Learning Scenarios
      table: Table 2                 # source and table: defaults for every cell (a cell may give its own)
      metric: acc                    # which of our metrics the numbers are (clft.results.metrics.METRIC_KEYS)
      unit: percent                  # percent (0-100) or fraction (0-1)
      note: free text
      cells:                         # scenario -> compare entry label -> the paper's mean and std
        task-il:
          adam: {mean: 93.46, std: 2.01}
          ewc: {mean: 97.70, std: 0.81, n: 10}

Every cell needs a source and a table (its own or the block's); its scenario must be
one the experiment runs and its label one of the experiment's entry labels.
The block is not part of a run's config hash (``clft.results.staleness``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clft.config.loading import make_dataclass_instance
from clft.errors import ConfigError
from clft.results.metrics import METRIC_KEYS
from clft.types import SCENARIOS


@dataclass
class PublishedCell:
    """One published number: mean (and std) over the paper's runs."""

    mean: float
    std: float | None = None
    """The paper's standard deviation; None when it gives none (the tolerance is then 1 point)."""
    n: int | None = None
    """How many runs the paper averaged."""
    source: str | None = None
    table: str | None = None


@dataclass
class Published:
    """A paper's table as cells; see the module docstring."""

    source: str | None = None
    table: str | None = None
    metric: str = "acc"
    unit: Literal["percent", "fraction"] = "percent"
    note: str = ""
    cells: dict[str, dict[str, PublishedCell]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRIC_KEYS:
            raise ValueError(f"metric {self.metric!r} is not one of {', '.join(METRIC_KEYS)}")
        for scenario, by_label in self.cells.items():
            if scenario not in SCENARIOS:
                raise ValueError(f"cells: unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
            for label, cell in by_label.items():
                if not (cell.source or self.source) or not (cell.table or self.table):
                    raise ValueError(f"cells.{scenario}.{label}: needs a source and a table (its own or the block's)")

    @property
    def point(self) -> float:
        """One point (1 percentage point) in the block's unit."""
        return 1.0 if self.unit == "percent" else 0.01

    @property
    def scale(self) -> float:
        """Our fractions times this are in the block's unit."""
        return 100.0 if self.unit == "percent" else 1.0


def parse_published(raw: dict | None) -> Published:
    """Validate a ``published:`` mapping (empty: no cells)."""
    return make_dataclass_instance(Published, dict(raw or {}), where="published")


def check_published(raw: dict, labels: list[str], scenarios: list[str] | None) -> Published:
    """``parse_published`` plus: every cell's label is an entry label, its scenario one the experiment runs."""
    published = parse_published(raw)
    for scenario, by_label in published.cells.items():
        if scenarios and scenario not in scenarios:
            raise ConfigError(f"published.cells: scenario {scenario!r} is not run; scenarios: {', '.join(scenarios)}")
        for label in by_label:
            if label not in labels:
                raise ConfigError(f"published.cells.{scenario}: {label!r} is not an entry label; "
                                  f"labels: {', '.join(labels)}")
    return published
