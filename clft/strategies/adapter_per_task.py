"""``adapter-per-task``: a fresh peft adapter (with its own head) per task, never changed again.

AdapterCL (Madotto et al. 2021, "Continual Learning in Task-Oriented Dialogue
Systems", EMNLP): task t trains only adapter ``task<t>`` (peft's named
adapters, ``clft.strategies._peft``) over the frozen pretrained weights. The
default adapter is LoRA (r 8 on query/value) with ``modules_to_save:
[classifier]``, so each adapter has its own copy of ``hf-classifier``'s head;
nothing trainable is shared (``before_task`` checks; a ConfigError names any
shared parameter). An adapter is frozen once the next task's is active.

Prediction (``predict``), per evaluation batch of task k after n trained tasks:

- k >= n (a task no adapter was trained on: a later task of the stream, or a
  held-out general-ability task, whose ids follow the stream's): the base
  model, every adapter disabled (peft's ``disable_adapter``), in every scenario.
- task-IL: adapter k (its task id), so old tasks compute exactly what they
  computed after their own training: BWT = 0.
- class-IL / domain-IL: every trained adapter t scores each example; the
  lowest score picks the adapter, whose answer is the prediction.
  ``selector: confidence`` (default, AdapterCL: the adapter under which the
  model is most confident): a classifier's entropy of the softmax over task
  t's classes, divided by log C_t so that tasks with different class counts
  compare on [0, 1] (a uniform answer scores 1 whatever C_t; without it a
  2-class adapter would look more confident than a 10-class one); text-to-text
  backbones the perplexity of the adapter's answer, exp(-label_scores[best] /
  target_lengths[best]) with best the rank-classification answer among task
  t's classes (the adapter was trained on those labels only), or for a
  generation task of its greedy generation (``continuation_nll``). The label
  is that answer. AdapterCL scores the perplexity of the *input* (dialogue
  history), as its adapters are trained on the whole sequence; clft's
  text-to-text backbones train on the target only, so the perplexity of the
  answer is the quantity an adapter was trained to lower.
  ``selector: prototype``: after task t the L2-normalised mean embedding of
  each class (``backbone.embed`` under adapter t) is kept; an example goes to
  the adapter whose nearest prototype (cosine) is the closest, the label is
  the argmax of that adapter's head over task t's classes (``hf-classifier``).
  Either costs one forward pass (or generation) per trained task.

``report()`` gives ``task_inference_acc``: the share of test examples of trained
tasks routed to their own task's adapter, in the evaluation after the final
task; ``task_inference_acc_by_task[i]`` is the same after task i.
"""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._adapter_selection import (
    class_prototypes,
    entropy_score,
    generation_score,
    pick,
    prototype_score,
    rank_score,
)
from clft.strategies._peft import (
    activate,
    adapter_name,
    adapter_parameters,
    adapters_disabled,
    add_adapter,
    parameter_bytes,
)
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import Backbone, Batch, Strategy, Task

DEFAULT_PEFT = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["query", "value"],
                "modules_to_save": ["classifier"]}
PROMPT_LEARNING = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}
SELECTORS = ("confidence", "prototype")


