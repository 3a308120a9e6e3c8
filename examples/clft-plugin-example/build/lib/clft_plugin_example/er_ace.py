"""``er-ace``: ER with Asymmetric Cross-Entropy (Caccia et al. 2022, ICLR). The main loss is REPLACED by
a cross-entropy over the logits of the classes present in the incoming batch only; from the second
task on, the usual cross-entropy on a batch from an online reservoir (Vitter's Algorithm R over every
training example, written after each step) is added. Needs class logits and fixed-width batches."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clft.types import Strategy


class ERACE(Strategy):
    """ER-ACE: asymmetric cross-entropy on the incoming batch + replay from a reservoir."""

    @dataclass
    class Config:
        memory_size: int = 200
        """Reservoir capacity M, in examples."""

    def __init__(self, config):
        super().__init__(config)
        self.memory, self.n_seen, self.rng = {}, 0, torch.Generator()

    def before_task(self, backbone, task, stream):
        if task.id == 0:  # the runner seeds torch per task from the run's seed
            self.rng.manual_seed(torch.initial_seed())

    def loss(self, backbone, batch, outputs, task):  # only the classes present in the batch compete
        absent = torch.ones_like(outputs.logits, dtype=torch.bool)
        absent[:, batch["label"].unique()] = False
        return F.cross_entropy(outputs.logits.masked_fill(absent, torch.finfo(outputs.logits.dtype).min / 2),
                               batch["label"])

    def extra_loss(self, backbone, batch, outputs, task):
        if task.id == 0:  # the reservoir holds only the current task's examples yet
            return None
        rows = torch.randperm(min(self.n_seen, self.config.memory_size), generator=self.rng)[: len(batch["label"])]
        return backbone.loss({k: v[rows].to(backbone.device) for k, v in self.memory.items()}, task)

    def after_step(self, backbone, batch, outputs, task):
        capacity = self.config.memory_size
        for i in range(len(batch["label"])):  # Algorithm R: example k takes slot k < M, else j ~ U{0..k}
            k, self.n_seen = self.n_seen, self.n_seen + 1
            slot = k if k < capacity else int(torch.randint(k + 1, (1,), generator=self.rng))
            for key, value in batch.items() if slot < capacity else ():
                self.memory.setdefault(key, value.new_zeros((capacity, *value.shape[1:]), device="cpu"))
                self.memory[key][slot] = value[i].cpu()

    def extra_state_bytes(self):
        return sum(t.numel() * t.element_size() for t in self.memory.values())

    def state_dict(self):
        return {"memory": dict(self.memory), "n_seen": self.n_seen, "rng": self.rng.get_state()}

    def load_state_dict(self, state):
        self.memory, self.n_seen = dict(state["memory"]), int(state["n_seen"])
        self.rng.set_state(state["rng"])
