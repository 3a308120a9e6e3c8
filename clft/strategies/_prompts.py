"""Soft prompts prepended to the input embeddings of a HuggingFace backbone (``progressive-prompts``, ``l2p``).

Why not peft's PROMPT_TUNING: a ``PeftModel`` runs one prompt-learning adapter
at a time, so it cannot feed the concatenation of several named prompts
(Progressive Prompts) nor a per-example choice from a pool (L2P). Instead a
forward pre-hook on the transformers model (encoder-only models, e.g.
``hf-classifier``) or on its encoder (encoder-decoder models, ``hf-seq2seq``)
replaces ``input_ids`` by ``inputs_embeds`` = [prefix; token embeddings] and
prepends ones to ``attention_mask``. An encoder-decoder model also gets a
pre-hook that lengthens the mask it passes to the decoder's cross-attention.
``hf-classifier``'s pooling counts the prefix positions as tokens (mean) or
skips them (cls); a strategy whose head reads the prompts (l2p) sets the
backbone's ``pool_prefix``, and the embedding is then the prefix positions'
mean alone. A decoder-only model (``hf-causal-lm``) gets the same
pre-hook (and ``labels``, when passed, get -100 over the prefix) plus a forward
hook that drops the prefix positions' logits, so the backbone's loss sees
logits aligned with its tokens; its ``generate`` is wrapped to pass
``inputs_embeds`` = [prefix; prompt embeddings] (transformers then returns only
the new tokens; the wrapper puts the prompt ids back in front, as
``generate(input_ids=...)`` returns them), with the forward hooks paused, since
the cached decoding steps must not get the prefix again.

The prompt parameters are a submodule of the transformers model (named by the
strategy), so the runner's optimizer, checkpoints and ``.to(device)`` see them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch

from clft.types import Backbone

Prefix = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]  # (input_ids, mask) -> [B, P, H]


class PrefixHook:
    """Prepends ``prefix(input_ids, attention_mask)`` to every forward pass of ``backbone``'s model."""

    def __init__(self, backbone: Backbone, prefix: Prefix, length: Callable[[], int]) -> None:
        model = backbone.base_model
        self.model, self.prefix, self.length, self.enabled = model, prefix, length, True
        self.embeddings = model.get_input_embeddings()
        encoder_decoder = getattr(model.config, "is_encoder_decoder", False)
        self.decoder_only = not encoder_decoder and model.can_generate()
        if encoder_decoder:
            self.target = model.get_encoder()
            self.handles = [self.target.register_forward_pre_hook(self._before, with_kwargs=True),
                            model.register_forward_pre_hook(self._decoder_mask, with_kwargs=True)]
        else:
            self.target = model
            self.handles = [model.register_forward_pre_hook(self._before, with_kwargs=True)]
        if self.decoder_only:
            self.handles.append(model.register_forward_hook(self._drop_prefix_logits))
            self.original_generate = model.generate
            model.generate = self._generate
        self.added = 0  # prefix positions the last forward pass got (their logits are dropped)

    def attached_to(self, backbone: Backbone) -> bool:
        return self.model is backbone.base_model

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        if self.decoder_only:
            del self.model.generate

    @contextmanager
    def paused(self):
        """Forward passes without the prefix (e.g. L2P's query)."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def _before(self, module, args, kwargs):
        ids = kwargs.get("input_ids")
        if not self.enabled or ids is None or args:
            return None
        mask = kwargs.get("attention_mask")
        extended = mask is not None and mask.shape[1] > ids.shape[1]  # by the decoder-mask hook already
        own = mask[:, mask.shape[1] - ids.shape[1] :] if extended else mask
        embeds = self.embeddings(ids)
        prefix = self.prefix(ids, own).to(embeds.dtype)
        kwargs = {**kwargs, "input_ids": None, "inputs_embeds": torch.cat([prefix, embeds], dim=1)}
        if mask is not None and not extended:
            kwargs["attention_mask"] = extend_mask(mask, prefix.shape[1])
        if kwargs.get("labels") is not None:
            kwargs["labels"] = torch.cat([kwargs["labels"].new_full((ids.shape[0], prefix.shape[1]), -100),
                                          kwargs["labels"]], dim=1)
        self.added = prefix.shape[1]
        return args, kwargs

    def _drop_prefix_logits(self, module, args, output):
        """Decoder-only: logits [B, P + L, V] -> [B, L, V], aligned with the input tokens again."""
        added, self.added = self.added, 0
        if added and getattr(output, "logits", None) is not None:
            output.logits = output.logits[:, added:]
        return output

    def _generate(self, *args, input_ids=None, attention_mask=None, **kwargs):
        """Decoder-only ``generate``: the prefix goes in front of the prompt's embeddings."""
        if not self.enabled or input_ids is None or args or "inputs_embeds" in kwargs:
            return self.original_generate(*args, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        embeds = self.embeddings(input_ids)
        prefix = self.prefix(input_ids, mask).to(embeds.dtype)
        with self.paused():
            new = self.original_generate(inputs_embeds=torch.cat([prefix, embeds], dim=1),
                                         attention_mask=extend_mask(mask, prefix.shape[1]), **kwargs)
        return torch.cat([input_ids, new], dim=1)

    def _decoder_mask(self, module, args, kwargs):
        """Encoder-decoder: the mask the decoder cross-attends with must cover the prefix too."""
        mask = kwargs.get("attention_mask")
        if not self.enabled or mask is None:
            return None
        encoded = kwargs.get("encoder_outputs")
        if encoded is not None:
            missing = encoded[0].shape[1] - mask.shape[1]
        elif kwargs.get("input_ids") is not None and kwargs["input_ids"].shape[1] == mask.shape[1]:
            missing = self.length()
        else:
            return None
        return (args, {**kwargs, "attention_mask": extend_mask(mask, missing)}) if missing > 0 else None


def extend_mask(mask: torch.Tensor, n: int) -> torch.Tensor:
    return torch.cat([mask.new_ones(mask.shape[0], n), mask], dim=1)


def vocabulary_init(backbone: Backbone, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[rows, H]: copies of randomly drawn token embeddings (Lester et al. 2021's sampled-vocabulary init)."""
    weight = backbone.base_model.get_input_embeddings().weight
    index = torch.randint(0, weight.shape[0], (rows,), generator=generator)
    return weight.detach()[index.to(weight.device)].float().clone()


def freeze_backbone(backbone: Backbone) -> None:
    """Without a peft block every weight of an HF backbone trains; prompt methods freeze all but the head."""
    if backbone.peft_model is not None:
        return
    for name, param in backbone.base_model.named_parameters():
        if not name.startswith("classifier."):
            param.requires_grad_(False)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """[B, H]: mean of ``hidden`` [B, L, H] over the positions where ``mask`` is 1."""
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
