"""``ewc``: elastic weight consolidation, separate or online.

Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural
networks", PNAS 114(13); online EWC from Schwarz et al. 2018, "Progress &
Compress", ICML. After each task t the strategy stores the diagonal empirical
Fisher F_t and an anchor θ*_t (a copy of the parameters):

    F_t[i] = (1/N) Σ_n (∂ log p(y_n | x_n; θ) / ∂θ_i)²    over N training examples of task t

and adds to every later step the penalty

    separate:  (λ/2) Σ_{s<t} Σ_i F_s[i] (θ_i − θ*_s[i])²        (one pair per task)
    online:    (λ/2) Σ_i F[i] (θ_i − θ*[i])²,  F ← γ F + F_t, θ* ← θ after task t

With ``fisher_labels: true`` (default, the empirical Fisher) y_n is the
example's label; with ``predicted`` it is the model's own prediction
argmax_y p(y | x_n; θ) over the allowed classes, as in Hsu et al. 2018's code
(GT-RIPL ``agents/regularization.py::EWC``, ``empFI = False``).
Gradients come from ``backbone.loss`` (mean cross-entropy = −log p, masked by
the label space) in eval mode, so the training ``.grad`` buffers are untouched.
With ``fisher_batch_size`` 1 (default) each example's squared gradient is exact,
computed for a chunk of examples at a time (``clft.strategies._importance``:
for an MLP from the nn.Linear pieces of one batched backward pass, else by
``torch.func.vmap(grad)``; predicted labels are set on each chunk first);
larger batches average squared *batch*
gradients, a cheaper estimate that is smaller by about 1/B. Parameters are
matched by name (``backbone.model.named_parameters()`` that require grad);
parameters added later (new adapters or heads) are not penalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from clft.data.columns import columns
from clft.registry import strategies
from clft.strategies._importance import per_example_mean
from clft.strategies._random import generator_from_state, generator_state, new_generator
from clft.types import Backbone, Batch, Outputs, Strategy, Task

Tensors = dict[str, torch.Tensor]


def trainable(backbone: Backbone) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in backbone.model.named_parameters() if p.requires_grad}


def cpu_copy(tensors: Tensors) -> Tensors:
    return {name: t.detach().cpu().clone() for name, t in tensors.items()}


@strategies.register()
class EWC(Strategy):
    """Quadratic penalty pulling each parameter to its anchor, weighted by the Fisher."""

    name = "ewc"

    @dataclass
    class Config:
        lam: float = 100.0
        """λ, the penalty strength (≥ 0)."""
        mode: Literal["separate", "online"] = "separate"
        """separate: one (Fisher, anchor) per past task; online: one running Fisher and anchor."""
        gamma: float = 1.0
        """γ in [0, 1], the decay of the running Fisher in online mode (ignored when separate)."""
        fisher_samples: int | None = None
        """Training examples used for the Fisher, drawn at random; None = all of them."""
        fisher_batch_size: int = 1
        """Examples per gradient when estimating the Fisher; 1 = exact per-example squares."""
        fisher_labels: Literal["true", "predicted"] = "true"
        """y in log p(y | x): the true label (empirical Fisher) or the model's argmax prediction."""

        def __post_init__(self) -> None:
            if self.lam < 0:
                raise ValueError(f"lam must be non-negative, got {self.lam}")
            if not 0.0 <= self.gamma <= 1.0:
                raise ValueError(f"gamma must lie in [0, 1], got {self.gamma}")
            if self.fisher_samples is not None and self.fisher_samples < 1:
                raise ValueError(f"fisher_samples must be at least 1 or null, got {self.fisher_samples}")
            if self.fisher_batch_size < 1:
                raise ValueError(f"fisher_batch_size must be at least 1, got {self.fisher_batch_size}")
            if self.fisher_labels not in ("true", "predicted"):
                raise ValueError(f"fisher_labels must be 'true' or 'predicted', got {self.fisher_labels!r}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.terms: list[dict[str, Tensors]] = []  # [{"fisher": {name: F}, "anchor": {name: θ*}}]
        self.rng: np.random.Generator | None = None

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        self.rng = self.rng or new_generator()

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        """(λ/2) Σ_terms Σ_i F[i] (θ_i − θ*[i])² over the named parameters both sides know."""
        params = trainable(backbone)
        total = None
        for term in self.terms:
            for name, fisher in term["fisher"].items():
                p = params.get(name)
                if p is None or p.shape != fisher.shape:
                    continue
                if fisher.device != p.device:  # after load_state_dict: move once, keep there
                    term["fisher"][name] = fisher = fisher.to(p.device)
                    term["anchor"][name] = term["anchor"][name].to(p.device)
                part = (fisher * (p.float() - term["anchor"][name]).pow(2)).sum()
                total = part if total is None else total + part
        return None if total is None else self.config.lam / 2 * total

    def after_task(self, backbone: Backbone, task: Task) -> None:
        fisher = self.fisher(backbone, task)
        anchor = {name: p.detach().float().clone() for name, p in trainable(backbone).items()}
        if self.config.mode == "online" and self.terms:
            old = self.terms[0]["fisher"]
            for name, f in fisher.items():
                if name in old and old[name].shape == f.shape:
                    f += self.config.gamma * old[name].to(f.device)
            self.terms = []
        self.terms.append({"fisher": fisher, "anchor": anchor})

    def fisher(self, backbone: Backbone, task: Task, how: str = "auto") -> Tensors:
        """Diagonal empirical Fisher of ``task.train`` at the current parameters (see module doc).

        ``fisher_batch_size`` 1: exact per-example squares (``_importance``, ``how="auto"``: nn.Linear
        pieces of one batched backward pass for an MLP, ``torch.func.vmap`` otherwise; "linear", "vmap"
        or "loop" forces a way; tests and benchmarks compare them).
        """
        data = backbone.prepare(task.train)
        rows = self.sample_rows(len(data))
        if self.config.fisher_batch_size == 1:
            relabel = None if self.config.fisher_labels == "true" else lambda rows: self.predicted(backbone, rows, task)
            return per_example_mean(backbone, data, rows, lambda batch: backbone.loss(batch, task), "square",
                                    how=how, relabel=relabel,
                                    per_example=lambda batch: backbone.forward(batch, task).example_loss)
        return self.batched_fisher(backbone, task, data, rows)

    def batched_fisher(self, backbone: Backbone, task: Task, data, rows: list[int]) -> Tensors:
        """Mean over chunks of ``fisher_batch_size`` rows of the squared *batch* gradient."""
        params = trainable(backbone)
        size = self.config.fisher_batch_size
        sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
        table = columns(data)
        was_training = backbone.model.training
        backbone.model.eval()
        try:
            chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
            for chunk in chunks:
                loss = backbone.loss(self.fisher_batch(backbone, table[chunk], task), task)
                grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                for name, grad in zip(params, grads):
                    if grad is not None:
                        sums[name] += grad.detach().float().pow(2)
        finally:
            backbone.model.train(was_training)
        return {name: s / max(len(chunks), 1) for name, s in sums.items()}

    def fisher_batch(self, backbone: Backbone, examples: dict, task: Task) -> Batch:
        """The collated examples, labelled with the model's predictions when ``fisher_labels`` is predicted."""
        if self.config.fisher_labels != "true":
            examples = self.predicted(backbone, examples, task)
        return backbone.collate(examples)

    @staticmethod
    def predicted(backbone: Backbone, examples: dict, task: Task) -> dict:
        """``examples`` with ``label`` replaced by the model's prediction argmax_y p(y | x; θ)."""
        with torch.no_grad():
            labels = backbone.predict(backbone.collate(examples), task, backbone.label_space.scenario)
        return {**examples, "label": labels.detach().cpu().long()}

    def sample_rows(self, n: int) -> list[int]:
        """All rows in order, or ``fisher_samples`` of them drawn without replacement (sorted)."""
        if self.config.fisher_samples is None or self.config.fisher_samples >= n:
            return list(range(n))
        self.rng = self.rng or new_generator()
        return np.sort(self.rng.choice(n, size=self.config.fisher_samples, replace=False)).tolist()

    def extra_state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for term in self.terms for part in term.values() for t in part.values())

    def state_dict(self) -> dict:
        terms = [{"fisher": cpu_copy(t["fisher"]), "anchor": cpu_copy(t["anchor"])} for t in self.terms]
        return {"terms": terms, "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.terms = [{"fisher": cpu_copy(t["fisher"]), "anchor": cpu_copy(t["anchor"])} for t in state["terms"]]
        self.rng = generator_from_state(state["rng"])
