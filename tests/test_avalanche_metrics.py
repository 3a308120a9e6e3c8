"""clft's metrics against Avalanche's on the same accuracy matrix (runs when `clft[avalanche]` is installed).

R[i][j] = accuracy on task j after training task i. Task 0's accuracy rises after task 1 is
trained (0.7 -> 0.9, positive backward transfer) and then falls to 0.4: the one place where
the definitions of forgetting differ. clft (Chaudhry et al. 2018) forgets from the best accuracy
after the task was learned, f_0 = max(0.7, 0.9) - 0.4 = 0.5; Avalanche from the accuracy right after learning the
task, f_0 = R[0][0] - R[2][0] = 0.7 - 0.4 = 0.3. On task 1 both give 0.8 - 0.6 = 0.2, so
F = 0.35 (clft) vs 0.25 (Avalanche = -BWT). ACC and BWT are the same definitions in both.
"""

import numpy as np
import pytest

pytest.importorskip("avalanche", reason="Avalanche is not installed (pip install 'clft[avalanche]')")
import torch  # noqa: E402
from avalanche.evaluation.functional import forgetting as avalanche_forgetting_matrix  # noqa: E402
from avalanche.evaluation.metrics import BWT, Accuracy, Forgetting  # noqa: E402

from clft.results.metrics import average_accuracy, backward_transfer, forgetting  # noqa: E402

R = [[0.7, 0.1, 0.0],
     [0.9, 0.8, 0.2],
     [0.4, 0.6, 0.9]]
N_TEST = 20  # examples per task: every R[T][j] x 20 is a whole number of correct predictions


def _avalanche_per_task(metric):
    """Avalanche's standalone metric fed as its plugin feeds it: R[k][k] right after training k, then R[T][k]."""
    for k in range(len(R) - 1):
        metric.update(k, R[k][k], initial=True)
        metric.update(k, R[-1][k])
    return metric.result()


def test_average_accuracy_equals_avalanches_pooled_stream_accuracy():
    accuracy = Accuracy()
    for acc in R[-1]:
        correct = round(acc * N_TEST)
        labels = torch.zeros(N_TEST, dtype=torch.long)
        accuracy.update(torch.cat([labels[:correct], labels[correct:] + 1]), labels)
    assert average_accuracy(R) == pytest.approx(accuracy.result()) == pytest.approx(0.6333333)


def test_backward_transfer_equals_avalanches_bwt():
    per_task = _avalanche_per_task(BWT())
    assert per_task == pytest.approx({0: -0.3, 1: -0.2})
    assert backward_transfer(R) == pytest.approx(np.mean(list(per_task.values()))) == pytest.approx(-0.25)


def test_forgetting_differs_from_avalanches_only_where_the_best_accuracy_is_not_the_diagonal():
    per_task = _avalanche_per_task(Forgetting())
    functional = avalanche_forgetting_matrix(R)[-1, :-1]  # Avalanche's matrix API agrees with its metric
    assert per_task == pytest.approx({0: 0.3, 1: 0.2}) and list(functional) == pytest.approx([0.3, 0.2])
    assert forgetting(R) == pytest.approx(0.35)  # (0.5 + 0.2) / 2
    same_max = [[0.9, 0.1, 0.0], [0.7, 0.8, 0.2], [0.4, 0.6, 0.9]]  # best accuracy on the diagonal
    assert forgetting(same_max) == pytest.approx(np.mean(avalanche_forgetting_matrix(same_max)[-1, :-1]))
