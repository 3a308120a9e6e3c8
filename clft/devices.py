"""Devices and mixed precision through ``accelerate`` (one process now, multi-GPU later).

The runner never calls ``.cuda()``: it asks ``Devices`` for the device, the
autocast context, ``backward`` and optimizer preparation, so a multi-process
launch (``accelerate launch``) needs no rewrite of the loop.
"""

from __future__ import annotations

import contextlib
import resource
import sys

import torch

_ACCELERATORS: dict[tuple, object] = {}


class Devices:
    """A thin holder of one ``accelerate.Accelerator`` per (device, precision) in a process."""

    def __init__(self, device: str = "auto", mixed_precision: str = "no") -> None:
        cuda = torch.cuda.is_available() and device != "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            from clft.errors import ConfigError

            raise ConfigError("train.device is 'cuda' but no CUDA device is available; valid here: auto, cpu")
        precision = mixed_precision if cuda else "no"  # CPU runs stay fp32 (exact, reproducible)
        self.accelerator = _accelerator(not cuda, precision)
        self.mixed_precision = precision

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def kind(self) -> str:
        return self.device.type

    def autocast(self):
        if self.mixed_precision == "no":
            return contextlib.nullcontext()
        return self.accelerator.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def unscale_gradients(self, optimizer) -> None:
        """Divide the gradients by the fp16 loss scale, once per step (no-op without a scaler).

        The runner calls it before the gradient hooks and clipping, so both see true gradients;
        the scaler remembers the optimizer is unscaled and its ``step`` does not divide again."""
        if getattr(self.accelerator, "scaler", None) is not None:
            self.accelerator.unscale_gradients(optimizer)

    def prepare_optimizer(self, optimizer: torch.optim.Optimizer):
        return self.accelerator.prepare_optimizer(optimizer)


def _accelerator(cpu: bool, precision: str):
    key = (cpu, precision)
    if key not in _ACCELERATORS:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState

        if _ACCELERATORS:  # another precision/device was used in this process
            AcceleratorState._reset_state(True)
            GradientState._reset_state()
        _ACCELERATORS.clear()
        _ACCELERATORS[key] = Accelerator(cpu=cpu, mixed_precision=precision)
    return _ACCELERATORS[key]


def peak_memory_mb(devices: Devices) -> float:
    """Peak accelerator memory (CUDA) or the process's peak resident set size (CPU), in MiB."""
    if devices.kind == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
