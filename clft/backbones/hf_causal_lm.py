"""``hf-causal-lm``: text-to-text continual learning with a decoder-only LM (GPT-2, LLaMA family).

``AutoModelForCausalLM``; the sequence is the prompt (instruction + allowed
label names + text, or a generation task's instruction + input, see
``clft.backbones.hf_text2text``) followed by the target (a label's name, or a
generation task's output) + EOS. The loss is the LM loss on the target tokens
only: prompt and padding positions carry -100.

Chat template: when the tokenizer has one (instruction-tuned models such as
SmolLM2-Instruct) and ``chat_template`` is true, the prompt text is the user
message and the target the assistant's reply: the ids are
``pre + prompt + post + target + EOS``, where ``pre``/``post`` are the
template's text around the user message rendered with
``add_generation_prompt=True`` (rendered once with a placeholder message and
split there; the tokenizer's own BOS is then not added). Without a template
(or ``chat_template: false``) the prompt follows the tokenizer's BOS (if it
adds one) and the target follows a space.

``predict`` left-pads the prompts and decodes greedily with the KV cache,
stopping at EOS or the cap (``max_new_tokens``; a generation task's own), and
returns label ids (classification: matched to the allowed names, -1 when none)
or the generated texts (generation tasks).

``dtype: auto`` (this backbone's default) loads float32 and, on ``to(device)``,
casts the frozen weights to bfloat16 on CUDA (trainable ones, such as LoRA
matrices, stay float32 for the optimizer) and keeps float32 on other devices.
``peft`` is passed to peft verbatim (e.g. ``{peft_type: LORA, task_type:
CAUSAL_LM, r: 8, target_modules: [q_proj, v_proj]}``); ``backbone.model`` is
then the ``PeftModel``. ``logits`` is not available (NotImplementedError).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.backbones.hf_common import pad
from clft.backbones.hf_text2text import HFTextToText, TextToTextConfig, sequence_outputs
from clft.registry import backbones
from clft.strategies._importance import PER_EXAMPLE
from clft.types import Batch, Outputs, Task

_PLACEHOLDER = "\u2063CLFT-USER-MESSAGE\u2063"


@backbones.register()
class HFCausalLM(HFTextToText):
    """Decoder-only LM: prompt continued by the target."""

    name = "hf-causal-lm"
    auto_class = "AutoModelForCausalLM"
    kind = "causal"
    prompt_suffix_specials = False  # an EOS after the prompt would end the text before the answer

    @dataclass
    class Config(TextToTextConfig):
        model: str = "openai-community/gpt2"
        """A hub name, local directory, or packaged GGUF model (``smollm2-135m-instruct``) of a decoder-only LM."""
        chat_template: bool = True
        """Wrap prompts in the tokenizer's chat template when it has one."""
        dtype: str = "auto"
        """``auto``: bfloat16 frozen weights on CUDA, float32 elsewhere; or float32/bfloat16/float16."""

    def __init__(self, config: Config, benchmark, tasks: list[Task]) -> None:
        super().__init__(config, benchmark, tasks)
        if self.uses_chat_template:
            self._prefix, self._suffix = self._chat_pieces()

    @property
    def uses_chat_template(self) -> bool:
        return bool(self.config.chat_template and getattr(self.tokenizer, "chat_template", None))

    def _chat_pieces(self) -> tuple[list[int], list[int]]:
        """Ids of the chat template's text before and after the user message (generation prompt added)."""
        rendered = self.tokenizer.apply_chat_template([{"role": "user", "content": _PLACEHOLDER}],
                                                      add_generation_prompt=True, tokenize=False)
        before, _, after = rendered.partition(_PLACEHOLDER)
        encode = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []  # noqa: E731
        return encode(before), encode(after)

    def load_dtype(self) -> str:
        return "float32" if self.config.dtype == "auto" else self.config.dtype

    def _target_spaced(self) -> bool:
        return not self.uses_chat_template

    def _prepare_key(self) -> tuple:
        return (*super()._prepare_key(), self.uses_chat_template)

    def to(self, device) -> HFCausalLM:
        """Move to ``device``; ``dtype: auto`` casts frozen weights to bfloat16 on CUDA."""
        super().to(device)
        if self.config.dtype == "auto" and torch.device(device).type == "cuda":
            for param in self.model.parameters():
                if not param.requires_grad:
                    param.data = param.data.to(torch.bfloat16)
        return self

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
        inputs, mask = {"input_ids": batch["input_ids"]}, batch["attention_mask"]
        if batch.get(PER_EXAMPLE):  # under torch.func.vmap: a prepared causal mask (HFBackbone.per_example_forward)
            out = self.per_example_forward(mask, causal=True, **inputs)
        else:
            out = self.model(attention_mask=mask, **inputs)
        return sequence_outputs(out.logits, batch["lm_labels"], shift=True)

    def _generate(self, batch: Batch, max_new_tokens: int | None = None) -> torch.Tensor:
        prompt = batch["prompt_ids"]
        out = self.model.generate(input_ids=prompt, attention_mask=batch["prompt_mask"],
                                  **self.generation_options(max_new_tokens))
        return out[:, prompt.shape[1] :]
