"""Continual-learning metrics: pure functions of one run's accuracy matrix.

Conventions (docs: DESIGN.md, "Metric definitions"):

* ``R`` is the T×T accuracy matrix: ``R[i, j]`` is the test accuracy on task j
  after training task i, for *every* pair, tasks not yet seen included.
* ``b[j]`` is the accuracy on task j before any training (zero-shot for a
  pretrained backbone).

A run made with ``train.eval_scope: seen`` skips the cells above the diagonal
(tasks not yet trained) and the baseline: they are null in its JSON and ``nan``
here, so a metric reading one is ``nan`` (``clft.results.tables`` prints n/d).

Formulas are written 1-based as in the papers; the code indexes from 0. A
metric that is undefined for the stream (BWT, FWT and forgetting when T = 1)
is ``nan``. Malformed input (not a non-empty square matrix, a baseline of the
wrong length) raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[Sequence[float]] | np.ndarray

#: Keys of :func:`compute_all`, in display order.
METRIC_KEYS = ("acc", "bwt", "fwt", "forgetting", "aia", "la", "intransigence")


def _matrix(R: ArrayLike, name: str = "accuracy matrix") -> np.ndarray:
    """``R`` as a float array, checked to be a non-empty square (T×T) matrix."""
    arr = np.asarray(R, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square T×T matrix, got shape {arr.shape}")
    return arr


def _vector(b: Sequence[float] | np.ndarray, T: int, name: str = "baseline") -> np.ndarray:
    """``b`` as a float array, checked to have length ``T``."""
    arr = np.asarray(b, dtype=float)
    if arr.shape != (T,):
        raise ValueError(f"{name} must be a vector of length T={T} (one entry per task), got shape {arr.shape}")
    return arr


def average_accuracy(R: ArrayLike) -> float:
    """Average accuracy after the last task (GEM; Lopez-Paz & Ranzato, 2017).

    ACC = (1/T) Σ_{i=1..T} R[T, i]
    """
    R = _matrix(R)
    return float(R[-1].mean())


def backward_transfer(R: ArrayLike) -> float:
    """Backward transfer (GEM; Lopez-Paz & Ranzato, 2017).

    BWT = 1/(T−1) Σ_{i=1..T−1} (R[T, i] − R[i, i])

    Negative values mean forgetting. ``nan`` when T = 1.
    """
    R = _matrix(R)
    if len(R) < 2:
        return math.nan
    return float((R[-1, :-1] - np.diag(R)[:-1]).mean())


def forward_transfer(R: ArrayLike, b: Sequence[float] | np.ndarray) -> float:
    """Forward transfer (GEM; Lopez-Paz & Ranzato, 2017).

    FWT = 1/(T−1) Σ_{i=2..T} (R[i−1, i] − b[i])

    ``b`` is the accuracy before any training (zero-shot for a pretrained
    backbone; unlike Mammoth, not a separately trained random model). ``nan``
    when T = 1.
    """
    R = _matrix(R)
    b = _vector(b, len(R))
    if len(R) < 2:
        return math.nan
    return float((np.diagonal(R, offset=1) - b[1:]).mean())


def forgetting(R: ArrayLike) -> float:
    """Average forgetting after the last task (Chaudhry et al., 2018, "RWalk", ECCV).

    f_j = max_{l=j..T−1} R[l, j] − R[T, j]   for j = 1..T−1;   F = 1/(T−1) Σ_j f_j

    (0-based: f_j = max over l in [j, T−2] of R[l][j] − R[T−1][j].) The max runs over the
    steps *after* task j was learned, l ≥ j: the task's best accuracy once it has been trained,
    as in Chaudhry et al.'s definition of forgetting (the knowledge gained on a task and lost
    since). Steps l < j, before task j was trained, do not count: a pretrained model's zero-shot
    accuracy on a later task is not knowledge it learned and then lost. (clft before issue 22,
    like DESIGN.md's max_{l<T}, took the max over every l ≤ T−1, which inflated F for pretrained
    LMs with zero-shot skill.) Avalanche instead uses the accuracy right after learning the task,
    f_j = R[j, j] − R[T, j], which makes F = −BWT; ours is never smaller (F ≥ −BWT, since l = j
    is among the candidates). f_j can be negative when the final accuracy on task j is its best.
    ``nan`` when T = 1.
    """
    R = _matrix(R)
    if len(R) < 2:
        return math.nan
    past = R[:-1, :-1]
    learned = np.tril(np.ones_like(past, dtype=bool))  # row l, column j: l ≥ j (task j trained by step l)
    best_after_learning = np.where(learned, past, -np.inf).max(axis=0)
    return float((best_after_learning - R[-1, :-1]).mean())


#: The definition printed under every table with a Forgetting column (``clft.results.table_notes``).
FORGETTING_DEFINITION = (
    "Forgetting: F = mean over j < T of f_j = max_{j ≤ l < T} R[l,j] − R[T,j] (1-based; R[l,j] the "
    "accuracy on task j after training task l): task j's best accuracy after it was learned minus its final "
    "one (Chaudhry et al. 2018); accuracies before task j was trained (zero-shot) do not count"
)


def accuracy_curve(R: ArrayLike) -> np.ndarray:
    """Average accuracy on the tasks seen so far, after each task.

    curve[i] = (1/i) Σ_{j=1..i} R[i, j]   for i = 1..T   (a length-T array)

    ``curve[T]`` is ACC and the mean of the curve is AIA.
    """
    R = _matrix(R)
    T = len(R)
    return np.tril(R).sum(axis=1) / np.arange(1, T + 1)


def average_incremental_accuracy(R: ArrayLike) -> float:
    """Average incremental accuracy (iCaRL; Rebuffi et al., 2017).

    AIA = (1/T) Σ_{k=1..T} (1/k) Σ_{j=1..k} R[k, j]   (the mean of :func:`accuracy_curve`)
    """
    return float(accuracy_curve(R).mean())


def learning_accuracy(R: ArrayLike) -> float:
    """Learning accuracy: how well each task is learnt when it is trained (Riemer et al., 2019).

    LA = (1/T) Σ_{i=1..T} R[i, i]
    """
    R = _matrix(R)
    return float(np.diag(R).mean())


def intransigence(R: ArrayLike, joint_R: ArrayLike) -> float:
    """Intransigence: the inability to learn new tasks (Chaudhry et al., 2018, "RWalk").

    I = (1/T) Σ_{k=1..T} (a*_k − R[k, k]),   a*_k = joint_R[k, k]

    ``joint_R`` is the accuracy matrix of the reference run on the same stream
    and seed (row k: a model trained on the union of tasks 1..k). Chaudhry et
    al. train that model from scratch: the ``offline`` strategy; ``clft.results.tables``
    uses it when the experiment has one, else the incremental ``joint`` run
    (which reaches step k through steps 1..k−1). It must have the same shape
    as ``R``. Positive values mean the continual learner learns new tasks worse
    than the reference.
    """
    R = _matrix(R)
    joint = _matrix(joint_R, "joint accuracy matrix")
    if joint.shape != R.shape:
        raise ValueError(f"joint accuracy matrix has shape {joint.shape}, expected {R.shape} like the run's")
    return float((np.diag(joint) - np.diag(R)).mean())


#: Why a metric is undefined by construction (shown in tables instead of a number), keyed by a short id.
UNDEFINED_REASONS = {
    "class-il-fwt": "class-IL FWT is undefined: before task i is trained its classes are masked out of the "
                    "predictions, so R[i−1,i] = 0 and FWT = −mean(b[2..T]) for every strategy",
    "one-task": "BWT, FWT and forgetting need T ≥ 2 tasks",
    "not-evaluated": "not evaluated: the run scored only the tasks trained so far (train.eval_scope: seen), "
                     "and this metric reads a cell it skipped (FWT: R[i−1,i] and the baseline b)",
}


def undefined_reason(metric: str, scenario: str, n_tasks: int) -> str | None:
    """The key of :data:`UNDEFINED_REASONS` when ``metric`` is undefined by construction for a stream
    of ``n_tasks`` tasks in ``scenario``, else None."""
    if metric in ("bwt", "fwt", "forgetting") and n_tasks < 2:
        return "one-task"
    if metric == "fwt" and scenario == "class-il":
        return "class-il-fwt"
    return None


def compute_all(
    acc: ArrayLike,
    baseline: Sequence[float] | np.ndarray | None,
    joint_acc: ArrayLike | None = None,
) -> dict[str, float]:
    """Every metric of one run, keyed by :data:`METRIC_KEYS`.

    ``acc`` is R, ``baseline`` is b (``None``: FWT is ``nan``), ``joint_acc``
    the joint reference run's R (``None``: intransigence is ``nan``). BWT, FWT
    and forgetting are ``nan`` when T = 1.
    """
    R = _matrix(acc)
    return {
        "acc": average_accuracy(R),
        "bwt": backward_transfer(R),
        "fwt": math.nan if baseline is None else forward_transfer(R, baseline),
        "forgetting": forgetting(R),
        "aia": average_incremental_accuracy(R),
        "la": learning_accuracy(R),
        "intransigence": math.nan if joint_acc is None else intransigence(R, joint_acc),
    }
