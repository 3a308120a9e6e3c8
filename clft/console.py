"""What ``clft`` prints while it works: ``--quiet``, the default, ``-v``.

=========  ===========================================================================
level      on stderr (stdout always gets the command's result: the table, the paths)
=========  ===========================================================================
quiet (0)  errors and warnings only (a worker that died and is retried, a stale run)
normal (1) the sweep's progress bar (on a terminal), one line per finished run
           (``done class-il/replay/seed0  12.3s  ACC 0.8125``), the plan's counts
verbose(2) also each run's start (``training 5 task(s)``), and what the libraries
           clft drives print: transformers' and huggingface_hub's download bars,
           wandb's banner and summary, Ray's worker output and log lines
=========  ===========================================================================

Every line goes through :func:`say` (``tqdm.write``), which clears the progress bar,
writes the line and draws the bar again below it, so a bar in a terminal (or a
terminal multiplexer, which keeps no scroll-back of a redrawn line) is never
overwritten by a line nor left inside one. The level is kept in the environment
(``CLFT_VERBOSITY``), so that the processes of ``--jobs`` and a local Ray inherit it.

Below verbose, :func:`quiet_libraries` silences what would otherwise print per run:
datasets' ``Map`` bars, HF Hub's bars (quiet, or not a terminal), wandb
(``WANDB_SILENT``: about 34 lines per run), Ray's worker forwarding and INFO logging
(``ray_init_options``), and qpsolvers' warning that no QP solver is installed, which
importing Avalanche raises although no clft path solves a QP.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager

from tqdm.auto import tqdm

QUIET, NORMAL, VERBOSE = 0, 1, 2
ENV = "CLFT_VERBOSITY"


def verbosity() -> int:
    """The level set by :func:`set_verbosity` in this process or its parent (default NORMAL)."""
    try:
        return min(max(int(os.environ.get(ENV, NORMAL)), QUIET), VERBOSE)
    except ValueError:
        return NORMAL


def set_verbosity(level: int) -> None:
    """Set the level for this process and the ones it starts, and quiet the libraries below VERBOSE."""
    os.environ[ENV] = str(level)
    if level < VERBOSE:
        quiet_libraries(quiet_hub=level == QUIET or not sys.stderr.isatty())


@contextmanager
def keep_verbosity():
    """Restore this process's level on leaving the block."""
    before = os.environ.get(ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def say(message: str, level: int = NORMAL) -> None:
    """Write ``message`` on stderr above any progress bar when the level is at least ``level``."""
    if verbosity() >= level:
        tqdm.write(message, file=sys.stderr)
        sys.stderr.flush()


def detail(message: str) -> None:
    """A line shown with ``-v`` only (a run's start, a skipped run's file)."""
    say(message, VERBOSE)


def warn(message: str) -> None:
    """A line shown at every level (it needs the user's attention)."""
    say(message, QUIET)


def quiet_libraries(quiet_hub: bool = True) -> None:
    """No per-dataset ``Map`` bars from datasets, no banners from wandb, no solver warning from qpsolvers;
    with ``quiet_hub``, no weight-loading bars from transformers / huggingface_hub either."""
    if quiet_hub:  # read by huggingface_hub (and transformers) when first imported
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"(?s).*no QP solver found.*")
    import datasets

    datasets.disable_progress_bars()


def ray_init_options() -> dict:
    """``ray.init`` keywords for the level: below VERBOSE, no worker output forwarded and only Ray's errors;
    never colour codes in the prefixes Ray adds to forwarded lines."""
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if verbosity() >= VERBOSE:
        return {}
    return {"log_to_driver": False, "logging_level": logging.ERROR}
