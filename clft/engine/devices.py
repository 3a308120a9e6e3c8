"""Devices and mixed precision through ``accelerate`` (one process now, multi-GPU later).

The runner never calls ``.cuda()``: it asks ``Devices`` for the device, the
autocast context, ``backward`` and optimizer preparation, so a multi-process
launch (``accelerate launch``) needs no rewrite of the loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
import sys
from pathlib import Path

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

    @property
    def plain(self) -> bool:
        """fp32 in one process: accelerate's ``backward`` and optimizer wrapper would only add checks
        (two importlib ``find_spec`` calls and an ``inspect.signature`` per step), so the loop calls
        torch directly; the numbers are the same (accelerate's division by 1 is exact)."""
        return self.mixed_precision == "no" and self.accelerator.num_processes == 1

    def backward(self, loss: torch.Tensor) -> None:
        if self.plain:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def unscale(self, optimizer) -> None:
        """Divide the gradients by the fp16 loss scale now (no-op without fp16), so hooks and
        clipping see true gradients; the optimizer step then does not unscale again."""
        if self.mixed_precision == "fp16":
            self.accelerator.unscale_gradients(optimizer)

    def prepare_optimizer(self, optimizer: torch.optim.Optimizer):
        return optimizer if self.plain else self.accelerator.prepare_optimizer(optimizer)

    def strategy_losses(self):
        """The context the strategies' ``loss``/``extra_loss`` hooks run in: under fp16,
        ``torch.autograd.grad`` is refused with one line (:func:`refuse_inner_gradients`)."""
        return refuse_inner_gradients() if self.mixed_precision == "fp16" else contextlib.nullcontext()


INNER_GRADIENTS_UNDER_FP16 = (
    "a strategy's loss or extra_loss calls torch.autograd.grad under train.mixed_precision fp16: those "
    "gradients are taken of the unscaled loss in float16 and may underflow (fp16 loss scaling applies only to "
    "the runner's backward); use train.mixed_precision bf16 or no")


@contextlib.contextmanager
def refuse_inner_gradients():
    """Within the block ``torch.autograd.grad`` raises ConfigError(:data:`INNER_GRADIENTS_UNDER_FP16`).

    Gradients inside ``extra_loss`` (a gradient-norm penalty, MAML-style inner steps) work with
    gradient accumulation, bf16 and clft's data parallelism; under fp16 the loss scaler guards only
    the runner's own backward, so they are refused rather than silently wrong."""
    from clft.errors import ConfigError

    original = torch.autograd.grad

    def refused(*args, **kwargs):
        raise ConfigError(INNER_GRADIENTS_UNDER_FP16)

    torch.autograd.grad = refused
    try:
        yield
    finally:
        torch.autograd.grad = original


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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 256 * 2**20


def keep_freed_heap() -> bool:
    """Fix glibc malloc's thresholds so a training step's temporaries are not page-faulted in anew
    every step; True when set (glibc), False elsewhere (musl, macOS, Windows: nothing to do).

    By default glibc maps each block above its mmap threshold (128 KiB at start) afresh and gives
    the heap's free top back to the kernel past the trim threshold (twice the mmap threshold). It
    raises both only when a mapped block of at most 32 MiB is freed, so a process's history decides:
    the same MLP Split-MNIST training took 83k-222k minor page faults in clft processes (Adam's
    sqrt/div temporaries, matmul outputs: 1.25 MB blocks made and freed every step) against 26k in a
    hand-written loop whose start-up happened to free a 31 MB block. With the mmap threshold at
    32 MiB and the trim threshold at 256 MiB every process keeps freed blocks for reuse: about
    29k. The cost is up to 256 MiB of freed memory kept resident (the intel-extension-for-pytorch
    guide's advice, jemalloc or tcmalloc through LD_PRELOAD, cannot be applied from inside a process).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def reset_peak_memory(devices: Devices) -> str:
    """Start a run's own memory peak; returns how ``peak_memory_mb`` will measure it.

    - CUDA: ``torch.cuda.reset_peak_memory_stats`` then ``max_memory_allocated`` (tensors only);
    - Linux CPU: writing ``5`` to ``/proc/self/clear_refs`` resets the kernel's peak resident
      set size (``VmHWM`` in ``/proc/self/status``) to the current RSS, so the peak read at the
      end of each task is this run's, not the sweep's (no sampling thread, no overhead);
    - elsewhere: ``getrusage`` ``ru_maxrss``, the process's high-water mark (cannot be reset).
    """
    if devices.kind == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return "cuda-max-allocated-since-run-start"
    try:
        CLEAR_REFS.write_text("5")
        return "rss-peak-since-run-start"
    except OSError:
        return "process-max-rss"


def rss_mb() -> float:
    """The process's resident set size now, in MiB (0 where /proc is absent)."""
    return _status_kb("VmRSS") / 2**10


def _status_kb(key: str) -> float:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def peak_memory_mb(devices: Devices) -> float:
    """Peak memory since ``reset_peak_memory`` (its docstring says how), in MiB."""
    if devices.kind == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    peak = _status_kb("VmHWM")
    if peak:
        return peak / 2**10
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
