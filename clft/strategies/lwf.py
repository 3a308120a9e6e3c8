"""``lwf``: Learning without Forgetting.

Li & Hoiem 2017, "Learning without Forgetting", TPAMI 40(12), in the KL form
of knowledge distillation (Hinton et al. 2015). At the end of every task the
trainable parameters are copied (θ_old). On every later batch x, with
z_old = f(x; θ_old) and z = f(x; θ) the backbone's logits,

    extra = λ · T² · Σ_G (1/B) Σ_x KL( softmax(z_old[G] / T) ‖ softmax(z[G] / T) )

over groups G of previously seen classes: task-il, one group per old task (its
head, as in multi-head LwF); class-il, one group with every old task's classes;
domain-il, one group with the whole shared label space. T² keeps the gradient
scale independent of T. z is the step's own forward output (``outputs.logits``):
only the old model runs a second forward pass.

Text-to-text backbones (``hf-causal-lm``, ``hf-seq2seq``) have no class logits:
the old model's outputs are its next-token distributions. At the M target
positions (b, t) of the batch (the label word or answer tokens + EOS, where
``outputs.extra["lm_labels"]`` is not -100), with z[b, t] the step's own
``outputs.extra["lm_logits"]`` over the vocabulary V,

    extra = λ · T² · (1/M) Σ_(b,t) KL( softmax(z_old[b, t] / T) ‖ softmax(z[b, t] / T) )

(the mean over target tokens, as the main loss). This is LwF's distillation on
the new task's data with the vocabulary as the output layer. Unlike a
classifier's old heads, the old model's outputs share positions and words with
the new targets, so the term pulls against the new task's cross-entropy at the
same positions; λ sets the trade-off. LFPT5 (Qin & Joty 2022, ICLR), whose
"label consistency" term is this KL with T = 1 (between the previous task's and
the current prompt, over the vocabulary at every target position), applies it to
the pseudo-examples it generates of earlier tasks, not to the new data, with
weight 0.01 on a summed KL (``Classification/model.py``); clft's replay rows are
the data-based counterpart.

The old model is the current one with its trainable parameters temporarily
swapped for θ_old (``module._parameters`` entries replaced, never written in
place, so the autograd graph of the current forward is untouched); frozen
weights and buffers are shared, so only the trainable parameters are copied
(with LoRA: the LoRA matrices). It runs in eval mode under ``no_grad``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._anchor import Tensors, tensor_bytes, to_cpu
from clft.strategies.ewc import trainable
from clft.types import Backbone, Batch, Outputs, Strategy, Task


@contextmanager
def swapped_parameters(model: torch.nn.Module, values: Tensors) -> Iterator[None]:
    """Within the block ``model`` computes with ``values`` in place of the named parameters."""
    saved = []
    for name, value in values.items():
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        original = module._parameters.get(attr)
        if original is None or original.shape != value.shape or original.dtype != value.dtype:
            continue
        saved.append((module, attr, original))
        module._parameters[attr] = value
    try:
        yield
    finally:
        for module, attr, original in reversed(saved):
            module._parameters[attr] = original


def token_outputs(outputs: Outputs) -> bool:
    """Whether a text-to-text forward exposed its aligned ``lm_logits`` and ``lm_labels``."""
    return "lm_logits" in outputs.extra and "lm_labels" in outputs.extra


@strategies.register()
class LwF(Strategy):
    """Distil the previous model's outputs on the new data, over the old classes."""

    name = "lwf"

    @dataclass
    class Config:
        lam: float = 1.0
        """λ, the weight of the distillation term (≥ 0)."""
        temperature: float = 2.0
        """T, the softmax temperature (> 0); Li & Hoiem use 2."""

        def __post_init__(self) -> None:
            if self.lam < 0:
                raise ValueError(f"lam must be non-negative, got {self.lam}")
            if not self.temperature > 0:
                raise ValueError(f"temperature must be positive, got {self.temperature}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.old: Tensors = {}  # θ_old: the trainable parameters at the end of the last task
        self.groups: list[list[int]] = []  # the old class groups for the current task

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        past = [t for t in stream if t.id < task.id]
        scenario = backbone.label_space.scenario
        if not past:
            self.groups = []
        elif scenario == "task-il":
            self.groups = [list(t.classes) for t in past]
        elif scenario == "class-il":
            self.groups = [sorted({c for t in past for c in t.classes})]
        else:
            self.groups = [list(range(backbone.label_space.num_classes))]

    def distilling(self, backbone: Backbone, outputs: Outputs, tokens: bool = False) -> bool:
        """Whether this step has a distillation term: an old model, old classes and λ > 0
        (ConfigError for a backbone with neither class logits nor, when ``tokens``, LM logits)."""
        if not self.old or not self.groups or self.config.lam == 0:
            return False
        if outputs.logits is None and not (tokens and token_outputs(outputs)):
            what = "class logits or LM logits at target positions" if tokens else "class logits"
            raise ConfigError(f"{self.name} distils {what}; backbone {backbone.name!r} has none "
                              f"(use hf-classifier or mlp{', hf-causal-lm or hf-seq2seq' if tokens else ''})")
        return True

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        if not self.distilling(backbone, outputs, tokens=True):
            return None
        if outputs.logits is None:
            return self.token_distillation(backbone, batch, outputs, task)
        new = outputs.logits.float()
        old = self.old_logits(backbone, batch)
        t = self.config.temperature
        total = new.new_zeros(())
        for group in self.groups:
            log_new = F.log_softmax(new[:, group] / t, dim=1)
            log_old = F.log_softmax(old[:, group] / t, dim=1)
            total = total + F.kl_div(log_new, log_old, log_target=True, reduction="batchmean")
        return self.config.lam * t * t * total

    def token_distillation(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor:
        """λ T² · mean over target positions of KL(softmax(z_old / T) ‖ softmax(z / T)) over the vocabulary."""
        targets = outputs.extra["lm_labels"] != -100
        new = outputs.extra["lm_logits"][targets].float()  # [M, V]
        old = self.old_model(backbone, lambda: backbone.forward(batch, task)).extra["lm_logits"][targets].float()
        t = self.config.temperature
        log_new, log_old = F.log_softmax(new / t, dim=-1), F.log_softmax(old / t, dim=-1)
        divergence = F.kl_div(log_new, log_old, log_target=True, reduction="sum") / max(len(new), 1)
        return self.config.lam * t * t * divergence

    def old_logits(self, backbone: Backbone, batch: Batch) -> torch.Tensor:
        """f(x; θ_old): the class logits of the current model with θ_old swapped in, eval mode, no grad."""
        return self.old_model(backbone, lambda: backbone.logits(batch)).float()

    def old_model(self, backbone: Backbone, compute):
        """``compute()`` with θ_old swapped in for the trainable parameters, in eval mode, without gradients."""
        model = backbone.model
        params = trainable(backbone)
        for name, value in self.old.items():  # after load_state_dict: move once, keep there
            if name in params and value.device != params[name].device:
                self.old[name] = value.to(params[name].device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), swapped_parameters(model, self.old):
                return compute()
        finally:
            model.train(was_training)

    def after_task(self, backbone: Backbone, task: Task) -> None:
        self.old = {name: p.detach().clone() for name, p in trainable(backbone).items()}

    def extra_state_bytes(self) -> int:
        return tensor_bytes(self.old)

    def state_dict(self) -> dict:
        return {"old": to_cpu(self.old), "groups": [list(g) for g in self.groups]}

    def load_state_dict(self, state: dict) -> None:
        self.old = to_cpu(state["old"])
        self.groups = [[int(c) for c in g] for g in state["groups"]]


@strategies.register()
class LwFVanDeVen(LwF):
    """LwF as in van de Ven & Tolias's code (GMvandeVen/continual-learning, behind their "three scenarios" tables).

    Two differences from ``lwf``: (1) in class-IL the student's softmax covers every class
    seen so far (the new task's too) and the target is softmax(z_old[old] / T) with zeros on
    the new classes, so the term also pushes the new classes down on the new data (task-IL
    and domain-IL groups hold no new class: the same as ``lwf``); (2) their loss at task t
    (1-based) is (1/t)·CE + (1 − 1/t)·D with D = λ·T²·mean_G KL_G; it is applied as
    CE + (t − 1)·D, t times theirs: the same Adam updates (up to Adam's ε), an SGD
    learning rate t times larger.
    """

    name = "lwf-vandeven"

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        if not self.distilling(backbone, outputs):  # class logits only: van de Ven's code has no LM variant
            return None
        if backbone.label_space.scenario != "class-il":
            term = super().extra_loss(backbone, batch, outputs, task)
            return None if term is None else term / len(self.groups) * task.id  # task.id = t - 1
        new, old, t = outputs.logits.float(), self.old_logits(backbone, batch), self.config.temperature
        seen, (group,) = sorted(backbone.label_space.seen), self.groups
        target = new.new_zeros(new.shape[0], len(seen))
        target[:, [seen.index(c) for c in group]] = F.softmax(old[:, group] / t, dim=1)
        divergence = F.kl_div(F.log_softmax(new[:, seen] / t, dim=1), target, reduction="batchmean")
        return self.config.lam * t * t * divergence * task.id
