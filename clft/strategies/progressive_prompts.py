"""``progressive-prompts``: a new soft prompt per task, prepended to the frozen prompts of earlier tasks.

Razdaibiedina et al. 2023, "Progressive Prompts: Continual Learning for
Language Models", ICLR. Task t learns a prompt P_t of ``prompt_length``
vectors (initialised from randomly drawn token embeddings); the input of task
t is [P_t; P_{t-1}; ...; P_0; x], only P_t trains, the backbone is frozen (a
backbone without a peft block has every weight but the head frozen; with one,
peft decides) and the earlier prompts never change. At test time task j's
examples get [P_j; ...; P_0], the prefix they were trained with: the method
needs the task id (task-IL). With ``hf-classifier`` the one masked head is
shared; in task-IL only the rows of the current task's classes get gradients,
so with Adam (no weight decay) old tasks keep their exact predictions.

The prompts are clft's own module (``clft.strategies._prompts``, which says why
not peft's PROMPT_TUNING), the submodule ``clft_progressive_prompts`` of the
transformers model; the paper's residual MLP reparameterisation is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.registry import strategies
from clft.strategies._prompts import PrefixHook, freeze_backbone, vocabulary_init
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import Backbone, Batch, Strategy, Task

MODULE = "clft_progressive_prompts"


class PromptStack(torch.nn.Module):
    """``prompts[t]``: task t's prompt [prompt_length, hidden]."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts = torch.nn.ParameterList()


@strategies.register()
class ProgressivePrompts(Strategy):
    """One soft prompt per task; task j reads [P_j; ...; P_0; x]."""

    name = "progressive-prompts"
    requires_task_id = True
    conformance_backbone = TINY_TEXT_BACKBONE
    input_kind = "text"  # adapters/prompts of a transformer backbone
    conformance_benchmark = TINY_TEXT_BENCHMARK

    @dataclass
    class Config:
        prompt_length: int = 10
        """Vectors in each task's prompt."""

        def __post_init__(self) -> None:
            if self.prompt_length < 1:
                raise ValueError(f"prompt_length must be >= 1, got {self.prompt_length}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.n_trained = 0
        self.prompt_bytes: list[int] = []  # per finished task: its prompt
        self.view = 0  # the task whose prefix is used: the one training, or the one evaluated
        self.hook: PrefixHook | None = None
        self.stack: PromptStack | None = None

    def attach(self, backbone: Backbone) -> None:
        if self.hook is None or not self.hook.attached_to(backbone):
            base = backbone.base_model
            if not hasattr(base, MODULE):
                base.add_module(MODULE, PromptStack())
            self.stack = getattr(base, MODULE)
            self.hook = PrefixHook(backbone, self.prefix, self.prefix_length)

    def shown(self) -> int:
        return min(self.view, len(self.stack.prompts) - 1)

    def prefix(self, input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """[B, (v+1)·prompt_length, H]: [P_v; ...; P_0] for every example (v = the task viewed)."""
        prompts = self.stack.prompts
        joined = torch.cat([prompts[i] for i in range(self.shown(), -1, -1)])
        return joined.unsqueeze(0).expand(input_ids.shape[0], -1, -1)

    def prefix_length(self) -> int:
        return (self.shown() + 1) * self.config.prompt_length

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        self.attach(backbone)
        freeze_backbone(backbone)
        for prompt in self.stack.prompts:
            prompt.requires_grad_(False)
        self.stack.prompts.append(torch.nn.Parameter(vocabulary_init(backbone, self.config.prompt_length)))
        self.view = task.id

    def after_task(self, backbone: Backbone, task: Task) -> None:
        prompt = self.stack.prompts[task.id]
        self.prompt_bytes.append(prompt.numel() * prompt.element_size())
        self.n_trained = task.id + 1

    def predict(self, backbone: Backbone, batch: Batch, task: Task, scenario: str) -> torch.Tensor:
        training_view, self.view = self.view, task.id
        try:
            return backbone.predict(batch, task, scenario)
        finally:
            self.view = training_view

    def restore(self, backbone: Backbone) -> None:
        """Re-create the finished tasks' prompts (their values come from the checkpoint)."""
        self.attach(backbone)
        freeze_backbone(backbone)
        embeddings = backbone.base_model.get_input_embeddings().weight
        for _ in range(self.n_trained):
            shape = (self.config.prompt_length, embeddings.shape[1])
            self.stack.prompts.append(torch.nn.Parameter(embeddings.new_zeros(shape, dtype=torch.float32)))
        self.view = self.n_trained - 1

    def extra_state_bytes(self) -> int:
        """The finished tasks' prompts."""
        return sum(self.prompt_bytes)

    def state_dict(self) -> dict:
        return {"n_trained": self.n_trained, "prompt_bytes": list(self.prompt_bytes)}

    def load_state_dict(self, state: dict) -> None:
        self.n_trained = int(state["n_trained"])
        self.prompt_bytes = [int(b) for b in state["prompt_bytes"]]
