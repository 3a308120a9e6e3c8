"""clft's EWC importances equal Avalanche's EWCPlugin's under the same Fisher estimator (needs clft[avalanche]).

Both estimate the diagonal empirical Fisher as the mean, over consecutive mini-batches of B
examples in data order, of the squared gradient of the mean cross-entropy of the batch. Defaults
differ: clft uses B = 1 (``fisher_batch_size``: exact per-example squares, over every training
example); Avalanche's EWCPlugin uses the strategy's training mini-batch size (``train_mb_size``),
which gives values smaller by about 1/B. Set ``fisher_batch_size`` to Avalanche's B to compare.
"""

import pytest
import torch

pytest.importorskip("avalanche", reason="Avalanche is not installed (pip install 'clft[avalanche]')")
from avalanche.training.plugins import EWCPlugin  # noqa: E402

from clft.strategies.ewc import EWC  # noqa: E402
from clft.testing import tiny  # noqa: E402


@pytest.mark.parametrize("batch_size", [1, 16])
def test_fisher_equals_avalanche_ewc_importances(batch_size):
    backbone, tasks = tiny()  # class-IL digits before any training: the loss is the plain cross-entropy
    task = tasks[0]
    ours = EWC(EWC.Config(fisher_batch_size=batch_size)).fisher(backbone, task)
    rows = backbone.prepare(task.train)[:]
    x, y = torch.as_tensor(rows["x"], dtype=torch.float32), torch.as_tensor(rows["label"])
    dataset = torch.utils.data.TensorDataset(x, y, torch.zeros_like(y))
    model = backbone.model
    theirs = EWCPlugin(ewc_lambda=1.0).compute_importances(
        model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.0), dataset, "cpu", batch_size)
    assert set(ours) == set(theirs) and len(ours) >= 4
    for name, importance in theirs.items():
        assert importance.data.abs().sum() > 0
        torch.testing.assert_close(ours[name], importance.data, rtol=1e-5, atol=1e-9)
