"""``hf-classifier``: a transformers encoder (``AutoModel``) + a classification head, optional PEFT.

Input: the example's ``text`` (an ``instruction`` column, if any, is not used),
tokenised once by ``prepare`` with the model's special tokens and truncated to
``max_length``; batches are padded to their longest example (``padding:
longest``) or to ``max_length`` (``padding: max_length``, static shapes).
The text embedding e(x) is the mean of the last hidden states over real tokens
(``pooling: mean``, how sentence-transformers' MiniLM was trained) or the first
token's state (``pooling: cls``).

The head (``head``) scores every one of the ``len(benchmark.label_names)``
classes of the stream:

- ``linear`` (default): logits = W e(x) + b, one trained linear layer;
- ``label-embedding``: logits[b, c] = cos(e(x_b), e(w_c)) / ``temperature``,
  w_c the label word of class c (``clft.backbones.hf_common.label_words``: the
  benchmark's ``label_texts``, else its label name made a phrase). The e(w_c)
  are computed once, when the backbone is built, by the pretrained encoder
  (before any adapter, in eval mode, without gradient) and kept as a buffer
  of the head: never trained, moved by ``.to(device)``, recomputed (not
  saved) at every build. Nothing in this head trains, so a strategy that
  must not train a shared head (o-lora, as its paper has none) can run on
  an encoder: a class is the text its name is closest to, as in zero-shot
  classification with sentence embeddings.

Either way the logits are masked per example by the runner's ``LabelSpace``
(task-IL: the example's own task's classes; class-IL: every class seen so far,
all before training; domain-IL: all). Not-allowed logits are set to
``finfo.min / 2`` before the cross-entropy in ``loss`` and the argmax in
``predict``.

The head is attached to the transformers model as its submodule ``classifier``
before peft wrapping, so ``backbone.model`` (the ``PeftModel`` when a ``peft``
block is given) holds, moves, saves and lists every trainable weight;
``backbone.head`` is that module (embeddings [B, hidden] -> logits [B, C]).
With a peft block only the adapter and a linear head train; without one the
whole model trains. ``modules_to_save: [classifier]`` in the peft block gives
every named adapter its own copy of a linear head (peft's mechanism, used by
adapter-per-task strategies); the head is always called through the model, so
the active adapter's copy is the one used. With ``head: label-embedding`` there
is nothing to copy, and ``modules_to_save: [classifier]`` is a ConfigError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from clft.backbones.hf_common import HFBackbone, HFConfig, label_words, load_model, mask_logits, pad, wrap_peft
from clft.errors import ConfigError
from clft.registry import backbones
from clft.strategies._importance import PER_EXAMPLE
from clft.types import Batch, Benchmark, Outputs, Task

HEAD = "classifier"
LABEL_BATCH = 256  # label words embedded per forward pass when the head is built


class LabelEmbeddingHead(torch.nn.Module):
    """logits[b, c] = cos(x_b, e_c) / temperature for embeddings x [B, H] and the fixed label
    embeddings e [C, H] (a buffer, stored L2-normalised; nothing trains)."""

    def __init__(self, label_embeddings: torch.Tensor, temperature: float) -> None:
        super().__init__()
        unit = F.normalize(label_embeddings.detach().float(), dim=-1).to(label_embeddings.dtype)
        self.register_buffer("label_embeddings", unit, persistent=False)
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        labels = self.label_embeddings.to(embeddings.dtype)
        return F.normalize(embeddings, dim=-1) @ labels.T / self.temperature

    def extra_repr(self) -> str:
        classes, hidden = self.label_embeddings.shape
        return f"classes={classes}, hidden={hidden}, temperature={self.temperature}"


@backbones.register()
class HFClassifier(HFBackbone):
    """Encoder -> pooled embedding -> head (linear, or cosine to label embeddings) over every class."""

    name = "hf-classifier"
    auto_class = "AutoModel"
    kind = "classifier"

    @dataclass
    class Config(HFConfig):
        pooling: Literal["mean", "cls"] = "mean"
        """Text embedding: mean of the last hidden states over real tokens, or the first token's."""
        padding: Literal["longest", "max_length"] = "longest"
        """Pad each batch to its longest example (fast) or always to ``max_length`` (static shapes)."""
        head: Literal["linear", "label-embedding"] = "linear"
        """``linear``: a trained linear layer; ``label-embedding``: cosine to the frozen encoder's
        embedding of each label word, divided by ``temperature``, nothing trained (module doc)."""
        temperature: float = 0.05
        """The ``label-embedding`` head's τ in cos/τ: 0.05 (a scale of 20), the scale at which
        sentence embeddings are trained with a cosine contrastive loss (sentence-transformers'
        MultipleNegativesRankingLoss, default scale 20, used for all-MiniLM-L6-v2; SimCSE, Gao
        et al. 2021, EMNLP, τ = 0.05): cosines lie in [-1, 1], so τ = 1 would cap a class's
        probability near uniform and the cross-entropy could barely fall."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0 < self.temperature < float("inf"):
                raise ValueError(f"temperature must be > 0, got {self.temperature}")
            saved = (self.peft or {}).get("modules_to_save") or []
            if self.head == "label-embedding" and HEAD in saved:
                raise ValueError(f"head: label-embedding has no trainable parameters, so peft's "
                                 f"modules_to_save: [{HEAD}] has nothing to copy; drop {HEAD!r} from "
                                 "modules_to_save, or use head: linear")

    def __init__(self, config: Config, benchmark: Benchmark, tasks: list[Task]) -> None:
        super().__init__(config, benchmark, tasks)
        encoder = load_model(self.auto_class, config)
        if hasattr(encoder, HEAD):
            raise ConfigError(f"{type(encoder).__name__} already has a {HEAD!r} attribute; use a base encoder")
        self.model = encoder  # the pretrained encoder alone: what a label-embedding head embeds with
        encoder.add_module(HEAD, self.build_head(benchmark))
        self.model = wrap_peft(encoder, config.peft)
        if isinstance(getattr(self.base_model, HEAD), torch.nn.Linear):  # not taken over by modules_to_save
            getattr(self.base_model, HEAD).requires_grad_(True)

    def build_head(self, benchmark: Benchmark) -> torch.nn.Module:
        """The ``head`` option's module, in the encoder's dtype (called before peft wrapping)."""
        dtype = next(self.model.parameters()).dtype
        if self.config.head == "label-embedding":
            return LabelEmbeddingHead(self.embed_texts(label_words(benchmark)), self.config.temperature)
        hidden = getattr(self.model.config, "hidden_size", None) or self.model.config.d_model
        return torch.nn.Linear(hidden, len(self.label_names)).to(dtype)

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Pooled embeddings [len(texts), hidden] of ``texts`` under the current model, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = [self.embed(self.collate({"text": texts[i : i + LABEL_BATCH]}))
                      for i in range(0, len(texts), LABEL_BATCH)]
        finally:
            self.model.train(was_training)
        return torch.cat(chunks)

    @property
    def head(self) -> torch.nn.Module:
        """The head, embeddings [B, hidden] -> logits [B, C]: the linear layer (peft's
        ``ModulesToSaveWrapper`` around it with ``modules_to_save``) or the ``LabelEmbeddingHead``."""
        return getattr(self.base_model, HEAD)

    def _tokenize(self, columns: dict) -> dict:
        """Batched ``text`` -> ``input_ids`` (special tokens, truncated) and ``n_tokens``."""
        encoded = self.tokenizer(
            list(columns["text"]), truncation=True, max_length=self.config.max_length,
            return_attention_mask=False, return_token_type_ids=False,
        )
        ids = encoded["input_ids"]
        return {"input_ids": ids, "n_tokens": [len(row) for row in ids]}

    def collate(self, examples: Batch) -> Batch:
        """Columnar examples -> ``input_ids``/``attention_mask`` [B, L] (L = batch max or max_length),
        ``label`` and ``task`` [B]; tokenises here if ``prepare`` was skipped."""
        examples = self._columns(examples, "input_ids")
        length = self.config.max_length if self.config.padding == "max_length" else None
        rows = examples["input_ids"]
        ids = pad(rows, self.tokenizer.pad_token_id, self.tokenizer.padding_side, length)
        mask = pad([[1] * len(row) for row in rows], 0, self.tokenizer.padding_side, length)
        batch = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        for column in ("label", "task"):
            if column in examples:
                batch[column] = self._tensor(examples[column])
        return batch

    pool_prefix = False
    """Set by a soft-prompt strategy whose head reads the prompts (``l2p``, Wang et al. 2022): ``embed`` is
    then the mean of the last hidden states at the prefix positions (those its ``clft.strategies._prompts``
    hook prepends), not at the text's, whatever ``pooling`` says. For a bidirectional encoder (BERT,
    MiniLM): a causal model's prefix positions never see the text."""

    def embed(self, batch: Batch) -> torch.Tensor:
        """Pooled text embeddings [B, hidden] (``pooling``; under ``pool_prefix`` the prefix positions'
        mean), through the active adapter."""
        mask = batch["attention_mask"]
        if batch.get(PER_EXAMPLE):
            hidden = self.per_example_forward(mask, causal=False, input_ids=batch["input_ids"])[0]
        else:
            hidden = self.model(input_ids=batch["input_ids"], attention_mask=mask)[0]
        extra = hidden.shape[1] - mask.shape[1]  # prefix positions (soft prompts, peft's virtual tokens)
        if self.pool_prefix:
            if extra < 1:
                raise RuntimeError("pool_prefix is set but the forward pass prepended no prefix")
            return hidden[:, :extra].mean(dim=1)
        if self.config.pooling == "cls":  # the first real token of each row, whatever the padding side
            first = extra + mask.long().argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
        if extra > 0:
            mask = torch.cat([mask.new_ones(mask.shape[0], extra), mask], dim=1)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def logits(self, batch: Batch) -> torch.Tensor:
        """Raw scores [B, num_classes] over every class of the stream (no mask)."""
        return self.head(self.embed(batch))

    def allowed(self, batch: Batch, task: Task) -> torch.Tensor:
        """Bool [B, num_classes]: the label space's mask for each example's ``task`` column
        (``task.id`` for every row when the batch has none)."""
        task_ids = batch["task"] if "task" in batch else [task.id] * len(batch["input_ids"])
        return self.label_space.mask(task_ids, self.device)

    def forward(self, batch: Batch, task: Task) -> Outputs:
        """Raw logits and each example's cross-entropy over its allowed logits (main loss: the mean)."""
        logits = self.logits(batch)
        masked = mask_logits(logits, self.allowed(batch, task))
        return Outputs(example_loss=F.cross_entropy(masked, batch["label"], reduction="none"), logits=logits)

    def predict(self, batch: Batch, task: Task, scenario: str) -> torch.Tensor:
        """Global label ids [B]: argmax over the allowed logits."""
        return mask_logits(self.logits(batch), self.allowed(batch, task)).argmax(dim=-1)