@strategies.register()
class AdapterPerTask(Strategy):
    """One adapter and head per task; the task id (task-IL) or the most confident adapter picks it."""

    name = "adapter-per-task"
    conformance_backbone = TINY_TEXT_BACKBONE
    input_kind = "text"  # adapters/prompts of a transformer backbone
    conformance_benchmark = TINY_TEXT_BENCHMARK

    @dataclass
    class Config:
        peft: dict | None = field(default_factory=lambda: dict(DEFAULT_PEFT))
        """Each task's adapter, a peft config block passed verbatim; null: the backbone's own peft block."""
        selector: Literal["confidence", "prototype"] = "confidence"
        """class-IL / domain-IL: the adapter of lowest entropy / perplexity (AdapterCL), or of the nearest class
        prototype (hf-classifier only)."""
        batch_size: int = 64
        """Examples per forward pass when computing the class prototypes (selector prototype)."""

        def __post_init__(self) -> None:
            if self.peft is not None and "peft_type" not in self.peft:
                raise ValueError("the peft block needs a 'peft_type' (e.g. LORA)")
            if self.peft is not None and str(self.peft["peft_type"]).upper() in PROMPT_LEARNING:
                raise ValueError("prompt-learning peft types run one adapter at a time; use progressive-prompts")
            if self.selector not in SELECTORS:
                raise ValueError(f"selector {self.selector!r} is not one of {', '.join(SELECTORS)}")
            if self.batch_size < 1:
                raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.n_trained = 0
        self.adapter_bytes: list[int] = []  # per finished task: its adapter (and head copy)
        self.prototypes: list[dict] = []  # per finished task: {"classes": [C], "means": [C, H]} (selector prototype)
        self.inference: list[list[int]] = []  # per evaluation after task i: [correct, counted]

    def block(self, backbone: Backbone) -> dict:
        block = self.config.peft or getattr(backbone.config, "peft", None)
        if block is None:
            raise ConfigError("adapter-per-task: peft is null and the backbone has no peft block; give one")
        return block

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        if backbone.label_space.scenario != "task-il":
            check_selectable(backbone, self.config.selector)
        name = adapter_name(task.id)
        add_adapter(backbone, name, self.block(backbone))
        activate(backbone, [name], trainable=name)
        check_isolated(backbone, name)

    def after_task(self, backbone: Backbone, task: Task) -> None:
        self.adapter_bytes.append(parameter_bytes(adapter_parameters(backbone, adapter_name(task.id))))
        self.n_trained = task.id + 1
        if backbone.label_space.scenario != "task-il" and self.config.selector == "prototype":
            self.prototypes.append(class_prototypes(backbone, task, self.config.batch_size))

    def predict(self, backbone: Backbone, batch: Batch, task: Task, scenario: str) -> torch.Tensor | list[str]:
        if self.n_trained == 0:
            return backbone.predict(batch, task, scenario)
        current = adapter_name(self.n_trained - 1)
        try:
            if task.id >= self.n_trained:  # no adapter was trained on this task: the base model
                with adapters_disabled(backbone):
                    return backbone.predict(batch, task, scenario)
            if scenario == "task-il":
                activate(backbone, [adapter_name(task.id)])
                return backbone.predict(batch, task, scenario)
            return self.infer(backbone, batch, task)
        finally:
            activate(backbone, [current], trainable=current)

    def infer(self, backbone: Backbone, batch: Batch, task: Task) -> torch.Tensor | list[str]:
        """Each example's answer from the trained adapter of lowest score (module docstring)."""
        candidates = [t for t in range(self.n_trained) if task.generative or backbone.label_space.task_classes[t]]
        scores, predictions = [], []
        for t in candidates:
            activate(backbone, [adapter_name(t)])
            score, prediction = self.score(backbone, batch, task, t)
            scores.append(score)
            predictions.append(prediction)
        best = torch.stack(scores).argmin(dim=0)  # index into candidates; ties: the earliest task
        self.count(batch, torch.as_tensor(candidates, device=best.device)[best])
        return pick(predictions, best)

    def score(self, backbone: Backbone, batch: Batch, task: Task, t: int) -> tuple:
        """(score [B], prediction) of adapter t, the active one: lower scores claim the example."""
        if self.config.selector == "prototype":
            return prototype_score(backbone, batch, self.prototypes[t])
        if task.generative:
            return generation_score(backbone, batch, task)
        classes = torch.tensor(sorted(backbone.label_space.task_classes[t]), dtype=torch.long)
        if hasattr(backbone, "label_scores"):
            return rank_score(backbone, batch, classes)
        return entropy_score(backbone, batch, classes)

    def count(self, batch: Batch, chosen: torch.Tensor) -> None:
        """Add this batch's task-inference hits to the current evaluation's tally (seen tasks only)."""
        while len(self.inference) < self.n_trained:
            self.inference.append([0, 0])
        true = batch["task"].to(chosen.device)
        seen = true < self.n_trained
        self.inference[self.n_trained - 1][0] += int((chosen == true)[seen].sum())
        self.inference[self.n_trained - 1][1] += int(seen.sum())

    def report(self) -> dict:
        if not self.inference:
            return {}
        by_task = [correct / counted if counted else None for correct, counted in self.inference]
        return {"task_inference_acc": by_task[-1], "task_inference_acc_by_task": by_task}

    def restore(self, backbone: Backbone) -> None:
        """Re-create the finished tasks' adapters (their weights come from the checkpoint)."""
        for t in range(self.n_trained):
            add_adapter(backbone, adapter_name(t), self.block(backbone))
        if self.n_trained:
            last = adapter_name(self.n_trained - 1)
            activate(backbone, [last], trainable=last)

    def extra_state_bytes(self) -> int:
        """Every finished task's adapter and head copy, plus the class prototypes."""
        prototypes = sum(p["means"].numel() * p["means"].element_size() for p in self.prototypes)
        return sum(self.adapter_bytes) + prototypes

    def state_dict(self) -> dict:
        prototypes = [{k: v.detach().cpu().clone() for k, v in p.items()} for p in self.prototypes]
        return {"n_trained": self.n_trained, "adapter_bytes": list(self.adapter_bytes), "prototypes": prototypes,
                "inference": [list(row) for row in self.inference]}

    def load_state_dict(self, state: dict) -> None:
        self.n_trained = int(state["n_trained"])
        self.adapter_bytes = [int(b) for b in state["adapter_bytes"]]
        self.prototypes = [{k: v.detach().cpu().clone() for k, v in p.items()} for p in state["prototypes"]]
        self.inference = [[int(c), int(n)] for c, n in state["inference"]]


def check_isolated(backbone: Backbone, name: str) -> None:
    """ConfigError unless adapter ``name`` holds every trainable parameter and its own head."""
    shared = [n for n, p in backbone.model.named_parameters() if p.requires_grad and f".{name}." not in n]
    if shared:
        raise ConfigError(f"adapter-per-task: {len(shared)} trainable parameter(s) outside adapter {name!r} "
                          f"(e.g. {shared[0]}) would be shared by every task; freeze them or put their module "
                          "in the peft block's modules_to_save")
    if isinstance(getattr(backbone.base_model, "classifier", None), torch.nn.Linear):
        raise ConfigError("adapter-per-task: the head 'classifier' is not in the peft block's modules_to_save, "
                          "so no task could train it; add modules_to_save: [classifier]")



def check_selectable(backbone: Backbone, selector: str) -> None:
    """ConfigError unless ``backbone`` offers what ``selector`` scores adapters with (class-IL / domain-IL)."""
    if selector == "prototype" and not hasattr(backbone, "embed"):
        raise ConfigError(f"adapter-per-task: selector prototype needs embeddings; {backbone.name} has no embed(), "
                          "use hf-classifier, selector confidence or scenario task-il")
    text = hasattr(backbone, "label_scores")
    if selector == "confidence" and not text and getattr(backbone, "kind", None) != "classifier":
        raise ConfigError(f"adapter-per-task: selector confidence needs class logits (hf-classifier) or rank "
                          f"classification (label_scores: hf-causal-lm, hf-seq2seq); {backbone.name} has neither, "
                          "use scenario task-il")
