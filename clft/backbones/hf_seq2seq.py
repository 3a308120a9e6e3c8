"""``hf-seq2seq``: text-to-text continual learning with an encoder-decoder LM (T5 family).

``AutoModelForSeq2SeqLM``; the encoder reads the prompt (instruction + allowed
label words + text, see ``clft.backbones.hf_text2text``) followed by the
tokenizer's end-of-text token, the decoder is trained with teacher forcing on
the label's word + EOS (``labels``; padding is -100, ignored by the loss).

``predict`` (``decode: rank``, the default; ``clft.backbones.rank_classification``):
one pass of the model over the prompts (the encoder, plus one decoder step, so
a peft prompt-learning method or a soft-prompt hook adds its virtual tokens as in
training) gives the encoder states; the decoder then runs over every (example,
label) pair's target with teacher forcing, its prompt's encoder states repeated
per pair, and the summed log-probabilities rank the allowed labels. The encoder
runs once per batch. ``decode: generate`` decodes greedily and matches the text
to the allowed label words (-1 when nothing matches). ``peft`` is passed to peft
verbatim (e.g. ``{peft_type: LORA, task_type: SEQ_2_SEQ_LM, r: 8, target_modules:
[q, v]}``; prompt-learning methods need ``task_type: SEQ_2_SEQ_LM``);
``backbone.model`` is then the ``PeftModel``. ``logits`` is not available
(NotImplementedError).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.backbones.hf_common import pad
from clft.backbones.hf_text2text import HFTextToText, TextToTextConfig, sequence_outputs
from clft.backbones.rank_classification import target_log_probs
from clft.registry import backbones
from clft.strategies._importance import PER_EXAMPLE
from clft.types import Batch, Outputs, Task


@backbones.register()
class HFSeq2Seq(HFTextToText):
    """Encoder-decoder LM: prompt -> label word."""

    name = "hf-seq2seq"
    auto_class = "AutoModelForSeq2SeqLM"
    kind = "seq2seq"
    prompt_suffix_specials = True

    @dataclass
    class Config(TextToTextConfig):
        model: str = "google-t5/t5-small"
        """A hub name or local directory of an encoder-decoder model (T5, FLAN-T5, BART)."""

    def _batch(self, prompts: list[list[int]], targets: list[list[int]] | None) -> Batch:
        """``input_ids``/``attention_mask`` [B, L] right-padded; ``lm_labels`` [B, T] (-100 = padding)."""
        batch = {
            "input_ids": pad(prompts, self.tokenizer.pad_token_id).to(self.device),
            "attention_mask": pad([[1] * len(p) for p in prompts], 0).to(self.device),
        }
        if targets is not None:
            batch["lm_labels"] = pad(targets, -100).to(self.device)
        return batch

    def forward(self, batch: Batch, task: Task) -> Outputs:
        """Per-example mean token cross-entropy of the label name (+ EOS) given the prompt;
        main loss: the mean over the batch's target tokens."""
        inputs, mask = {"input_ids": batch["input_ids"], "labels": batch["lm_labels"]}, batch["attention_mask"]
        if batch.get(PER_EXAMPLE):  # under torch.func.vmap: a prepared encoder mask (HFBackbone.per_example_forward)
            out = self.per_example_forward(mask, causal=False, **inputs)
        else:
            out = self.model(attention_mask=mask, **inputs)
        return sequence_outputs(out.logits, batch["lm_labels"], shift=False)

    def _encode_prompts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder states [B, L', H], their attention mask [B, L']) of the batch's prompts, from one
        pass of the model (with one decoder step), so a peft prompt-learning method or a
        soft-prompt hook adds its virtual tokens as in training (L' - L of them, mask 1)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        start = self.base_model.prepare_decoder_input_ids_from_labels(labels=ids[:, :1])
        hidden = self.model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).encoder_last_hidden_state
        return hidden, torch.cat([mask.new_ones(len(ids), hidden.shape[1] - ids.shape[1]), mask], dim=1)

    def _score_pairs(self, encoded: tuple[torch.Tensor, torch.Tensor], rows: torch.Tensor,
                     targets: list[list[int]], last: bool) -> torch.Tensor:
        """The decoder over each pair's target (teacher forcing, as in training) with its prompt's
        encoder states repeated per pair; the encoder does not run again."""
        from transformers.modeling_outputs import BaseModelOutput

        hidden, mask = encoded
        labels = pad(targets, -100).to(self.device)
        model = self.base_model
        out = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[rows]), attention_mask=mask[rows],
                    decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels))
        return target_log_probs(out.logits, labels)

    def _generate(self, batch: Batch, max_new_tokens: int | None = None) -> torch.Tensor:
        return self.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   **self.generation_options(max_new_tokens))
