"""Statistics over seeds for tables: t confidence intervals and Welch's t-test (scipy.stats).

* ``t_interval``: the 95% interval mean ± t_{0.975, n−1} · s / √n (s the sample std, ddof = 1),
  from ``scipy.stats.t.interval``; undefined (None) for fewer than 2 values.
* ``welch_p``: the two-sided p-value of Welch's unequal-variance t-test
  (``scipy.stats.ttest_ind(equal_var=False)``); None with fewer than 2 values in a group or
  when the test is undefined (both groups constant and equal; constant and different gives p = 0).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """(low, high) of the t confidence interval of the mean of ``values``; None when n < 2."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return None
    sem = float(array.std(ddof=1)) / math.sqrt(array.size)
    if sem == 0.0:
        return float(array.mean()), float(array.mean())
    from scipy import stats  # here, not at import: scipy.stats costs 0.5 s of every `clft run`'s table

    low, high = stats.t.interval(confidence, array.size - 1, loc=float(array.mean()), scale=sem)
    return float(low), float(high)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test between ``a`` and ``b``; None when undefined."""
    if len(a) < 2 or len(b) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant groups: scipy warns and returns nan
        from scipy import stats

        p = float(stats.ttest_ind(np.asarray(a, float), np.asarray(b, float), equal_var=False).pvalue)
    return None if math.isnan(p) else p


def significant(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> bool:
    """True when Welch's t-test gives p < ``alpha``."""
    p = welch_p(a, b)
    return p is not None and p < alpha
