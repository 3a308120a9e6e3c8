"""``small-cnn``: a small convolutional network over square images stored as flat vectors ``x``.

x [B, side²] -> 3x3 convolution (``channels``) -> ReLU -> 2x2 max-pool -> one linear head over
every class of the stream, masked per example by the runner's label space (logits of
classes a scenario does not allow get ``finfo.min / 2``) in the loss and in ``predict``.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clft.types import Backbone, Outputs


class SmallCNN(Backbone):
    """Conv -> ReLU -> max-pool -> linear head; ``forward`` gives logits and per-example losses."""

    @dataclass
    class Config:
        channels: int = 8
        """Convolution channels."""

        def __post_init__(self):
            if self.channels < 1:
                raise ValueError(f"channels must be >= 1, got {self.channels}")

    def __init__(self, config, benchmark, tasks):
        super().__init__(config, benchmark, tasks)
        side = math.isqrt(len(tasks[0].train[0]["x"]))
        self.model = nn.Sequential(
            nn.Unflatten(1, (1, side, side)), nn.Conv2d(1, config.channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(config.channels * (side // 2) ** 2, len(benchmark.label_names)))

    def collate(self, examples):
        batch = {"x": torch.as_tensor(np.asarray(examples["x"], dtype=np.float32), device=self.device)}
        for column in ("label", "task"):
            if column in examples:
                batch[column] = torch.as_tensor(np.asarray(examples[column], dtype=np.int64), device=self.device)
        return batch

    def logits(self, batch):
        return self.model(batch["x"])

    def masked(self, logits, batch, task):
        task_ids = batch["task"].tolist() if "task" in batch else [task.id] * len(logits)
        allowed = self.label_space.mask(task_ids, logits.device)
        return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min / 2)

    def forward(self, batch, task):
        logits = self.logits(batch)
        losses = F.cross_entropy(self.masked(logits, batch, task), batch["label"], reduction="none")
        return Outputs(example_loss=losses, logits=logits)

    def predict(self, batch, task, scenario):
        return self.masked(self.logits(batch), batch, task).argmax(dim=-1)
