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


def use_deterministic_algorithms(mode: bool, warn_only: bool = True) -> None:
    """``torch.use_deterministic_algorithms`` without importing torch's compiler stack.

    torch's function imports ``torch._inductor.config`` (about 1.2 s of imports,
    ``torch._dynamo`` included) only to copy ``mode`` into it; clft does not compile, so
    the flag is set on the C side directly, and inductor's copy is set only when
    something already imported it.
    """
    torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = mode


def peak_memory_mb(devices: Devices) -> float:
    """Peak accelerator memory (CUDA) or the process's peak resident set size (CPU), in MiB."""
    if devices.kind == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
