"""``hf-causal-lm``: text-to-text continual learning with a decoder-only LM (GPT-2, LLaMA family).

``AutoModelForCausalLM``; the sequence is the prompt (instruction + allowed
label words + text, or a generation task's instruction + input, see
``clft.backbones.hf_text2text``) followed by the target (a label's word, or a
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

Rank classification (``decode: rank``, the default; see
``clft.backbones.rank_classification``): one forward pass over the batch's
prompts, right-padded and without their last token, keeps the KV cache (the
model numbers positions itself, after any virtual tokens a peft prompt-learning
method or a soft-prompt hook prepends, as in training; ``logits_to_keep=1``).
Then each (example, label) pair's [last prompt token; target[:-1]] runs on that
cache with its rows repeated per pair (transformers' ``Cache.batch_select_indices``),
position ids continuing the prompt's and an attention mask that skips the
prompt's padding; the logits give every target token's log-probability. The
pairs go to the transformers model with ``inputs_embeds``, so no prompt-learning
wrapper or hook prepends its prompt twice. No pair re-reads its prompt.

``decode: generate`` and generation tasks left-pad the prompts and decode
greedily with the KV cache, stopping at EOS or the cap (``max_new_tokens``, see
``clft.backbones.hf_text2text``), and return label ids (matched to the allowed
words, -1 when none) or the generated texts (generation tasks).

``dtype: auto`` (this backbone's default) loads float32 and, on ``to(device)``,
casts the frozen weights to bfloat16 on CUDA (trainable ones, such as LoRA
matrices, stay float32 for the optimizer) and keeps float32 on other devices.
``peft`` is passed to peft verbatim (e.g. ``{peft_type: LORA, task_type:
CAUSAL_LM, r: 8, target_modules: [q_proj, v_proj]}``); ``backbone.model`` is
then the ``PeftModel``. ``logits`` is not available (NotImplementedError).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from functools import cached_property

import torch

from clft.backbones.hf_common import pad
from clft.backbones.hf_text2text import HFTextToText, TextToTextConfig, sequence_outputs
from clft.backbones.rank_classification import target_log_probs
from clft.registry import backbones
from clft.strategies._importance import PER_EXAMPLE
from clft.types import Batch, Outputs, Task

_PLACEHOLDER = "\u2063CLFT-USER-MESSAGE\u2063"


@dataclass
class PromptCache:
    """The prompts of a batch run once (``HFCausalLM._encode_prompts``): each prompt but its last
    token, right-padded, as ``cache`` (the model's KV cache, ``offset`` positions a prompt-learning
    method put in front included) with its attention ``mask`` [B, offset + P - 1]; ``last`` [B] the
    prompts' last tokens and ``position`` [B] the position id each takes."""

    cache: object
    mask: torch.Tensor
    last: torch.Tensor
    position: torch.Tensor


def right_aligned(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``ids``/``mask`` [B, L] -> the same rows right-padded (each row rotated left by
    its padding)."""
    width = ids.shape[1]
    index = (torch.arange(width, device=ids.device) + (width - mask.sum(dim=1, keepdim=True))) % width
    return ids.gather(1, index), mask.gather(1, index)


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

    def _encode_prompts(self, batch: Batch) -> PromptCache:
        """One forward pass over every prompt but its last token, right-padded, keeping the KV cache.

        Right padding lets the model number the positions itself (0, 1, ... from the first
        token, after any virtual tokens a prompt-learning peft method or a soft-prompt hook
        prepends), as in training; left padding would need position ids, which peft ignores
        under prompt tuning and a soft-prompt hook does not lengthen. The last token is fed with
        each candidate (``_score_pairs``), so this pass needs no logits (``logits_to_keep=1``)."""
        ids, mask = right_aligned(batch["prompt_ids"], batch["prompt_mask"])
        lengths = mask.sum(dim=1)
        if int(lengths.min()) < 2:
            raise ValueError("rank classification needs prompts of at least two tokens")
        rows = torch.arange(len(ids), device=ids.device)
        last = ids[rows, lengths - 1]
        mask = mask.clone()
        mask[rows, lengths - 1] = 0
        ids, mask = ids[:, :-1], mask[:, :-1]  # the longest prompt's last token was the last column
        cache_name, keep_name = self._forward_names
        out = self.model(input_ids=ids.masked_fill(mask == 0, self.tokenizer.pad_token_id), attention_mask=mask,
                         use_cache=True, **({keep_name: 1} if keep_name else {}))
        cache = getattr(out, "cache", None)
        cache = out.past_key_values if cache is None else cache
        offset = cache.get_seq_length() - ids.shape[1]
        mask = torch.cat([mask.new_ones(len(ids), offset), mask], dim=1)
        return PromptCache(cache, mask, last, offset + lengths - 1)

    @cached_property
    def _forward_names(self) -> tuple[str, str | None]:
        """The names the model's forward takes its KV cache under (``cache`` since transformers 5.x,
        else ``past_key_values``) and its last-logits-only option (``logits_to_keep``, earlier
        ``num_logits_to_keep``; None when absent)."""
        params = inspect.signature(self.base_model.forward).parameters
        keep = next((name for name in ("logits_to_keep", "num_logits_to_keep") if name in params), None)
        return ("cache" if "cache" in params else "past_key_values"), keep

    def _score_pairs(self, encoded: PromptCache, rows: torch.Tensor, targets: list[list[int]],
                     last: bool) -> torch.Tensor:
        """Each pair's [last prompt token; target[:-1]] run on the prompt cache with its rows
        repeated per pair (``Cache.batch_select_indices``; on a copy unless this is the ``last``
        chunk); positions continue the prompt's.

        The pass goes to the transformers model with ``inputs_embeds``, so neither a peft
        prompt-learning wrapper nor a soft-prompt hook prepends its prompt a second time."""
        labels = pad(targets, -100).to(self.device)
        inputs = torch.cat([encoded.last[rows, None], labels[:, :-1]], dim=1)
        mask = (labels != -100).long()
        inputs = inputs.masked_fill(mask == 0, self.tokenizer.pad_token_id)
        cache = encoded.cache if last else copy.deepcopy(encoded.cache)
        cache.batch_select_indices(rows)
        model = self.base_model
        out = model(inputs_embeds=model.get_input_embeddings()(inputs),
                    attention_mask=torch.cat([encoded.mask[rows], mask], dim=1),
                    position_ids=encoded.position[rows, None] + torch.arange(labels.shape[1], device=self.device),
                    use_cache=True, **{self._forward_names[0]: cache})
        return target_log_probs(out.logits, labels)

    def _generate(self, batch: Batch, max_new_tokens: int | None = None) -> torch.Tensor:
        prompt = batch["prompt_ids"]
        out = self.model.generate(input_ids=prompt, attention_mask=batch["prompt_mask"],
                                  **self.generation_options(max_new_tokens))
        return out[:, prompt.shape[1] :]
