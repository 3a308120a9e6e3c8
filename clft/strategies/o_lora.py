"""``o-lora``: a new LoRA per task, kept orthogonal to the earlier ones.

Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual
Learning", Findings of EMNLP (O-LoRA). Task t adds LoRA ``task<t>`` (peft's
named adapters, ``clft.strategies._peft``); the LoRAs of tasks 0..t-1 stay
active in every forward pass (``set_adapter`` with the list of names) but
frozen, and the loss adds

    λ1 Σ_{i<t} Σ_layers Σ_{j,k} |(A_i A_tᵀ)[j,k]|  +  λ2 Σ_{M ∈ {A_t, B_t}} ‖M‖₂

where A [r, d_in] and B [d_out, r] are a layer's LoRA matrices. The first term
pushes the rows of the new A (the subspace the new LoRA reads) to be
orthogonal to the old ones: the paper writes Σ_{j,k} O[j,k]² for O = A_iᵀA_t
in its notation, the authors' code (cmnfriend/O-LoRA, ``uie_trainer_lora.py``)
sums absolute values, which we follow; the second is that code's L2 term on
the new LoRA (a sum of Frobenius norms, not squared; 0 by default as there).
Prediction needs no task id: every LoRA is active.

What the paper does (the default here): every task's LoRA is frozen once its
task ends and stays active; the only trained parameters are the new LoRA's, so
old tasks are protected by the frozen LoRAs and the orthogonality term alone.
O-LoRA is text-to-text (``hf-seq2seq`` / ``hf-causal-lm``): labels are words
produced through the frozen LM head, so no trained head is shared between
tasks. On an encoder, ``hf-classifier`` with ``head: label-embedding`` is the
same setting: logits are cosines to the frozen encoder's embeddings of the
label words, nothing in the head trains.

What ``protect_head`` adds (off by default; not in the paper): with
``hf-classifier``'s ``linear`` head, the head is a shared trained layer. Trained
unconstrained in class-IL it learns to favour the newest classes and o-lora
ends near finetune's level whatever the LoRAs do. With ``protect_head`` the
head rows of earlier tasks' classes (those not in the current task) are
frozen: their gradient is zeroed before every step and their values restored
after the task, so old classes' logits change only through the features: the
head's analogue of the frozen old LoRAs. (Freezing rather than masking the
old logits out of the loss: the new classes still have to beat the old ones in
the shared softmax, as class-IL evaluation asks.) New rows and the current
task's rows train. A row with it on is labelled ``o-lora+frozen-head`` by
default (``default_label``), so a table never shows it as plain O-LoRA;
protect_head on a backbone without a linear head is a ConfigError (nothing to
freeze). With ``protect_head`` off, a linear head trains freely (all rows).

``report()`` gives, for every pair i < j of tasks (key ``"i-j"``):
``olora_overlap`` = Σ_layers Σ|A_i A_jᵀ| (the penalty's measure) and
``olora_overlap_cos`` = the mean over layers of ‖Â_i Â_jᵀ‖_F / r, Â with
unit rows (root-mean-square cosine between the rows; ≈ 1/√d_in for random
rows, 0 when orthogonal). Both are measured after task j.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._peft import (
    activate,
    adapter_name,
    adapter_parameters,
    add_adapter,
    lora_a_matrices,
    parameter_bytes,
)
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import Backbone, Batch, Outputs, Strategy, Task


@strategies.register()
class OLoRA(Strategy):
    """One LoRA per task, all active, the new one penalised for overlapping the old ones."""

    name = "o-lora"
    conformance_backbone = TINY_TEXT_BACKBONE
    input_kind = "text"  # adapters/prompts of a transformer backbone
    conformance_benchmark = TINY_TEXT_BENCHMARK

    @dataclass
    class Config:
        lam1: float = 0.5
        """λ1, weight of the orthogonality term (the authors' default 0.5)."""
        lam2: float = 0.0
        """λ2, weight of the L2 term on the new LoRA (the authors' default 0)."""
        r: int = 8
        """LoRA rank of each task's adapter."""
        lora_alpha: int = 16
        """LoRA scaling numerator (peft's lora_alpha)."""
        target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
        """Modules that get LoRA (BERT: query/value; T5: q/v)."""
        protect_head: bool = False
        """Not in the paper: freeze the rows of earlier tasks' classes in ``hf-classifier``'s linear
        head (module doc); the default label becomes ``o-lora+frozen-head``."""

        def __post_init__(self) -> None:
            if self.lam1 < 0 or self.lam2 < 0:
                raise ValueError(f"lam1 and lam2 must be >= 0, got {self.lam1}, {self.lam2}")
            if self.r < 1 or self.lora_alpha < 1:
                raise ValueError(f"r and lora_alpha must be >= 1, got {self.r}, {self.lora_alpha}")
            if not self.target_modules:
                raise ValueError("target_modules must name at least one module")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.n_trained = 0
        self.adapter_bytes: list[int] = []
        self.overlap: dict[str, float] = {}
        self.overlap_cos: dict[str, float] = {}
        self._pairs: list[tuple[torch.Tensor, list[torch.Tensor]]] = []  # (new A, old As) per layer
        self._new: list[torch.nn.Parameter] = []
        self._frozen_rows: list[int] = []  # head rows of earlier tasks' classes, frozen in this task
        self._frozen_values: tuple[torch.Tensor, torch.Tensor] | None = None  # their weight and bias

    @classmethod
    def default_label(cls, config: Config) -> str:
        """``o-lora``, or ``o-lora+frozen-head`` with ``protect_head`` (a component the paper lacks)."""
        return f"{cls.name}+frozen-head" if config.protect_head else cls.name

    def block(self) -> dict:
        return {"peft_type": "LORA", "r": self.config.r, "lora_alpha": self.config.lora_alpha,
                "target_modules": list(self.config.target_modules)}

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        name = adapter_name(task.id)
        add_adapter(backbone, name, self.block())
        self.activate_all(backbone, task.id)
        new = lora_a_matrices(backbone, name)
        old = [lora_a_matrices(backbone, adapter_name(i)) for i in range(task.id)]
        self._pairs = [(a, [previous[layer] for previous in old]) for layer, a in new.items()]
        self._new = list(adapter_parameters(backbone, name).values())
        self.freeze_old_rows(backbone, task, stream)

    def freeze_old_rows(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        """With ``protect_head``: remember which head rows to keep still in this task (earlier
        tasks' classes) and their values."""
        self._frozen_rows, self._frozen_values = [], None
        if not self.config.protect_head:
            return
        head = getattr(backbone.base_model, "classifier", None)
        if not isinstance(head, torch.nn.Linear):
            raise ConfigError(f"o-lora: protect_head freezes rows of a linear classifier head and this "
                              f"{backbone.name} backbone has none (head: label-embedding, or text-to-text); "
                              "set protect_head: false")
        old = sorted({c for t in stream if t.id < task.id for c in t.classes} - set(task.classes))
        if not old:
            return
        self._frozen_rows = old
        self._frozen_values = (head.weight.detach()[old].clone(), head.bias.detach()[old].clone())

    def before_step(self, backbone: Backbone, task: Task) -> None:
        """Zero the gradient of the frozen head rows."""
        if self._frozen_values is None:
            return
        head = backbone.base_model.classifier
        for param in (head.weight, head.bias):
            if param.grad is not None:
                param.grad[self._frozen_rows] = 0

    def activate_all(self, backbone: Backbone, last: int) -> None:
        """LoRAs 0..last active, only ``last`` trainable (and a shared linear head, if any)."""
        activate(backbone, [adapter_name(i) for i in range(last + 1)], trainable=adapter_name(last))
        head = getattr(backbone.base_model, "classifier", None)
        if isinstance(head, torch.nn.Linear):
            head.requires_grad_(True)
        elif head is not None and any(True for _ in head.parameters()):  # peft's per-adapter copies
            raise ConfigError("o-lora keeps every LoRA active, which peft's modules_to_save head copies "
                              "cannot follow; drop modules_to_save from the backbone's peft block")

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        terms = []
        if self.config.lam1 > 0 and task.id > 0:
            orth = sum((a_old @ a_new.T).abs().sum() for a_new, olds in self._pairs for a_old in olds)
            terms.append(self.config.lam1 * orth)
        if self.config.lam2 > 0:
            terms.append(self.config.lam2 * sum(p.norm() for p in self._new))
        return sum(terms) if terms else None

    def after_task(self, backbone: Backbone, task: Task) -> None:
        if self._frozen_values is not None:  # exact even where weight decay or carried momentum moved them
            head = backbone.base_model.classifier
            with torch.no_grad():
                head.weight[self._frozen_rows] = self._frozen_values[0].to(head.weight.device)
                head.bias[self._frozen_rows] = self._frozen_values[1].to(head.bias.device)
        self.adapter_bytes.append(parameter_bytes(adapter_parameters(backbone, adapter_name(task.id))))
        self.n_trained = task.id + 1
        new = lora_a_matrices(backbone, adapter_name(task.id))
        with torch.no_grad():
            for i in range(task.id):
                old = lora_a_matrices(backbone, adapter_name(i))
                pairs = [(old[layer].float(), a.float()) for layer, a in new.items()]
                self.overlap[f"{i}-{task.id}"] = float(sum((x @ y.T).abs().sum() for x, y in pairs))
                cosines = [torch.linalg.matrix_norm(F.normalize(x, dim=1) @ F.normalize(y, dim=1).T) / x.shape[0]
                           for x, y in pairs]
                self.overlap_cos[f"{i}-{task.id}"] = float(torch.stack(cosines).mean())

    def report(self) -> dict:
        return {"olora_overlap": dict(self.overlap), "olora_overlap_cos": dict(self.overlap_cos)}

    def restore(self, backbone: Backbone) -> None:
        """Re-create the finished tasks' LoRAs (their weights come from the checkpoint)."""
        for t in range(self.n_trained):
            add_adapter(backbone, adapter_name(t), self.block())
        if self.n_trained:
            self.activate_all(backbone, self.n_trained - 1)

    def extra_state_bytes(self) -> int:
        """Every finished task's LoRA (all are kept and run)."""
        return sum(self.adapter_bytes)

    def state_dict(self) -> dict:
        return {"n_trained": self.n_trained, "adapter_bytes": list(self.adapter_bytes),
                "overlap": dict(self.overlap), "overlap_cos": dict(self.overlap_cos)}

    def load_state_dict(self, state: dict) -> None:
        self.n_trained = int(state["n_trained"])
        self.adapter_bytes = [int(b) for b in state["adapter_bytes"]]
        self.overlap = {str(k): float(v) for k, v in state["overlap"].items()}
        self.overlap_cos = {str(k): float(v) for k, v in state["overlap_cos"].items()}
