"""clft.results.metrics against hand-computed matrices, plus properties that hold for every matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clft.results import metrics as m

# ---------------------------------------------------------------- hand-computed 3×3
# R[i][j]: accuracy on task j after training task i (0-based here, 1-based in comments).
R3 = [
    [0.90, 0.20, 0.10],
    [0.95, 0.80, 0.30],
    [0.60, 0.50, 0.90],
]
B3 = [0.10, 0.15, 0.20]
JOINT3 = [
    [0.92, 0.10, 0.10],
    [0.90, 0.85, 0.20],
    [0.90, 0.85, 0.95],
]


def test_acc_3x3():
    # ACC = (R[3,1] + R[3,2] + R[3,3]) / 3 = (0.6 + 0.5 + 0.9) / 3 = 2.0 / 3
    assert m.average_accuracy(R3) == pytest.approx(2.0 / 3)


def test_bwt_3x3():
    # BWT = ((R[3,1] − R[1,1]) + (R[3,2] − R[2,2])) / 2 = ((0.6 − 0.9) + (0.5 − 0.8)) / 2 = −0.3
    assert m.backward_transfer(R3) == pytest.approx(-0.3)


def test_fwt_3x3():
    # FWT = ((R[1,2] − b[2]) + (R[2,3] − b[3])) / 2 = ((0.2 − 0.15) + (0.3 − 0.2)) / 2 = 0.075
    assert m.forward_transfer(R3, B3) == pytest.approx(0.075)


def test_forgetting_3x3_uses_max_not_diagonal():
    # f_1 = max(R[1,1], R[2,1]) − R[3,1] = max(0.9, 0.95) − 0.6 = 0.35   (Avalanche: 0.9 − 0.6 = 0.3)
    # f_2 = max(R[2,2]) − R[3,2] = 0.8 − 0.5 = 0.3   (R[1,2] = 0.2 is before task 2 was learned)
    # F = (0.35 + 0.3) / 2 = 0.325   (≠ −BWT = 0.3)
    assert m.forgetting(R3) == pytest.approx(0.325)


def test_forgetting_ignores_accuracy_before_the_task_was_learned():
    # Zero-shot skill: task 2 scores 0.7 after task 1, before it is trained (a pretrained LM), 0.6 once
    # trained, 0.5 at the end. Its forgetting starts from the best accuracy AFTER learning it, 0.6.
    r = [
        [0.9, 0.7, 0.1],
        [0.8, 0.6, 0.2],
        [0.7, 0.5, 0.9],
    ]
    # f_1 = max(R[1,1], R[2,1]) − R[3,1] = max(0.9, 0.8) − 0.7 = 0.2
    # f_2 = max(R[2,2]) − R[3,2] = 0.6 − 0.5 = 0.1          (max over l < T would take R[1,2] = 0.7: 0.2)
    # F = (0.2 + 0.1) / 2 = 0.15                            (max over l < T: 0.2)
    assert m.forgetting(r) == pytest.approx(0.15)


def test_forgetting_of_a_pretrained_model_whose_zero_shot_rows_are_the_max():
    # 4 tasks; every task's accuracy before training (rows above the diagonal) is higher than after it:
    # none of that counts. Task 3 improves after it is learned (0.5 -> 0.6 at step 3) and ends at 0.4.
    r = [
        [0.50, 0.90, 0.95, 0.90],
        [0.45, 0.40, 0.90, 0.90],
        [0.40, 0.35, 0.50, 0.90],
        [0.30, 0.35, 0.40, 0.80],
    ]
    # f_1 = max(0.50, 0.45, 0.40) − 0.30 = 0.20
    # f_2 = max(0.40, 0.35) − 0.35 = 0.05
    # f_3 = max(0.50) − 0.40 = 0.10
    # F = (0.20 + 0.05 + 0.10) / 3 = 0.35 / 3               (max over l < T: (0.2 + 0.55 + 0.55) / 3)
    assert m.forgetting(r) == pytest.approx(0.35 / 3)


def test_forgetting_with_two_tasks_is_the_drop_from_the_learned_accuracy():
    # T = 2: only task 1, learned at step 1: f_1 = R[1,1] − R[2,1]; R[1,2] (task 2 before training) is unused.
    assert m.forgetting([[0.8, 0.95], [0.5, 0.9]]) == pytest.approx(0.3)  # 0.8 − 0.5
    assert m.forgetting([[0.6, 0.0], [0.7, 0.9]]) == pytest.approx(-0.1)  # 0.6 − 0.7: improved, negative


def test_aia_and_curve_3x3():
    # curve = [R[1,1], (R[2,1] + R[2,2]) / 2, (R[3,1] + R[3,2] + R[3,3]) / 3]
    #       = [0.9, (0.95 + 0.8) / 2, 2.0 / 3] = [0.9, 0.875, 0.66667]
    # AIA   = (0.9 + 0.875 + 2/3) / 3 = 0.8138889
    np.testing.assert_allclose(m.accuracy_curve(R3), [0.9, 0.875, 2.0 / 3])
    assert m.average_incremental_accuracy(R3) == pytest.approx((0.9 + 0.875 + 2.0 / 3) / 3)
    assert m.average_incremental_accuracy(R3) == pytest.approx(0.8138889, abs=1e-7)


def test_la_3x3():
    # LA = (0.9 + 0.8 + 0.9) / 3 = 0.866667
    assert m.learning_accuracy(R3) == pytest.approx(2.6 / 3)


def test_intransigence_3x3():
    # a* = diag(JOINT3) = [0.92, 0.85, 0.95]; I = ((0.92 − 0.9) + (0.85 − 0.8) + (0.95 − 0.9)) / 3 = 0.04
    assert m.intransigence(R3, JOINT3) == pytest.approx(0.04)


def test_compute_all_3x3():
    out = m.compute_all(R3, B3, JOINT3)
    assert tuple(out) == m.METRIC_KEYS
    expected = {"acc": 2.0 / 3, "bwt": -0.3, "fwt": 0.075, "forgetting": 0.325,
                "aia": 0.8138889, "la": 2.6 / 3, "intransigence": 0.04}
    assert out == pytest.approx(expected, abs=1e-7)
    assert all(type(v) is float for v in out.values())


# ---------------------------------------------------------------- hand-computed 2×2
R2 = [[0.8, 0.3], [0.6, 0.9]]
B2 = [0.5, 0.25]


def test_all_metrics_2x2():
    out = m.compute_all(R2, B2)
    assert out["acc"] == pytest.approx(0.75)  # (0.6 + 0.9) / 2
    assert out["bwt"] == pytest.approx(-0.2)  # 0.6 − 0.8
    assert out["fwt"] == pytest.approx(0.05)  # R[1,2] − b[2] = 0.3 − 0.25
    assert out["forgetting"] == pytest.approx(0.2)  # max_{1≤l<2} R[l,1] − R[2,1] = 0.8 − 0.6
    assert out["aia"] == pytest.approx(0.775)  # (0.8 + (0.6 + 0.9) / 2) / 2
    assert out["la"] == pytest.approx(0.85)  # (0.8 + 0.9) / 2
    assert math.isnan(out["intransigence"])  # no joint run
    np.testing.assert_allclose(m.accuracy_curve(R2), [0.8, 0.75])


def test_single_task_metrics_undefined_where_they_need_two_tasks():
    out = m.compute_all([[0.7]], [0.1], [[0.8]])
    assert out["acc"] == out["aia"] == out["la"] == pytest.approx(0.7)
    assert out["intransigence"] == pytest.approx(0.1)
    assert all(math.isnan(out[k]) for k in ("bwt", "fwt", "forgetting"))


def test_no_baseline_gives_nan_fwt_only():
    out = m.compute_all(R2, None)
    assert math.isnan(out["fwt"])
    assert out["acc"] == pytest.approx(0.75)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [[], [[]], [0.1, 0.2], [[0.1, 0.2]], [[[0.1]]], np.zeros((2, 3))])
def test_non_square_matrix_is_rejected(bad):
    with pytest.raises(ValueError, match="square"):
        m.average_accuracy(bad)


def test_baseline_of_wrong_length_is_rejected():
    with pytest.raises(ValueError, match="length T=2"):
        m.forward_transfer(R2, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="length T=2"):
        m.compute_all(R2, [0.1])


def test_joint_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="joint"):
        m.intransigence(R2, R3)


# ---------------------------------------------------------------- properties
@st.composite
def matrices(draw, min_t=1, max_t=6):
    t = draw(st.integers(min_t, max_t))
    return draw(arrays(float, (t, t), elements=st.floats(0.0, 1.0, allow_nan=False)))


@given(matrices())
def test_averages_lie_between_min_and_max_entry(r):
    lo, hi = r.min() - 1e-12, r.max() + 1e-12
    for value in (m.average_accuracy(r), m.learning_accuracy(r), m.average_incremental_accuracy(r)):
        assert 0.0 <= value <= 1.0
        assert lo <= value <= hi
    assert np.all((lo <= m.accuracy_curve(r)) & (m.accuracy_curve(r) <= hi))


@given(matrices())
def test_curve_ends_at_acc_and_averages_to_aia(r):
    curve = m.accuracy_curve(r)
    assert curve.shape == (len(r),)
    assert curve[-1] == pytest.approx(m.average_accuracy(r))
    assert curve.mean() == pytest.approx(m.average_incremental_accuracy(r))


@given(matrices(min_t=2))
def test_forgetting_bounds_minus_bwt(r):
    # l = j is one of the candidates of the max, so f_j ≥ R[j,j] − R[T,j] and F ≥ −BWT.
    assert m.forgetting(r) >= -m.backward_transfer(r) - 1e-12
    assert -1.0 <= m.backward_transfer(r) <= 1.0


@given(matrices(min_t=2), st.data())
def test_no_change_after_learning_means_no_forgetting(r, data):
    # Column j constant from the diagonal down (R[i,j] = R[j,j] for i ≥ j); the entries before task j was
    # learned (i < j) are anything, higher than R[j,j] included: they are not forgotten knowledge.
    t = len(r)
    for j in range(t):
        r[j:, j] = r[j, j]
        r[:j, j] = data.draw(arrays(float, (j,), elements=st.floats(0.0, 1.0)))
    assert m.backward_transfer(r) == pytest.approx(0.0, abs=1e-12)
    assert m.forgetting(r) == pytest.approx(0.0, abs=1e-12)


@given(matrices(min_t=2), st.data())
def test_forgetting_does_not_read_the_entries_before_a_task_is_learned(r, data):
    # R[l,j] with l < j (above the diagonal) is task j's accuracy before training it: changing it changes nothing.
    changed = r.copy()
    upper = np.triu_indices(len(r), k=1)
    changed[upper] = data.draw(arrays(float, (len(upper[0]),), elements=st.floats(0.0, 1.0)))
    assert m.forgetting(changed) == m.forgetting(r)


@given(matrices(min_t=2, max_t=2))
def test_forgetting_of_two_tasks_is_minus_bwt(r):
    # T = 2: the only candidate of the max is l = j = 1, so f_1 = R[1,1] − R[2,1] = −BWT.
    assert m.forgetting(r) == pytest.approx(-m.backward_transfer(r), abs=1e-12)


@given(st.integers(1, 6), st.floats(0.0, 1.0))
def test_constant_matrix(t, c):
    r = np.full((t, t), c)
    assert m.average_accuracy(r) == pytest.approx(c)
    assert m.average_incremental_accuracy(r) == pytest.approx(c)
    assert m.learning_accuracy(r) == pytest.approx(c)
    np.testing.assert_allclose(m.accuracy_curve(r), np.full(t, c))
    if t > 1:
        assert m.backward_transfer(r) == pytest.approx(0.0, abs=1e-12)
        assert m.forgetting(r) == pytest.approx(0.0, abs=1e-12)
        assert m.forward_transfer(r, np.zeros(t)) == pytest.approx(c)


@given(matrices(min_t=2), st.floats(-0.5, 0.5))
def test_shifting_every_entry(r, d):
    # Averages move with the shift; differences of entries (BWT, forgetting) do not.
    b = np.zeros(len(r))
    s = r + d
    assert m.average_accuracy(s) == pytest.approx(m.average_accuracy(r) + d)
    assert m.average_incremental_accuracy(s) == pytest.approx(m.average_incremental_accuracy(r) + d)
    assert m.learning_accuracy(s) == pytest.approx(m.learning_accuracy(r) + d)
    assert m.forward_transfer(s, b) == pytest.approx(m.forward_transfer(r, b) + d)
    assert m.backward_transfer(s) == pytest.approx(m.backward_transfer(r), abs=1e-9)
    assert m.forgetting(s) == pytest.approx(m.forgetting(r), abs=1e-9)


@given(matrices(min_t=2))
def test_fwt_is_zero_when_nothing_transfers(r):
    # Baseline equal to the accuracy just before each task is trained: b[i] = R[i−1, i].
    b = np.concatenate([[0.5], np.diagonal(r, offset=1)])
    assert m.forward_transfer(r, b) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=50)
@given(matrices(), st.data())
def test_intransigence_is_the_gap_in_learning_accuracy(r, data):
    joint = data.draw(arrays(float, r.shape, elements=st.floats(0.0, 1.0)))
    assert m.intransigence(r, r) == pytest.approx(0.0, abs=1e-12)
    assert m.intransigence(r, joint) == pytest.approx(m.learning_accuracy(joint) - m.learning_accuracy(r))


def test_compute_all_against_a_matrix_computed_by_hand():
    r, b, joint = [[0.9, 0.1], [0.6, 0.8]], [0.5, 0.2], [[1.0, 0.0], [0.5, 0.9]]
    out = m.compute_all(r, b, joint)
    expected = {
        "acc": (0.6 + 0.8) / 2,                    # (1/T) Σ_i R[T,i]
        "bwt": 0.6 - 0.9,                          # R[T,1] − R[1,1]
        "fwt": 0.1 - 0.2,                          # R[1,2] − b[2]
        "forgetting": 0.9 - 0.6,                   # max_{1≤l<T} R[l,1] − R[T,1]
        "aia": (0.9 + (0.6 + 0.8) / 2) / 2,        # (1/T) Σ_k (1/k) Σ_{j≤k} R[k,j]
        "la": (0.9 + 0.8) / 2,                     # (1/T) Σ_i R[i,i]
        "intransigence": ((1.0 - 0.9) + (0.9 - 0.8)) / 2,  # (1/T) Σ_k (a*_k − R[k,k])
    }
    assert list(out) == list(m.METRIC_KEYS)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    alone = m.compute_all([[0.7]], None, None)  # T = 1, no baseline, no joint run
    assert alone["acc"] == alone["la"] == alone["aia"] == pytest.approx(0.7)
    assert all(math.isnan(alone[k]) for k in ("bwt", "fwt", "forgetting", "intransigence"))
