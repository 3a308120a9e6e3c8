"""``finetune``: plain sequential fine-tuning, the lower bound.

Trains on each task in turn with nothing added: every hook is the no-op
default of ``Strategy``. What it forgets is what the other strategies should
recover ("naive"/"fine-tune" baseline, e.g. Kirkpatrick et al. 2017, PNAS
114(13); De Lange et al. 2021, "A continual learning survey", TPAMI).
"""

from __future__ import annotations

from dataclasses import dataclass

from clft.registry import strategies
from clft.types import Strategy


@strategies.register()
class Finetune(Strategy):
    """Sequential fine-tuning with no mitigation of forgetting."""

    name = "finetune"

    @dataclass
    class Config:
        """No options."""
