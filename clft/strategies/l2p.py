"""``l2p``: Learning to Prompt, a shared pool of key-value prompts chosen per example.

Wang et al. 2022, "Learning to Prompt for Continual Learning", CVPR. A pool of
``pool_size`` prompts (each ``prompt_length`` vectors, initialised from
randomly drawn token embeddings) with one key each (uniform in [-1, 1]).
For an input x the query q(x) is the frozen backbone's feature of x without
prompts (mean of the last hidden states over real tokens, no gradient, eval
mode); the ``top_n`` prompts whose keys are nearest q(x) in cosine distance
γ(q, k) = 1 − cos(q, k) (the paper's Eq. 3) are concatenated and prepended to
x's embeddings. The loss adds the surrogate

    λ · mean_x Σ_{k ∈ selected(x)} (1 − cos(q(x), k))

pulling the chosen keys towards the queries that chose them. The pool, the
keys and the head train on every task; the backbone is frozen (without a peft
block every weight but the head; with one, peft decides, and the query then
runs through the adapter too). No task id is used, so it runs in class-IL.

What the classifier reads (the paper's and the reference code's ``prompt``
head of the ViT): with ``hf-classifier`` the head's input, in training and
prediction, is the mean of the last hidden states at the selected prompts'
positions only, not at the text tokens (l2p sets the backbone's
``pool_prefix``). A text-to-text backbone (``hf-seq2seq``, ``hf-causal-lm``)
has no head: its LM reads its last positions as before, the prompts in front.

``frequency_penalty`` (default off): the paper's optional diversified
selection (its Eq. 4). While training task t the selection minimises
Σ_{i ∈ selected} γ(q(x), k_i) · h_i, i.e. it takes the ``top_n`` prompts with
the smallest γ(q(x), k_i) · h_i (ties by γ), where h_i is the normalised
frequency with which prompt i was chosen while training tasks 0..t−1
(``l2p_prompt_use`` before task t, divided by its sum), so often-used prompts
are penalised (one never chosen has h = 0 and comes first); task 0 and
prediction use Eq. 3. The paper offers it where task
boundaries are known; the reference code (google-research/l2p) realises it as a
per-task prompt mask (``use_prompt_mask``) and turns it on for 5-datasets only,
off for Split CIFAR-100, CORe50 and Gaussian-scheduled CIFAR-100.

``train_mask`` (default on, as in the reference code's ``train_mask``):
while training task t the cross-entropy sees only task t's classes (the other
logits masked out), so in class-IL the new classes are not trained against
the old ones. With a classifier backbone (``allowed``/``logits``) the
strategy's ``loss`` hook replaces the main loss with CE_t of the step's
``outputs.logits`` (no second forward pass). Not implemented: the reference
code's ``batchwise_prompt`` (every example of a batch gets the batch's N most
chosen prompts), which the paper does not describe.

``report()`` gives ``l2p_prompt_use``: how many times each prompt was chosen
while training (all tasks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clft.registry import strategies
from clft.strategies._prompts import PrefixHook, freeze_backbone, mean_pool, vocabulary_init
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import Backbone, Batch, Outputs, Strategy, Task

MODULE = "clft_l2p_pool"


class PromptPool(torch.nn.Module):
    """``prompts`` [M, prompt_length, H] and their ``keys`` [M, H]."""

    def __init__(self, size: int, length: int, hidden: int) -> None:
        super().__init__()
        self.prompts = torch.nn.Parameter(torch.zeros(size, length, hidden))
        self.keys = torch.nn.Parameter(torch.zeros(size, hidden))


@strategies.register()
class L2P(Strategy):
    """A pool of prompts; each example uses the top-N whose keys match its frozen feature."""

    name = "l2p"
    conformance_backbone = TINY_TEXT_BACKBONE
    input_kind = "text"  # adapters/prompts of a transformer backbone
    conformance_benchmark = TINY_TEXT_BENCHMARK

    @dataclass
    class Config:
        pool_size: int = 10
        """M, prompts in the pool."""
        prompt_length: int = 5
        """Vectors per prompt."""
        top_n: int = 5
        """N, prompts chosen per example (≤ pool_size)."""
        lam: float = 0.1
        """λ, weight of the key-matching surrogate loss."""
        train_mask: bool = True
        """While training, the cross-entropy sees only the current task's classes (the reference code's)."""
        frequency_penalty: bool = False
        """While training task t, select by cosine distance x the normalised frequency of each prompt's use in
        tasks 0..t-1 (the paper's optional diversified selection, Eq. 4)."""

        def __post_init__(self) -> None:
            if min(self.pool_size, self.prompt_length, self.top_n) < 1:
                raise ValueError("pool_size, prompt_length and top_n must be >= 1")
            if self.top_n > self.pool_size:
                raise ValueError(f"top_n ({self.top_n}) must not exceed pool_size ({self.pool_size})")
            if self.lam < 0:
                raise ValueError(f"lam must be >= 0, got {self.lam}")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.n_trained = 0
        self.pool_bytes = 0
        self.use = [0] * config.pool_size
        self.hook: PrefixHook | None = None
        self.pool: PromptPool | None = None
        self.matched: torch.Tensor | None = None  # cos(q, k) of the last forward's chosen keys [B, N]
        self.frequency: torch.Tensor | None = None  # h [M], this task's Eq. 4 weights (frequency_penalty)

    def attach(self, backbone: Backbone) -> None:
        """Create the pool (zeros) under the transformers model and hook it in, once per backbone."""
        if self.hook is not None and self.hook.attached_to(backbone):
            return
        base = backbone.base_model
        hidden = base.get_input_embeddings().weight.shape[1]
        pool = PromptPool(self.config.pool_size, self.config.prompt_length, hidden)
        base.add_module(MODULE, pool.to(base.get_input_embeddings().weight.device))
        self.pool = getattr(base, MODULE)
        self.hook = PrefixHook(backbone, self.prefix, lambda: self.config.top_n * self.config.prompt_length)
        if hasattr(backbone, "pool_prefix"):  # hf-classifier: the head reads the prompts' outputs
            backbone.pool_prefix = True

    def query(self, input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """q(x) [B, H]: unit-length mean feature of the model without prompts (a decoder-only model: its
        last hidden states), in eval mode, no grad."""
        target, decoder_only = self.hook.target, self.hook.decoder_only
        was_training = target.training
        target.eval()
        try:
            with torch.no_grad(), self.hook.paused():
                out = target(input_ids=input_ids, attention_mask=mask, output_hidden_states=decoder_only)
                hidden = out.hidden_states[-1] if decoder_only else out[0]
        finally:
            target.train(was_training)
        return F.normalize(mean_pool(hidden, mask).float(), dim=-1)

    def prefix(self, input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """[B, N·prompt_length, H]: each example's N prompts (``select``)."""
        similarity = self.query(input_ids, mask) @ F.normalize(self.pool.keys, dim=-1).T  # [B, M]
        chosen = self.select(similarity, self.frequency if torch.is_grad_enabled() else None)  # [B, N]
        if torch.is_grad_enabled():
            self.matched = similarity.gather(1, chosen)
            for index, n in enumerate(torch.bincount(chosen.flatten(), minlength=self.config.pool_size).tolist()):
                self.use[index] += n
        return self.pool.prompts[chosen].flatten(1, 2)

    def select(self, similarity: torch.Tensor, frequency: torch.Tensor | None) -> torch.Tensor:
        """[B, N] prompt indices: the N nearest keys (Eq. 3), or with ``frequency`` h the N smallest
        γ·h, γ = 1 − cos(q, k), ties broken by γ (Eq. 4)."""
        if frequency is None:
            return similarity.topk(self.config.top_n, dim=-1).indices
        distance = 1.0 - similarity
        by_distance = distance.argsort(dim=-1)
        weighted = (distance * frequency.to(distance.device)).gather(1, by_distance)
        return by_distance.gather(1, weighted.argsort(dim=-1, stable=True)[:, : self.config.top_n])

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        total = sum(self.use)
        penalise = self.config.frequency_penalty and total > 0  # no earlier task: Eq. 3
        self.frequency = torch.tensor(self.use, dtype=torch.float32) / total if penalise else None
        first = self.hook is None
        self.attach(backbone)
        if first and self.n_trained == 0:
            size, length, hidden = self.pool.prompts.shape
            with torch.no_grad():
                self.pool.prompts.copy_(vocabulary_init(backbone, size * length).view(size, length, hidden))
                self.pool.keys.uniform_(-1.0, 1.0)
        freeze_backbone(backbone)
        self.pool.requires_grad_(True)

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        """λ · mean_x Σ (1 − cos(q, k)) over the chosen keys."""
        matched, self.matched = self.matched, None
        if matched is None or self.config.lam == 0:
            return None
        return self.config.lam * (1.0 - matched).sum(dim=1).mean()

    def loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> torch.Tensor | None:
        """``train_mask``: CE over task t's classes (∩ the allowed ones) of the step's logits; None (the
        backbone's loss) where nothing is masked: first task, task-IL, domain-IL, or no class logits."""
        if not self.config.train_mask or outputs.logits is None or not hasattr(backbone, "allowed"):
            return None
        allowed = backbone.allowed(batch, task)
        current = torch.zeros_like(allowed)
        current[:, list(task.classes)] = True
        current &= allowed
        if torch.equal(current, allowed):
            return None
        logits = outputs.logits.float()
        low = torch.finfo(logits.dtype).min / 2  # finite, like the backbones' masks
        return F.cross_entropy(logits.masked_fill(~current, low), batch["label"])

    def after_task(self, backbone: Backbone, task: Task) -> None:
        self.n_trained = task.id + 1
        self.pool_bytes = sum(p.numel() * p.element_size() for p in self.pool.parameters())

    def report(self) -> dict:
        return {"l2p_prompt_use": list(self.use)}

    def restore(self, backbone: Backbone) -> None:
        """Re-create the pool (its values come from the checkpoint)."""
        if self.n_trained:
            self.attach(backbone)
            freeze_backbone(backbone)
            self.pool.requires_grad_(True)

    def extra_state_bytes(self) -> int:
        """The prompt pool and its keys."""
        return self.pool_bytes

    def state_dict(self) -> dict:
        return {"n_trained": self.n_trained, "pool_bytes": self.pool_bytes, "use": list(self.use)}

    def load_state_dict(self, state: dict) -> None:
        self.n_trained = int(state["n_trained"])
        self.pool_bytes = int(state["pool_bytes"])
        self.use = [int(n) for n in state["use"]]
