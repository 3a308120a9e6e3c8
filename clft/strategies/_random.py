"""Resumable random generators owned by strategies.

A strategy that needs randomness (replay's reservoir, EWC's Fisher subsample)
creates its own ``numpy.random.Generator`` in the first ``before_task``, seeded
from ``torch.initial_seed()`` (the runner seeds torch at the start of every
task, so the seed is a function of the run seed), and puts the generator's
state in its ``state_dict``: a run resumed from a checkpoint draws exactly the
numbers the uninterrupted run would have drawn.
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def new_generator() -> np.random.Generator:
    """A fresh PCG64 generator seeded from ``torch.initial_seed()``."""
    return np.random.default_rng(torch.initial_seed())


def generator_state(rng: np.random.Generator | None) -> dict | None:
    """A JSON-able copy of the generator's state (None when there is no generator yet)."""
    return None if rng is None else copy.deepcopy(rng.bit_generator.state)


def generator_from_state(state: dict | None) -> np.random.Generator | None:
    """Inverse of ``generator_state``."""
    if state is None:
        return None
    rng = np.random.default_rng()
    rng.bit_generator.state = copy.deepcopy(state)
    return rng
