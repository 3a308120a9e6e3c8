"""``adapter-per-task``: a fresh peft adapter (with its own head) per task, never changed again.

Parameter isolation with PEFT modules, as in AdapterCL (Madotto et al. 2021,
"Continual Learning in Task-Oriented Dialogue Systems", EMNLP): task t trains
only adapter ``task<t>`` (peft's named adapters, see ``clft.strategies._peft``);
the pretrained weights stay frozen. The default adapter is LoRA (r 8 on
query/value) with ``modules_to_save: [classifier]``, so each adapter carries
its own copy of ``hf-classifier``'s head: nothing trainable is shared, which
``before_task`` checks (a ConfigError names any shared trainable parameter).
An adapter is frozen as soon as the next task's adapter becomes the active one
(until then it keeps ``requires_grad``, so the task-end checkpoint holds it).
Adapter types are peft's injected ones (LoRA, IA3, ...), not prompt learning.

Prediction:

- task-IL: the example's task id picks its adapter (evaluation batches come
  from one task), so old tasks compute exactly what they computed after their
  own training: BWT = 0 exactly.
- class-IL / domain-IL, task inference by nearest class prototype: after task
  t the mean embedding of each of its classes is stored (``backbone.embed``
  with adapter t, L2-normalised). At test time every example is embedded with
  each adapter t; its task is the t whose closest prototype (cosine) is the
  most similar, and its label the argmax of that adapter's head over task t's
  classes. Costs one forward pass per trained task; needs ``hf-classifier``.

``report()`` gives ``task_inference_acc``: the share of test examples (every
task of the stream) whose inferred task is their own, measured in the
evaluation after the final task; ``task_inference_acc_by_task[i]`` is the same
in the evaluation after task i, over the examples of tasks 0..i.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from clft.errors import ConfigError
from clft.registry import strategies
from clft.strategies._peft import activate, adapter_name, adapter_parameters, add_adapter, parameter_bytes
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import Backbone, Batch, Strategy, Task

DEFAULT_PEFT = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["query", "value"],
                "modules_to_save": ["classifier"]}
PROMPT_LEARNING = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}


@strategies.register()
class AdapterPerTask(Strategy):
    """One adapter and head per task; the task id (task-IL) or the nearest prototype picks it."""

    name = "adapter-per-task"
    conformance_backbone = TINY_TEXT_BACKBONE
    input_kind = "text"  # adapters/prompts of a transformer backbone
    conformance_benchmark = TINY_TEXT_BENCHMARK

    @dataclass
    class Config:
        peft: dict | None = field(default_factory=lambda: dict(DEFAULT_PEFT))
        """Each task's adapter, a peft config block passed verbatim; null: the backbone's own peft block."""
        batch_size: int = 64
        """Examples per forward pass when computing the class prototypes."""

        def __post_init__(self) -> None:
            if self.peft is not None and "peft_type" not in self.peft:
                raise ValueError("the peft block needs a 'peft_type' (e.g. LORA)")
            if self.peft is not None and str(self.peft["peft_type"]).upper() in PROMPT_LEARNING:
                raise ValueError("prompt-learning peft types run one adapter at a time; use progressive-prompts")
            if self.batch_size < 1:
                raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.n_trained = 0
        self.adapter_bytes: list[int] = []  # per finished task: its adapter (and head copy)
        self.prototypes: list[dict] = []  # per finished task: {"classes": [C], "means": [C, H]} (not task-IL)
        self.inference: list[list[int]] = []  # per evaluation after task i: [correct, counted]

    def block(self, backbone: Backbone) -> dict:
        block = self.config.peft or getattr(backbone.config, "peft", None)
        if block is None:
            raise ConfigError("adapter-per-task: peft is null and the backbone has no peft block; give one")
        return block

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        if backbone.label_space.scenario != "task-il" and not hasattr(backbone, "embed"):
            raise ConfigError(f"adapter-per-task infers the task from embeddings; {backbone.name} has no embed(), "
                              "use scenario task-il or hf-classifier")
        name = adapter_name(task.id)
        add_adapter(backbone, name, self.block(backbone))
        activate(backbone, [name], trainable=name)
        check_isolated(backbone, name)

    def after_task(self, backbone: Backbone, task: Task) -> None:
        self.adapter_bytes.append(parameter_bytes(adapter_parameters(backbone, adapter_name(task.id))))
        self.n_trained = task.id + 1
        if backbone.label_space.scenario != "task-il":
            self.prototypes.append(class_prototypes(backbone, task, self.config.batch_size))

    def predict(self, backbone: Backbone, batch: Batch, task: Task, scenario: str) -> torch.Tensor:
        if self.n_trained == 0:
            return backbone.predict(batch, task, scenario)
        current = adapter_name(self.n_trained - 1)
        try:
            if scenario == "task-il":
                activate(backbone, [adapter_name(min(task.id, self.n_trained - 1))])
                return backbone.predict(batch, task, scenario)
            return self.infer(backbone, batch)
        finally:
            activate(backbone, [current], trainable=current)

    def infer(self, backbone: Backbone, batch: Batch) -> torch.Tensor:
        """Label ids [B] through the adapter of each example's nearest-prototype task (module docstring)."""
        scores, labels = [], []
        for t, proto in enumerate(self.prototypes):
            activate(backbone, [adapter_name(t)])
            embedding = backbone.embed(batch)
            classes = proto["classes"].to(embedding.device)
            similarity = F.normalize(embedding.float(), dim=-1) @ proto["means"].to(embedding.device).T
            scores.append(similarity.max(dim=-1).values)
            labels.append(classes[backbone.head(embedding)[:, classes].argmax(dim=-1)])
        chosen = torch.stack(scores).argmax(dim=0)
        self.count(batch, chosen)
        return torch.stack(labels).gather(0, chosen.unsqueeze(0)).squeeze(0)

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


@torch.no_grad()
def class_prototypes(backbone: Backbone, task: Task, batch_size: int) -> dict:
    """{"classes": LongTensor [C], "means": [C, H]}: L2-normalised mean embedding of each class of ``task.train``."""
    data = backbone.prepare(task.train)
    was_training = backbone.model.training
    backbone.model.eval()
    try:
        chunks = [backbone.collate(data[i : i + batch_size]) for i in range(0, len(data), batch_size)]
        embeddings = torch.cat([backbone.embed(batch).float() for batch in chunks])
        labels = torch.cat([batch["label"] for batch in chunks])
    finally:
        backbone.model.train(was_training)
    classes = sorted(task.classes)
    means = torch.stack([embeddings[labels == c].mean(dim=0) for c in classes])
    return {"classes": torch.tensor(classes, dtype=torch.long), "means": F.normalize(means, dim=-1).cpu()}
