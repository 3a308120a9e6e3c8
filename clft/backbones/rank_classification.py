"""Rank classification for the text-to-text backbones (``hf-causal-lm``, ``hf-seq2seq``).

A label-word LM classifies by scoring words, not by decoding them: the score of
label c for example b is the log-likelihood of c's target (its word + EOS, the
sequence it is trained on) given b's prompt,

    s[b, c] = Σ_t log p(y_c,t | prompt_b, y_c,<t),

computed for the labels the scenario allows for b (``LabelSpace.allowed``:
task-IL its task's, class-IL those seen so far, domain-IL all) and -inf for the
others; ``predict`` takes the argmax, the lowest id on a tie (the zero-shot
evaluation of language models as in Brown et al., "Language Models are Few-Shot
Learners", NeurIPS 2020, and the rank classification of T0, Sanh et al., ICLR
2022). Unlike exact match of a generated text, every example gets a label, and
the score ranks labels whose words the model would not produce verbatim.

Cost: the batch's prompts are encoded once (``_encode_prompts``), then every
allowed (example, target) pair is scored from those states (``_score_pairs``) in
chunks of ``rank_batch_size`` pairs: ``hf-causal-lm`` repeats the prompts' KV
cache per pair with transformers' ``Cache.batch_select_indices``, ``hf-seq2seq``
repeats the encoder states. Labels whose words are equal are scored once per
example, so they tie exactly.

``choose`` picks, per example, the most likely of its own candidate answers (a
multiple-choice or classification task's ``choices``, scored as continuations of
the prompt, the "cloze" form) and returns that candidate's label.
``continuation_nll`` scores any token continuation the same way (the mean
per-token negative log-likelihood, e.g. the log-perplexity of a generated text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from clft.types import Batch


def target_log_probs(lm_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[N]: Σ_t log softmax(lm_logits[n, t])[labels[n, t]] over the positions where labels != -100
    (logits [N, T, V] already aligned with the tokens they predict), in float32."""
    tokens = F.cross_entropy(lm_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="none")
    return -tokens.view(labels.shape).sum(dim=1)


class RankClassifier:
    """The scoring half of ``HFTextToText``: needs ``target_ids`` (one id list per label),
    ``label_space``, ``device`` and ``config.rank_batch_size``; subclasses implement
    ``_encode_prompts`` and ``_score_pairs``."""

    target_ids: list[list[int]]

    @property
    def target_lengths(self) -> list[int]:
        """Token count of each label's target (its word + EOS), indexed by global label id."""
        return [len(ids) for ids in self.target_ids]

    def label_scores(self, batch: Batch) -> torch.Tensor:
        """[B, num_classes] float32: s[b, c] = Σ_t log p(y_c,t | prompt_b, y_c,<t) over the target
        y_c of label c (its word + EOS, ``target_ids[c]``) for every label the label space allows
        for example b (``label_space.allowed(task_b)``), -inf elsewhere. Only allowed pairs are
        scored, each distinct (example, target) once (labels sharing a word tie exactly), with
        the prompts encoded once (``pair_log_probs``)."""
        allowed = self.label_space.mask(batch["task"].tolist(), self.device)
        rows, labels = allowed.nonzero(as_tuple=True)
        distinct: dict[tuple[int, tuple[int, ...]], int] = {}
        index = [distinct.setdefault((r, tuple(self.target_ids[c])), len(distinct))
                 for r, c in zip(rows.tolist(), labels.tolist())]
        scores = torch.full(allowed.shape, float("-inf"), dtype=torch.float32, device=self.device)
        if distinct:
            pair_rows = torch.tensor([r for r, _ in distinct], dtype=torch.long, device=self.device)
            values = self.pair_log_probs(batch, pair_rows, [list(t) for _, t in distinct])
            scores[rows, labels] = values[torch.tensor(index, device=self.device)]
        return scores

    def choose(self, batch: Batch) -> list[str]:
        """Per example, the label (``choice_labels``) of its most likely candidate: argmax over its
        candidates k of Σ_t log p(c_k,t | prompt, c_k,<t), c_k the candidate's text + EOS
        (``choice_ids``), the first on a tie; all pairs scored with the prompts encoded once."""
        owners = [row for row, candidates in enumerate(batch["choice_ids"]) for _ in candidates]
        flat = [ids for candidates in batch["choice_ids"] for ids in candidates]
        scores = self.pair_log_probs(batch, torch.tensor(owners, device=self.device), flat).tolist()
        chosen, start = [], 0
        for labels in batch["choice_labels"]:
            part = scores[start : start + len(labels)]
            chosen.append(labels[part.index(max(part))])
            start += len(labels)
        return chosen

    def continuation_nll(self, batch: Batch, continuations: Sequence[Sequence[int]]) -> torch.Tensor:
        """[B]: -(1/|y_b|) Σ_t log p(y_b,t | prompt_b, y_b,<t), the mean per-token negative
        log-likelihood of the token ids ``continuations[b]`` after example b's prompt (the log
        of the perplexity of a generated text: append EOS to score its end too)."""
        if len(continuations) != len(batch["task"]):
            raise ValueError(f"{len(continuations)} continuations for a batch of {len(batch['task'])}")
        empty = [i for i, ids in enumerate(continuations) if not len(ids)]
        if empty:
            raise ValueError(f"continuation {empty[0]} is empty; score at least one token (e.g. EOS)")
        rows = torch.arange(len(continuations), device=self.device)
        lengths = torch.tensor([len(ids) for ids in continuations], dtype=torch.float32, device=self.device)
        return -self.pair_log_probs(batch, rows, [list(ids) for ids in continuations]) / lengths

    def pair_log_probs(self, batch: Batch, rows: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
        """[N]: Σ_t log p(targets[n][t] | prompt of example rows[n], targets[n][<t]) per pair n.

        The batch's prompts are encoded once (``_encode_prompts``); the pairs are scored from
        those states in chunks of ``rank_batch_size`` (``_score_pairs``), so no pair re-reads
        its prompt."""
        encoded = self._encode_prompts(batch)
        size, count = self.config.rank_batch_size, len(targets)
        parts = [self._score_pairs(encoded, rows[i : i + size], [list(t) for t in targets[i : i + size]],
                                   last=i + size >= count)
                 for i in range(0, count, size)]
        return torch.cat(parts) if parts else torch.zeros(0, device=self.device)

    def _encode_prompts(self, batch: Batch) -> Any:  # pragma: no cover - interface
        """The batch's prompts run through the model once: the states pairs are scored from."""
        raise NotImplementedError

    def _score_pairs(self, encoded: Any, rows: torch.Tensor, targets: list[list[int]],
                     last: bool) -> torch.Tensor:  # pragma: no cover - interface
        """[N]: summed target log-probabilities of each (prompt row, target) pair (``pair_log_probs``);
        ``last``: no later chunk reads ``encoded`` (it may be consumed)."""
        raise NotImplementedError
