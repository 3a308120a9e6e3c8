"""Text-to-text continual learning (O-LoRA, Progressive Prompts, LFPT5, TRACE style), shared by
``hf-seq2seq`` and ``hf-causal-lm``.

Every example becomes a prompt built from ``template`` (default
``"{instruction}\\nOptions: {options}\\nInput: {text}\\nAnswer:"``) where
``{instruction}`` is the example's ``instruction`` column (else the
``instruction`` option), ``{options}`` the words of the labels the label space
allows for the example, joined by ", " (task-IL: its task's classes; class-IL:
every class seen so far, all before training; domain-IL: all), and ``{text}``
its text. A label's word comes from the verbalizer ``hf_common.label_words``:
``benchmark.label_texts[i]`` when the benchmark has them (LFPT5's ``sports`` for
``ag_news/sports``; a benchmark's YAML ``label_texts: {label name: word}``
overrides them per label), else ``benchmark.label_names[i]`` made a phrase
(``banking/freeze_account`` -> ``freeze account``). The target is the label's
word followed by EOS (``target_ids``; ``target_lengths`` their token counts); the
loss is the LM loss on the target tokens only.

``predict`` on a classification task (option ``decode``):

- ``rank`` (default): rank classification (``clft.backbones.rank_classification``):
  every allowed label's target is scored by its summed token log-probabilities
  given the prompt (``label_scores``, [B, num_classes], -inf for labels not
  allowed) and the best wins, the lowest id on a tie; the prompts are encoded
  once per batch.
- ``generate``: greedy decoding (at most ``max_new_tokens``), stripped and
  lower-cased, matched exactly to the allowed labels' words: the global id of
  the label it equals, -1 when none. Runs of whitespace count as one space; the
  decoding of a label's own target ids counts as a spelling of its word (for
  tokenizers that do not round-trip text exactly); when two allowed labels share
  a word (class-IL over AG News and Yahoo "sports") the lower id wins.

Tokenise once: ``prepare`` tokenises ``instruction`` and ``text`` (truncated to
``max_length`` tokens); ``collate`` joins those ids with the template's literal
pieces and the options' ids (tokenised once per allowed set), so the options can
follow the label space as class-IL adds classes without re-tokenising. Pieces
are tokenised separately; whether a value after a space is tokenised with a
leading space is decided once by checking which form reproduces the tokenizer's
own tokenisation of ``"Answer: yes"`` (BPE: yes; SentencePiece/WordPiece: no).
``max_length`` bounds the text only: the instruction and options come on top.
``n_tokens`` (instruction + text, + target for generation tasks) is what
``lengths`` returns: the runner buckets training batches by it and evaluates
longest first.

Generation tasks (``task.generative``: examples with a free-text ``target`` and
``references`` instead of a ``label``) use ``generation_template`` (default
SuperNI's ``"Definition: {instruction}\n\nNow complete the following example -\nInput: {text}\nOutput:"``);
the target is the ``target`` text (truncated to ``max_target_length`` tokens) +
EOS, and ``predict`` returns the generated texts (stripped), decoded greedily
until EOS or the cap: the ``max_new_tokens`` option when set, else the token
count of the task's longest training reference (``reference_tokens``, counted
by ``prepare``), at most the task's ``max_new_tokens`` (else 64). A generation
task whose examples carry candidate answers (``choices`` / ``choice_labels``
columns, ``clft.benchmarks.instruction_common``) is not generated: ``choose``
returns the label of the candidate whose text (+ EOS) is the most likely
continuation of the prompt, which its metric then compares with the references.

``logits`` raises NotImplementedError: these backbones have no [B, num_classes]
head; DER needs ``hf-classifier``, ``lwf`` distils the token distributions at
the target positions instead (``forward``'s ``extra``: ``lm_logits`` and the
aligned ``lm_labels``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from clft.backbones.hf_common import HFBackbone, HFConfig, label_words, load_model, wrap_peft
from clft.backbones.rank_classification import RankClassifier
from clft.types import Batch, Benchmark, Outputs, Task

DEFAULT_TEMPLATE = "{instruction}\nOptions: {options}\nInput: {text}\nAnswer:"
GENERATION_TEMPLATE = "Definition: {instruction}\n\nNow complete the following example -\nInput: {text}\nOutput:"
DEFAULT_GENERATION_TOKENS = 64
_FIELD = re.compile(r"\{(instruction|options|text)\}")


@dataclass
class TextToTextConfig(HFConfig):
    """Options of the text-to-text backbones (``HFConfig`` plus the prompt)."""

    template: str = DEFAULT_TEMPLATE
    """The prompt; ``{instruction}``, ``{options}`` and ``{text}`` are replaced per example."""
    instruction: str = ""
    """The instruction for examples without an ``instruction`` column."""
    max_new_tokens: int | None = None
    """Greedy-decoding cap (``decode: generate`` and generation tasks); None: the longest label
    word's token count plus one (EOS), for a generation task the token count of its longest
    training reference, at most the task's own ``max_new_tokens`` (else 64)."""
    generation_template: str = GENERATION_TEMPLATE
    """The prompt of generation tasks (no ``{options}``); SuperNI's format by default."""
    max_target_length: int = 128
    """Tokens kept per generation target (truncation at tokenisation time; EOS comes on top)."""
    decode: Literal["rank", "generate"] = "rank"
    """How a classification example is predicted. ``rank`` (rank classification): every label
    the scenario allows for the example is scored by the summed log-probability of its target
    (label word + EOS, what it is trained on) given the prompt, the best wins (lowest id on a
    tie); the prompt is encoded once per batch. ``generate``: greedy decoding and exact match of
    the generated text to the allowed label words (-1 when none matches). Generation tasks
    always generate."""
    rank_batch_size: int = 128
    """(example, label) pairs scored per forward pass in rank classification; bounds the memory
    of the prompt states repeated for each pair (pairs x prompt length)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decode not in ("rank", "generate"):
            raise ValueError(f"decode must be 'rank' or 'generate', got {self.decode!r}")
        if self.rank_batch_size < 1:
            raise ValueError(f"rank_batch_size must be >= 1, got {self.rank_batch_size}")
        for key in ("template", "generation_template"):
            if "{text}" not in getattr(self, key):
                raise ValueError(f"{key} must contain {{text}}, got {getattr(self, key)!r}")
        if "{options}" in self.generation_template:
            raise ValueError("generation_template cannot use {options}: generation tasks have no label names")
        if self.max_target_length < 1:
            raise ValueError(f"max_target_length must be >= 1, got {self.max_target_length}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def normalise(text: str) -> str:
    """Stripped, lower-cased, runs of whitespace collapsed to one space: the form names are matched in."""
    return " ".join(text.lower().split())


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after a single text (e.g. BERT [CLS]/[SEP], T5 </s>)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    return [], []


def sequence_outputs(lm_logits: torch.Tensor, labels: torch.Tensor, shift: bool) -> Outputs:
    """Per-example mean token cross-entropy of the target tokens (labels != -100), weighted by
    the target's token count, so ``main_loss()`` is the mean over all target tokens of the batch
    (what transformers' own ``loss`` computes). ``shift``: next-token prediction (causal LMs).
    Positions a prompt-learning peft method prepends to the logits are dropped first.
    ``extra``: ``lm_logits`` [B, T, V] and ``lm_labels`` [B, T], aligned (position t's logits
    predict ``lm_labels[:, t]``; -100 = not a target token)."""
    lm_logits = lm_logits[:, lm_logits.shape[1] - labels.shape[1] :]
    if shift:
        lm_logits, labels = lm_logits[:, :-1], labels[:, 1:]
    tokens = F.cross_entropy(lm_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="none")
    counts = (labels != -100).sum(dim=1)
    per_example = tokens.view(labels.shape).sum(dim=1) / counts.clamp(min=1)
    return Outputs(example_loss=per_example, weight=counts, extra={"lm_logits": lm_logits, "lm_labels": labels})


class HFTextToText(RankClassifier, HFBackbone):
    """Prompt assembly, tokenisation, rank classification, decoding and label matching; subclasses
    build batches, the forward pass, generation and the prompt states pairs are scored from
    (``_batch``, ``forward``, ``_generate``, ``_encode_prompts``, ``_score_pairs``)."""

    kind = "text2text"
    prompt_suffix_specials = True  # append the tokenizer's end-of-text specials to the prompt

    def __init__(self, config: TextToTextConfig, benchmark: Benchmark, tasks: list[Task]) -> None:
        super().__init__(config, benchmark, tasks)
        self.model = wrap_peft(load_model(self.auto_class, config, self.load_dtype()), config.peft)
        tok = self.tokenizer
        self._space = tok("Answer: yes", add_special_tokens=False)["input_ids"] == (
            self._encode("Answer:") + self._encode(" yes")
        )
        self._parts = self._parse(config.template)
        self._gen_parts = self._parse(config.generation_template)
        self._prefix, suffix = special_tokens(tok)
        self._suffix = suffix if self.prompt_suffix_specials else []
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        self.label_texts = label_words(benchmark)
        self.target_ids = [self._encode(text, self._target_spaced()) + eos for text in self.label_texts]
        self.max_new_tokens = config.max_new_tokens or max((len(ids) for ids in self.target_ids), default=0) + 1
        self._options: dict[tuple[int, ...], list[int]] = {}
        self._lookups: dict[tuple[int, ...], dict[str, int]] = {}
        self._longest_reference: dict[str, int] = {}  # train-split fingerprint -> token count

    def load_dtype(self) -> str:
        """The dtype the weights load in (the ``dtype`` option)."""
        return self.config.dtype

    def _target_spaced(self) -> bool:
        """Whether the target follows a space (causal LMs continue the prompt; seq2seq does not)."""
        return False

    def _encode(self, text: str, spaced: bool = False) -> list[int]:
        """Ids of ``text`` without special tokens; ``spaced``: as it follows a space."""
        if spaced and self._space and not text[:1].isspace():
            text = " " + text
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _parse(self, template: str) -> list[tuple[str, object]]:
        """Template -> [("ids", literal ids) | ("field", (name, follows_a_space))].

        A literal's trailing spaces before a field move into the field (tokenised "spaced")."""
        parts: list[tuple[str, object]] = []
        pieces = _FIELD.split(template)  # literal, field, literal, field, ..., literal
        for i, piece in enumerate(pieces):
            if i % 2:
                parts.append(("field", (piece, pieces[i - 1].endswith(" "))))
                continue
            literal = piece.rstrip(" ") if i + 1 < len(pieces) else piece
            if literal:
                parts.append(("ids", self._encode(literal)))
        return parts

    def _prepare_key(self) -> tuple:
        cfg = self.config
        return (*super()._prepare_key(), cfg.template, cfg.instruction, self._space, cfg.generation_template,
                cfg.max_target_length, self._target_spaced())

    def _spaced(self, field: str, generative: bool = False) -> bool:
        parts = self._gen_parts if generative else self._parts
        return any(kind == "field" and value == (field, True) for kind, value in parts)

    def _tokenize(self, columns: dict) -> dict:
        """Batched ``text`` (and ``instruction``; ``target`` for generation) -> ``text_ids``,
        ``instruction_ids`` (``target_ids``), ``n_tokens``."""
        generative = "target" in columns
        texts = list(columns["text"])
        if self._spaced("text", generative) and self._space:
            texts = [t if t[:1].isspace() else " " + t for t in texts]
        text_ids = self.tokenizer(texts, add_special_tokens=False, truncation=True,
                                  max_length=self.config.max_length)["input_ids"]
        given = columns.get("instruction") or [None] * len(texts)
        instructions = [value or self.config.instruction for value in given]
        spaced = self._spaced("instruction", generative)
        unique = {value: self._encode(value, spaced) if value else [] for value in set(instructions)}
        instruction_ids = [unique[value] for value in instructions]
        n_tokens = [len(a) + len(b) for a, b in zip(text_ids, instruction_ids)]
        out = {"text_ids": text_ids, "instruction_ids": instruction_ids, "n_tokens": n_tokens}
        if generative:
            out["target_ids"] = [self._encode(t, self._target_spaced())[: self.config.max_target_length]
                                 for t in columns["target"]]
            out["n_tokens"] = [n + len(t) for n, t in zip(n_tokens, out["target_ids"])]
            out["reference_tokens"] = self._reference_tokens(columns.get("references") or
                                                             [[t] for t in columns["target"]])
        return out

    def _reference_tokens(self, references: Sequence[Sequence[str]]) -> list[int]:
        """Per example, the token count of its longest reference (tokenised as a target)."""
        flat = [text for refs in references for text in refs]
        if self._target_spaced() and self._space:
            flat = [t if t[:1].isspace() else " " + t for t in flat]
        counts = [len(ids) for ids in self.tokenizer(flat, add_special_tokens=False)["input_ids"]] if flat else []
        longest, start = [], 0
        for refs in references:
            longest.append(max(counts[start : start + len(refs)], default=0))
            start += len(refs)
        return longest

    def _options_ids(self, allowed: tuple[int, ...]) -> list[int]:
        if allowed not in self._options:
            names = ", ".join(self.label_texts[i] for i in allowed)
            self._options[allowed] = self._encode(names, self._spaced("options"))
        return self._options[allowed]

    def prompt_ids(self, instruction_ids: list[int], text_ids: list[int], task_id: int,
                   generative: bool = False) -> list[int]:
        """The token ids of one example's prompt, special tokens included."""
        values = {"instruction": instruction_ids, "text": text_ids}
        ids = list(self._prefix)
        for kind, value in self._gen_parts if generative else self._parts:
            if kind == "ids":
                ids += value
            else:
                name = value[0]
                ids += self._options_ids(self.label_space.allowed(task_id)) if name == "options" else values[name]
        return ids + self._suffix

    def collate(self, examples: Batch) -> Batch:
        """Columnar examples -> model tensors (see the subclass's ``_batch``) plus ``label``/``task`` [B]."""
        examples = self._columns(examples, "text_ids")
        tasks = [int(t) for t in examples["task"]]
        generative = "target_ids" in examples
        pairs = zip(examples["instruction_ids"], examples["text_ids"], tasks)
        prompts = [self.prompt_ids(instruction, text, task_id, generative) for instruction, text, task_id in pairs]
        labels = [int(label) for label in examples["label"]] if "label" in examples and not generative else None
        targets = [self.target_ids[label] for label in labels] if labels is not None else None
        if generative:
            eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
            targets = [list(ids) + eos for ids in examples["target_ids"]]
        batch = self._batch(prompts, targets)
        batch["task"] = self._tensor(tasks)
        if labels is not None:
            batch["label"] = self._tensor(labels)
        if "choices" in examples:  # a task answered by choosing among candidates (``choose``)
            batch["choice_ids"] = [[self._choice_ids(text) for text in texts] for texts in examples["choices"]]
            batch["choice_labels"] = [list(labels) for labels in examples["choice_labels"]]
        return batch

    def _choice_ids(self, text: str) -> list[int]:
        """A candidate answer's ids as a target is tokenised (truncated to ``max_target_length``) + EOS."""
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return self._encode(text, self._target_spaced())[: self.config.max_target_length] + eos

    def batch_padding(self) -> dict[str, tuple[int, str]]:
        """How ``_batch`` pads (``clft.types.Backbone.batch_padding``): ids, masks and ``lm_labels`` (-100)
        on the right; a causal LM's decoding prompt (``prompt_ids``/``prompt_mask``) on the left."""
        pad_id = self.tokenizer.pad_token_id
        return {"input_ids": (pad_id, "right"), "attention_mask": (0, "right"), "lm_labels": (-100, "right"),
                "prompt_ids": (pad_id, "left"), "prompt_mask": (0, "left")}

    def _batch(self, prompts: list[list[int]], targets: list[list[int]] | None) -> Batch:  # pragma: no cover
        raise NotImplementedError

    def _generate(self, batch: Batch, max_new_tokens: int | None = None) -> torch.Tensor:  # pragma: no cover
        """Generated token ids [B, <= max_new_tokens] (prompt removed)."""
        raise NotImplementedError

    def generation_options(self, max_new_tokens: int | None = None) -> dict:
        """Greedy decoding options shared by both model families (KV cache on, stop at EOS)."""
        tok = self.tokenizer
        return {"max_new_tokens": max_new_tokens or self.max_new_tokens, "do_sample": False, "num_beams": 1,
                "use_cache": True, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}

    def new_tokens(self, task: Task) -> int:
        """The generation cap of a generation task: the ``max_new_tokens`` option when set; else
        the token count of the task's longest training reference (``reference_tokens``, as the
        target is tokenised, EOS not counted), at most the task's ``max_new_tokens`` (else 64)."""
        if self.config.max_new_tokens:
            return self.config.max_new_tokens
        cap = task.max_new_tokens or DEFAULT_GENERATION_TOKENS
        key = task.train._fingerprint
        if key not in self._longest_reference:
            prepared = self.prepare(task.train)
            counts = prepared.with_format("numpy")["reference_tokens"][:] if len(prepared) else [0]
            self._longest_reference[key] = int(max(counts))
        return min(cap, self._longest_reference[key]) if self._longest_reference[key] else cap

    def generate_texts(self, batch: Batch, task: Task) -> list[str]:
        """Greedy generations for a generation task's batch, decoded and stripped."""
        ids = self._generate(batch, self.new_tokens(task))
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def generated_ids(self, batch: Batch, task: Task) -> list[list[int]]:
        """The greedy generations of ``generate_texts`` as token ids per example: the new tokens up to
        and including the first EOS (a decoder's start token and the padding after EOS dropped), the
        continuation ``continuation_nll`` scores (adapter-per-task's perplexity of a generation)."""
        ids = self._generate(batch, self.new_tokens(task))
        if self.model_config.is_encoder_decoder:
            ids = ids[:, 1:]  # generate() returns the decoder start token first
        eos = self.tokenizer.eos_token_id
        rows = [row.tolist() for row in ids]
        return [row[: row.index(eos) + 1] if eos in row else row for row in rows]

    def _lookup(self, allowed: tuple[int, ...]) -> dict[str, int]:
        """Normalised name -> global id for the allowed labels (first wins on a tie); the decoded
        target ids count as a spelling too, for tokenizers that do not round-trip text exactly."""
        if allowed not in self._lookups:
            eos = self.tokenizer.eos_token_id
            table: dict[str, int] = {}
            for i in allowed:
                decoded = self.tokenizer.decode([t for t in self.target_ids[i] if t != eos], skip_special_tokens=True)
                for spelling in filter(None, (normalise(self.label_texts[i]), normalise(decoded))):
                    table.setdefault(spelling, i)
            self._lookups[allowed] = table
        return self._lookups[allowed]

    def match(self, texts: Sequence[str], task_ids: Sequence[int]) -> list[int]:
        """Global id of the allowed label whose name equals each stripped, lower-cased text; -1 if none."""
        return [self._lookup(self.label_space.allowed(int(k))).get(normalise(t), -1) for t, k in zip(texts, task_ids)]

    def predict(self, batch: Batch, task: Task, scenario: str) -> torch.Tensor | list[str]:
        """Global label ids [B]: rank classification (``decode: rank``: argmax of ``label_scores``,
        the lowest id on a tie) or greedy decoding matched to the allowed label words (``decode:
        generate``; -1 when none matches); for a generation task the generated texts."""
        if task.generative:
            return self.choose(batch) if "choice_ids" in batch else self.generate_texts(batch, task)
        if self.config.decode == "rank":
            return self.label_scores(batch).argmax(dim=1)  # torch.argmax returns the first maximum
        texts = self.tokenizer.batch_decode(self._generate(batch), skip_special_tokens=True)
        return self._tensor(self.match(texts, batch["task"].tolist()))

    def logits(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(
            f"{self.name} predicts label words (rank classification or decoding) and has no [batch, num_classes] "
            "head; strategies that need class logits (DER, lwf-vandeven) require the hf-classifier backbone"
        )
