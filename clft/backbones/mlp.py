"""``mlp``: a small multi-layer perceptron over a fixed-length float vector ``x``.

The CPU workhorse for the digits streams and for tests. The input size is read
from the first training example's ``x``. Before anything is allocated the parameter
count is compared with the memory available (``check_fits_in_memory``: 16 bytes per
parameter to train with Adam): at config time with one input and one output (a lower
bound), and again with the real sizes before the model is built.

Head choice: ONE linear head over all ``len(benchmark.label_names)`` classes,
masked per example by the runner's ``LabelSpace``:

- task-il: only the classes of the example's own task (``task`` column) are
  allowed, which makes the single head equivalent to one head per task sharing
  the hidden layers, without per-task parameters;
- class-il: the classes of every task seen so far (all classes before any
  training), so the softmax competes across tasks as class-IL requires;
- domain-il: the shared label set, all logits.

Masked logits are filled with ``NEG = finfo.min / 2`` (finite, so softmax and
its gradient stay finite even in half precision) before the cross-entropy in
``loss`` and the argmax in ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clft.config.yaml_safe import brief
from clft.errors import ConfigError
from clft.registry import backbones
from clft.types import Backbone, Batch, Benchmark, LabelSpace, Outputs, Task

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
NUMPY_DTYPES = {torch.float32: np.float32, torch.int64: np.int64}
MAX_WIDTH, MAX_LAYERS = 65_536, 64
BYTES_PER_PARAMETER = 16
"""Memory one trained float32 parameter takes: its weight, its gradient and Adam's two moments (4 x 4 bytes)."""


def parameter_count(widths: list[int]) -> int:
    """Weights and biases of the linear layers between consecutive ``widths`` (input, hidden..., output):
    sum of a·b + b over consecutive (a, b)."""
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def available_memory_bytes() -> int | None:
    """Memory this process may still take: ``MemAvailable`` of /proc/meminfo, lowered to the cgroup's
    limit (a container) when one is set; None where neither can be read (no check is made then)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as handle:
            limit = handle.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as handle:
            used = int(handle.read().strip())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def check_fits_in_memory(n_parameters: int, what: str) -> None:
    """ValueError when training ``n_parameters`` (``BYTES_PER_PARAMETER`` each) needs more memory than is
    available: refused before anything is allocated, instead of a minutes-long swap or an OOM kill."""
    available = available_memory_bytes()
    need = n_parameters * BYTES_PER_PARAMETER
    if available is not None and need > available:
        raise ValueError(f"{what} has {n_parameters:.3g} parameters; training them needs about {need / 2**30:.1f} "
                         f"GiB (weights, gradients, Adam's moments), more than the {available / 2**30:.1f} GiB "
                         "of memory available; use narrower or fewer hidden layers")


def build_mlp(n_in: int, hidden: list[int], n_out: int, dropout: float, activation: str) -> nn.Sequential:
    """Linear -> activation -> dropout for each hidden size, then the linear head."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def as_tensor(values, dtype: torch.dtype, device) -> torch.Tensor:
    """A tensor of ``dtype`` on ``device``: tensors pass through (no copy when already there), lists via numpy."""
    if not isinstance(values, torch.Tensor):
        values = torch.from_numpy(np.asarray(values, dtype=NUMPY_DTYPES[dtype]))
    return values.to(device=device, dtype=dtype)


def masked(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``logits`` with not-allowed entries set to half the most negative finite value."""
    return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min / 2)


@backbones.register()
class MLP(Backbone):
    """MLP backbone: x [B, d] -> hidden layers -> one linear head over every class."""

    name = "mlp"
    input_kind = "vector"

    @dataclass
    class Config:
        hidden: list[int] = field(default_factory=lambda: [256, 256])
        """Hidden layer widths, in order; [] gives a linear (softmax-regression) model."""
        dropout: float = 0.0
        """Dropout probability after each hidden activation, in [0, 1)."""
        activation: Literal["relu", "gelu"] = "relu"
        """Hidden activation."""

        def __post_init__(self) -> None:
            if not all(1 <= width <= MAX_WIDTH for width in self.hidden) or len(self.hidden) > MAX_LAYERS:
                raise ValueError(f"hidden must list at most {MAX_LAYERS} widths in [1, {MAX_WIDTH}], "
                                 f"got {brief(self.hidden)}")
            if not 0.0 <= self.dropout < 1.0:
                raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
            # at least one input and one output: a lower bound, checked before any data is read
            check_fits_in_memory(parameter_count([1, *self.hidden, 1]), f"hidden {brief(self.hidden)}")

    def __init__(self, config: Config, benchmark: Benchmark, tasks: list[Task]) -> None:
        super().__init__(config, benchmark, tasks)
        if not tasks or "x" not in tasks[0].train.column_names:
            raise ValueError("the mlp backbone needs examples with a float-vector column 'x'")
        n_in = len(tasks[0].train[0]["x"])
        n_out = len(benchmark.label_names)
        try:
            check_fits_in_memory(parameter_count([n_in, *config.hidden, n_out]), f"mlp {n_in} -> {config.hidden} -> "
                                 f"{n_out}")
        except ValueError as exc:
            raise ConfigError(f"backbone 'mlp': {exc}") from None
        self.model = build_mlp(n_in, list(config.hidden), n_out, config.dropout, config.activation)
        self.device = torch.device("cpu")
        # the runner replaces this; a default keeps the backbone usable on its own
        self.label_space = LabelSpace(benchmark.scenario, n_out, {t.id: t.classes for t in tasks})

    def collate(self, examples: Batch) -> Batch:
        """Columnar ``{x, label, task}`` (tensors or lists) -> float32 ``x`` [B, d], int64 ``label``, ``task`` [B]."""
        batch = {"x": as_tensor(examples["x"], torch.float32, self.device)}
        for column in ("label", "task"):
            if column in examples:
                batch[column] = as_tensor(examples[column], torch.int64, self.device)
        return batch

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.model(batch["x"])

    def allowed(self, batch: Batch, task: Task) -> torch.Tensor:
        """Bool [B, num_classes]: the label space's mask for each example's own ``task`` column
        (``task.id`` for every row when the batch has no such column)."""
        task_ids = batch["task"] if "task" in batch else [task.id] * len(batch["x"])
        return self.label_space.mask(task_ids, self.device)

    def forward(self, batch: Batch, task: Task) -> Outputs:
        """Raw logits and each example's cross-entropy over its allowed logits (main loss: the mean)."""
        logits = self.logits(batch)
        losses = F.cross_entropy(masked(logits, self.allowed(batch, task)), batch["label"], reduction="none")
        return Outputs(example_loss=losses, logits=logits)

    def predict(self, batch: Batch, task: Task, scenario: str) -> torch.Tensor:
        """Argmax over the allowed logits (the label space's scenario decides what is allowed)."""
        return masked(self.logits(batch), self.allowed(batch, task)).argmax(dim=-1)
