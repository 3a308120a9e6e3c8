"""Under fp16 loss scaling the gradient hooks and clipping see unscaled gradients (runner.optimizer_step)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from clft.engine.devices import Devices
from clft.engine.distributed import Parallel
from clft.engine.runner import optimizer_step
from clft.types import Strategy

SCALE = 1024.0


class ScaledDevices:
    """Stands in for accelerate's fp16 GradScaler: gradients arrive x SCALE until ``unscale``."""

    def __init__(self) -> None:
        self.unscaled = False

    def unscale(self, optimizer) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad /= SCALE
        self.unscaled = True


class GradientReader(Strategy):
    name = "gradient-reader"

    def __init__(self) -> None:
        self.seen: torch.Tensor | None = None

    def before_step(self, backbone, task) -> None:
        self.seen = backbone.weight.grad.clone()


def test_hooks_and_clipping_see_the_unscaled_gradient():
    weight = torch.nn.Parameter(torch.zeros(3))
    weight.grad = torch.tensor([3.0, 4.0, 0.0]) * SCALE  # true gradient norm 5, as the scaled backward leaves it
    reader = GradientReader()
    backbone = SimpleNamespace(weight=weight, trainable_parameters=lambda: [weight])
    optimizer = torch.optim.SGD([weight], lr=1.0)
    run = SimpleNamespace(devices=ScaledDevices(), strategies=[reader], backbone=backbone, parallel=Parallel(),
                          train=SimpleNamespace(grad_clip=2.5))
    optimizer_step(run, None, optimizer, [])
    assert torch.equal(reader.seen, torch.tensor([3.0, 4.0, 0.0]))
    torch.testing.assert_close(weight.detach(), torch.tensor([-1.5, -2.0, 0.0]))  # clipped from norm 5 to 2.5


def test_unscaling_without_a_loss_scaler_leaves_gradients_alone():
    weight = torch.nn.Parameter(torch.zeros(2))
    weight.grad = torch.tensor([1.0, -2.0])
    optimizer = Devices("cpu").prepare_optimizer(torch.optim.SGD([weight], lr=1.0))
    Devices("cpu").unscale(optimizer)
    assert torch.equal(weight.grad, torch.tensor([1.0, -2.0]))
