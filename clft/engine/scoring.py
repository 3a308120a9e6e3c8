"""Per-task scores of generated text: the metric a task is judged by.

A task's ``metric`` (``clft.types.Task.metric``) is one of :data:`METRICS`:

- ``accuracy``: predicted label id == label (classification backbones; the runner's default);
- ``exact-match``: 1 when the normalised generation equals the normalised form of any
  reference, else 0 (Super-NaturalInstructions' ``exact_match``; normalisation as SQuAD's:
  lower-case, punctuation and the articles a/an/the removed, whitespace collapsed);
- ``rouge-l``: the ROUGE-L F-measure (longest common subsequence of tokens,
  F = (1+β²)PR/(R+β²P) with β = 1, i.e. 2PR/(P+R), P = LCS/|generation|, R = LCS/|reference|),
  the maximum over the references, computed by Google's maintained ``rouge-score`` package with
  its default tokenizer and Porter stemming (``use_stemmer=True``, as SuperNI's evaluation does).

Scores lie in [0, 1]; a task's score is the mean over its test examples (papers print ×100).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache

from clft.errors import ConfigError

METRICS = ("accuracy", "exact-match", "rouge-l")
GENERATION_METRICS = ("exact-match", "rouge-l")


def check_metric(metric: str, where: str = "metric") -> str:
    if metric not in METRICS:
        raise ConfigError(f"{where}: unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    return metric


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when ``normalize_answer(prediction)`` equals that of any reference, else 0.0."""
    got = normalize_answer(prediction)
    return float(any(got == normalize_answer(ref) for ref in references))


@lru_cache(maxsize=1)
def _rouge_scorer():
    try:
        from rouge_score import rouge_scorer
    except ModuleNotFoundError:
        raise ConfigError("ROUGE-L scoring needs the package rouge-score (pip install 'clft[llm]')") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    """max over references of the ROUGE-L F-measure (see the module docstring)."""
    scorer = _rouge_scorer()
    return max((scorer.score(ref, prediction)["rougeL"].fmeasure for ref in references), default=0.0)


def example_scores(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """One score per example for a generation metric (``exact-match`` or ``rouge-l``)."""
    if metric not in GENERATION_METRICS:
        raise ValueError(f"{metric!r} is not a generation metric ({', '.join(GENERATION_METRICS)})")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    score = exact_match if metric == "exact-match" else rouge_l
    return [score(p, list(refs)) for p, refs in zip(predictions, references)]
