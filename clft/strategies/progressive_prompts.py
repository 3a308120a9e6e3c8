"""``progressive-prompts``: a new soft prompt per task, prepended to the frozen prompts of earlier tasks.

Razdaibiedina et al. 2023, "Progressive Prompts: Continual Learning for
Language Models", ICLR. Task t learns a prompt P_t of ``prompt_length``
vectors (initialised from randomly drawn token embeddings); the input of task
t is [P'_t; P'_{t-1}; ...; P'_0; x], only task t's parameters train, the
backbone is frozen (a backbone without a peft block has every weight but the
head frozen; with one, peft decides) and the earlier prompts never change. At
test time task j's examples get [P'_j; ...; P'_0], the prefix they were trained
with: the method needs the task id (task-IL). With ``hf-classifier`` the one
masked head is shared; in task-IL only the rows of the current task's classes
get gradients, so with Adam (no weight decay) old tasks keep their exact
predictions.

Residual reparameterisation (``residual_mlp``, the paper's Section 3): while
task t trains, its prompt is

    P'_t = P_t + MLP(P_t),   MLP(p) = LayerNorm(W_up ReLU(W_down p + b_down) + b_up)

applied to each prompt vector, with W_down [``mlp_bottleneck``, H] (the
reference code's ``ResMLP`` "MLP1": bottleneck 800 by default, no dropout; its
T5 code ends the MLP with the LayerNorm, its BERT code does not:
``mlp_layer_norm: false``); P_t and a fresh MLP per task train together. After
the task P'_t is computed once and kept as the task's prompt (bit for bit from then on) and
the MLP is dropped, as the paper does. ``residual_mlp: null`` (default) takes
the paper's setting for the backbone: on for an encoder with a classification
head (``hf-classifier``; the paper reports the reparameterisation's ablation on
BERT-base), off for text-to-text backbones (T5 in the paper: the reference T5
script's ``--prefix_MLP`` defaults to None and its README's T5-large command
leaves it so); ``true``/``false`` force it.
Not copied from the reference BERT code: it appends the prompts after the text
and feeds its per-task head the output at the current task's first prompt
token (initialised as [CLS]); clft's shared head reads ``hf-classifier``'s
pooled embedding of [prompts; text].

The prompts are clft's own module (``clft.strategies._prompts``, which says why
not peft's PROMPT_TUNING), the submodule ``clft_progressive_prompts`` of the
transformers model (the training task's MLP is its ``mlp``, so the optimizer
sees it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.registry import strategies
from clft.strategies._prompts import PrefixHook, freeze_backbone, vocabulary_init
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import Backbone, Batch, Strategy, Task

MODULE = "clft_progressive_prompts"


class ResidualMLP(torch.nn.Module):
    """p -> p + LayerNorm(W_up ReLU(W_down p + b_down) + b_up), per prompt vector (without the norm when
    ``layer_norm`` is false)."""

    def __init__(self, hidden: int, bottleneck: int, layer_norm: bool = True) -> None:
        super().__init__()
        self.down = torch.nn.Linear(hidden, bottleneck)
        self.up = torch.nn.Linear(bottleneck, hidden)
        self.norm = torch.nn.LayerNorm(hidden) if layer_norm else torch.nn.Identity()

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        return prompt + self.norm(self.up(torch.relu(self.down(prompt))))


class PromptStack(torch.nn.Module):
    """``prompts[t]``: task t's prompt [prompt_length, hidden]; ``mlp``: the training task's ResidualMLP."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts = torch.nn.ParameterList()
        self.mlp: ResidualMLP | None = None


@strategies.register()
class ProgressivePrompts(Strategy):
    """One soft prompt per task; task j reads [P'_j; ...; P'_0; x]."""

    name = "progressive-prompts"
    requires_task_id = True
    conformance_backbone = TINY_TEXT_BACKBONE
    input_kind = "text"  # adapters/prompts of a transformer backbone
    conformance_benchmark = TINY_TEXT_BENCHMARK

    @dataclass
    class Config:
        prompt_length: int = 10
        """Vectors in each task's prompt."""
        residual_mlp: bool | None = None
        """Train each prompt as P' = P + MLP(P) and keep P'; null: on with hf-classifier, off text-to-text."""
        mlp_bottleneck: int = 800
        """Hidden width of the residual MLP (the reference code's default)."""
        mlp_layer_norm: bool = True
        """End the MLP with a LayerNorm (the reference T5 code's; its BERT code has none)."""

        def __post_init__(self) -> None:
            if self.prompt_length < 1:
                raise ValueError(f"prompt_length must be >= 1, got {self.prompt_length}")
            if self.mlp_bottleneck < 1:
                raise ValueError(f"mlp_bottleneck must be >= 1, got {self.mlp_bottleneck}")

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

    def effective(self, task_id: int) -> torch.Tensor:
        """P'_t: through the residual MLP while task t trains with one, else the kept prompt."""
        prompt = self.stack.prompts[task_id]
        training = self.stack.mlp is not None and task_id == len(self.stack.prompts) - 1
        return self.stack.mlp(prompt) if training else prompt

    def prefix(self, input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """[B, (v+1)·prompt_length, H]: [P'_v; ...; P'_0] for every example (v = the task viewed)."""
        joined = torch.cat([self.effective(i) for i in range(self.shown(), -1, -1)])
        return joined.unsqueeze(0).expand(input_ids.shape[0], -1, -1)

    def prefix_length(self) -> int:
        return (self.shown() + 1) * self.config.prompt_length

    def uses_mlp(self, backbone: Backbone) -> bool:
        """``residual_mlp``, or (null) whether the backbone is an encoder with a head (the paper's BERT)."""
        return hasattr(backbone, "embed") if self.config.residual_mlp is None else self.config.residual_mlp

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        self.attach(backbone)
        freeze_backbone(backbone)
        for prompt in self.stack.prompts:
            prompt.requires_grad_(False)
        prompt = torch.nn.Parameter(vocabulary_init(backbone, self.config.prompt_length))
        self.stack.prompts.append(prompt)
        if self.uses_mlp(backbone):
            mlp = ResidualMLP(prompt.shape[1], self.config.mlp_bottleneck, self.config.mlp_layer_norm)
            self.stack.mlp = mlp.to(prompt.device)
        self.view = task.id

    def after_task(self, backbone: Backbone, task: Task) -> None:
        """Keep P'_t as task t's prompt and drop the MLP."""
        prompt = self.stack.prompts[task.id]
        if self.stack.mlp is not None:
            with torch.no_grad():
                prompt.copy_(self.stack.mlp(prompt))
            self.stack.mlp = None
        self.prompt_bytes.append(prompt.numel() * prompt.element_size())
        self.n_trained = task.id + 1

    def predict(self, backbone: Backbone, batch: Batch, task: Task, scenario: str) -> torch.Tensor:
        training_view, self.view = self.view, task.id
        try:
            return backbone.predict(batch, task, scenario)
        finally:
            self.view = training_view

    def restore(self, backbone: Backbone) -> None:
        """Re-create the finished tasks' prompts, P' (their values come from the checkpoint)."""
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
