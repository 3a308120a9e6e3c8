"""Range and name checks of configs, run at load time (before anything trains).

A name that becomes a path (the experiment name, a scenario, a strategy label, a
run id) must be a *plain name*: ``PLAIN_NAME`` below, so it can never climb out of
the results folder (``..``), start at the root (``/abs``) or hide (``.x``).
``safe_join`` builds every output path from such names and checks that the result
lies under its root.
"""

from __future__ import annotations

import errno
import math
import re
from pathlib import Path
from typing import Any

from clft.config.yaml_safe import brief
from clft.errors import ConfigError

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
"""A letter or digit, then up to 127 letters, digits, ``.``, ``_``, ``+`` or ``-``: no ``/``, no ``..``.
Matched whole (``fullmatch``): ``$`` would also match before a trailing newline (``"q\\n"``)."""

SEED_LIMIT = 2**32
"""Seeds lie in [0, 2^32): numpy's seed range (torch accepts more, numpy does not)."""

BOUNDS = {  # TrainConfig int fields: (lowest, highest)
    "epochs": (1, 100_000),
    "batch_size": (1, 2**20),
    "eval_batch_size": (1, 2**20),
    "grad_accumulation_steps": (1, 2**16),
    "max_steps_per_task": (1, 2**40),
    "threads": (1, 4096),
}
MAX_LR = 1e3
"""The largest learning rate accepted (float32 overflows near 3.4e38; no optimizer here wants > 1e3)."""
MAX_WEIGHT_DECAY = 1e3


def check_plain_name(value: Any, what: str) -> str:
    """``value`` if it is a plain name (``PLAIN_NAME``), else ValueError naming ``what``."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value) or value.strip(".") == "":
        raise ValueError(f"{what} {brief(value)} is not a plain name (letters, digits, '.', '_', '+', '-'; "
                         "starting with a letter or digit; at most 128 characters)")
    return value


def check_seeds(seeds: list[int]) -> None:
    for seed in seeds:
        if not 0 <= seed < SEED_LIMIT:
            raise ValueError(f"seed {brief(seed)} is out of range; seeds must lie in [0, 2^32)")


def check_train_ranges(train: Any) -> None:
    """Every numeric ``TrainConfig`` field within its valid range (ValueError naming the first that is not)."""
    for key, (low, high) in BOUNDS.items():
        value = getattr(train, key)
        if value is not None and not low <= value <= high:
            raise ValueError(f"{key} must lie in [{low}, {high}], got {brief(value)}")
    if not (math.isfinite(train.lr) and 0 < train.lr <= MAX_LR):
        raise ValueError(f"lr must be finite and in (0, {MAX_LR:g}], got {train.lr}")
    if not (math.isfinite(train.weight_decay) and 0 <= train.weight_decay <= MAX_WEIGHT_DECAY):
        raise ValueError(f"weight_decay must lie in [0, {MAX_WEIGHT_DECAY:g}], got {train.weight_decay}")
    if not (math.isfinite(train.momentum) and 0 <= train.momentum < 1):
        raise ValueError(f"momentum must lie in [0, 1), got {train.momentum}")
    if train.grad_clip is not None and not (math.isfinite(train.grad_clip) and train.grad_clip > 0):
        raise ValueError(f"grad_clip must be a positive number or null, got {train.grad_clip}")


def safe_join(root: Path, *parts: str) -> Path:
    """``root / part / ...`` where each part is a plain name; ConfigError otherwise.

    ``part`` may carry a suffix (``seed0.json``); the joined path is also checked to lie
    under ``root`` once resolved, so no symlinked or odd component can lead elsewhere.
    """
    for part in parts:
        try:
            check_plain_name(part, "path component")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    path = Path(root).joinpath(*parts)
    try:
        inside = path.resolve().is_relative_to(Path(root).resolve())
    except RuntimeError:  # a symbolic link loop on the way (Python < 3.13)
        raise ConfigError(f"{path} cannot be used: a symbolic link loop on its way") from None
    if not inside:
        check_no_links(root, path)  # a link on the way: name it
        raise ConfigError(f"{path} does not lie under {root}")
    return path


def check_out_folder(out: Path) -> None:
    """``--out`` must be a folder or a path that can become one: no regular file on the way, and no
    symbolic link that leads nowhere (a loop, or a missing target)."""
    for path in (out, *out.parents):
        if path.is_symlink():
            _check_link_target(path, out)
        if path.exists():
            if not path.is_dir():
                raise ConfigError(f"--out {path} is a file, not a folder; give a folder for the results")
            return


def _check_link_target(link: Path, out: Path) -> None:
    try:
        link.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a symlink loop so
        raise ConfigError(f"--out {out}: {link} is a symbolic link loop; give a folder for the results") from None
    except OSError as exc:
        why = "a symbolic link loop" if exc.errno == errno.ELOOP else "a symbolic link to a missing path"
        raise ConfigError(f"--out {out}: {link} is {why}; give a folder for the results") from None


def check_no_links(root: Path, path: Path) -> None:
    """ConfigError when ``path``, or a folder between ``root`` and it, is a symbolic link.

    clft writes results, locks and checkpoints under ``root`` (a results folder others may share);
    a link planted there would make it write (or truncate) a file elsewhere, so none is followed.
    ``root`` itself may be a link (the user chose it).
    """
    current = Path(root)
    for part in Path(path).relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise ConfigError(f"refused: {current} is a symbolic link; clft writes nothing through a link in a "
                              "results folder (remove the link)")
