"""clft.data.sampling: shuffled / length-bucketed training batches and length-ordered eval batches."""

import numpy as np
import pytest

from clft.data.sampling import eval_batches, train_batches


def _padding(batches: list[list[int]], lengths: np.ndarray) -> int:
    return int(sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches))


@pytest.mark.parametrize("bucket", [True, False])
def test_train_batches_deterministic_and_complete(bucket):
    lengths = np.random.default_rng(1).integers(1, 128, size=1003)
    make = lambda seed: train_batches(1003, 32, np.random.default_rng(seed), lengths.tolist(), bucket)  # noqa: E731
    assert make(0) == make(0) and make(0) != make(1)
    batches = make(0)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert sum(len(b) < 32 for b in batches) == 1


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(2).integers(3, 128, size=4000)
    bucketed = train_batches(4000, 32, np.random.default_rng(0), lengths.tolist())
    shuffled = train_batches(4000, 32, np.random.default_rng(0), None)
    assert _padding(bucketed, lengths) < 0.2 * _padding(shuffled, lengths)
    first = [b[0] for b in bucketed[:20]]
    assert first != sorted(first, key=lambda i: lengths[i])  # batch order is shuffled, not by length


def test_eval_batches_cover_in_length_order():
    lengths = [5, 1, 9, 3, 7]
    assert eval_batches(5, 2, lengths, padding=1.0) == [[2, 4], [0, 3], [1]]  # 2 x 9 <= 2 x (9 + 7)
    assert eval_batches(5, 2, lengths) == [[2], [4], [0], [3], [1]]  # 2 x 9 > 1.1 x (9 + 7): cut
    assert eval_batches(6, 3, [10, 10, 10, 10, 9, 1]) == [[0, 1, 2], [3, 4], [5]]
    assert eval_batches(5, 2) == [[0, 1], [2, 3], [4]]
    assert train_batches(0, 4, np.random.default_rng(0)) == []
    with pytest.raises(ValueError):
        train_batches(3, 0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        eval_batches(3, 2, [1, 2])


def test_no_bucketing_ignores_lengths():
    lengths = list(range(100))
    plain = train_batches(100, 8, np.random.default_rng(3))
    assert train_batches(100, 8, np.random.default_rng(3), lengths, bucket=False) == plain


def test_eval_batches_bound_padding_to_a_tenth_of_the_real_tokens():
    lengths = np.random.default_rng(4).integers(3, 30, size=1500)  # CLINC150-like MiniLM lengths
    batches = eval_batches(1500, 256, lengths.tolist())
    assert sorted(i for b in batches for i in b) == list(range(1500))
    assert [i for b in batches for i in b] == np.argsort(-lengths, kind="stable").tolist()  # longest first
    assert all(len(b) <= 256 for b in batches)
    assert all(len(b) * lengths[b].max() <= 1.1 * lengths[b].sum() for b in batches)
    plain = eval_batches(1500, 256, lengths.tolist(), padding=float("inf"))  # the cut before issue 23
    assert [len(b) for b in plain] == [256] * 5 + [220]
    assert _padding(batches, lengths) < 0.1 * lengths.sum() < _padding(plain, lengths)
