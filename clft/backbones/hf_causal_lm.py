"""``hf-causal-lm``: text-to-text continual learning with a decoder-only LM (GPT-2, LLaMA family).

``AutoModelForCausalLM``; the sequence is the prompt (instruction + allowed
label names + text, see ``clft.backbones.hf_text2text``, after the tokenizer's
BOS if it adds one) followed by the label's name + EOS. The loss is the LM loss
on the target tokens only: prompt and padding positions carry -100. For
``predict`` the prompts alone are left-padded and decoded greedily (at most
``max_new_tokens`` new tokens); the new tokens are matched to the allowed label
names (-1 when nothing matches). ``peft`` is passed to peft verbatim (e.g.
``{peft_type: LORA, task_type: CAUSAL_LM, r: 8, target_modules: [c_attn]}``);
``backbone.model`` is then the ``PeftModel``. ``logits`` is not available
(NotImplementedError).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.backbones.hf_common import pad
from clft.backbones.hf_text2text import HFTextToText, TextToTextConfig, sequence_outputs
from clft.registry import backbones
from clft.types import Batch, Outputs, Task


@backbones.register()
class HFCausalLM(HFTextToText):
    """Decoder-only LM: prompt continued by the label name."""

    name = "hf-causal-lm"
    auto_class = "AutoModelForCausalLM"
    kind = "causal"
    prompt_suffix_specials = False  # an EOS after the prompt would end the text before the answer

    @dataclass
    class Config(TextToTextConfig):
        model: str = "openai-community/gpt2"
        """A hub name or local directory of a decoder-only model (GPT-2, LLaMA, Qwen, ...)."""

    def _target_spaced(self) -> bool:
        return True

    def _batch(self, prompts: list[list[int]], targets: list[list[int]] | None) -> Batch:
        """``prompt_ids``/``prompt_mask`` [B, P] left-padded (for decoding); with targets also
        ``input_ids``/``attention_mask``/``lm_labels`` [B, P+T] of prompt + target, right-padded."""
        pad_id = self.tokenizer.pad_token_id
        batch = {
            "prompt_ids": pad(prompts, pad_id, "left").to(self.device),
            "prompt_mask": pad([[1] * len(p) for p in prompts], 0, "left").to(self.device),
        }
        if targets is not None:
            full = [p + t for p, t in zip(prompts, targets)]
            batch["input_ids"] = pad(full, pad_id).to(self.device)
            batch["attention_mask"] = pad([[1] * len(f) for f in full], 0).to(self.device)
            batch["lm_labels"] = pad([[-100] * len(p) + t for p, t in zip(prompts, targets)], -100).to(self.device)
        return batch

    def forward(self, batch: Batch, task: Task) -> Outputs:
        """Per-example mean next-token cross-entropy over the target (label name + EOS) tokens;
        main loss: the mean over the batch's target tokens."""
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return sequence_outputs(out.logits, batch["lm_labels"], shift=True)

    def _generate(self, batch: Batch) -> torch.Tensor:
        prompt = batch["prompt_ids"]
        out = self.model.generate(input_ids=prompt, attention_mask=batch["prompt_mask"], **self.generation_options())
        return out[:, prompt.shape[1] :]
