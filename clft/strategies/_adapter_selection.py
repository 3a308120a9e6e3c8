"""Per-adapter scores for ``adapter-per-task``'s task inference (class-IL / domain-IL).

Each function scores a batch under ONE adapter (the active one) and returns
``(score [B], prediction)``: the lower the score, the more that adapter claims
the example; ``prediction`` is what the adapter answers (global label ids [B],
or the generated texts of a generation task). The strategy runs every trained
adapter and keeps, per example, the adapter of lowest score.

- ``entropy_score`` (classifier, AdapterCL's confidence): the entropy of the
  softmax over the adapter's task classes, divided by log C_t.
- ``rank_score`` (text-to-text classification, AdapterCL's perplexity): the
  log-perplexity of the adapter's rank-classification answer among its task's
  classes, -label_scores[best] / target_lengths[best].
- ``generation_score`` (text-to-text generation): the log-perplexity of the
  adapter's greedy generation (``generated_ids``), from ``continuation_nll``.
- ``prototype_score`` (the ``prototype`` selector): minus the cosine similarity
  of the example's embedding to the nearest class prototype of the task.

Log-perplexities are compared instead of perplexities: exp is increasing, so
the argmin is the same and nothing overflows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from clft.types import Backbone, Batch, Task


def entropy_score(backbone: Backbone, batch: Batch, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """H(p) / log C with p = softmax(logits[:, classes]) (0 when C = 1), and classes[argmax p]."""
    logits = backbone.logits(batch)
    classes = classes.to(logits.device)
    logits = logits[:, classes].float()
    log_p = logits.log_softmax(dim=-1)
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    normaliser = math.log(len(classes)) if len(classes) > 1 else 1.0
    return entropy / normaliser, classes[logits.argmax(dim=-1)]


def rank_score(backbone: Backbone, batch: Batch, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-s[best] / n[best] with s = label_scores[:, classes] (summed target-token log-probs), n their
    target token counts (EOS included) and best = argmax s: the log-perplexity of the answer."""
    scores = backbone.label_scores(batch).float()
    classes = classes.to(scores.device)
    scores = scores[:, classes]
    lengths = torch.as_tensor(backbone.target_lengths, device=scores.device)[classes].to(scores.dtype)
    best = scores.argmax(dim=-1)
    log_perplexity = -scores.gather(1, best[:, None]).squeeze(1) / lengths[best]
    return log_perplexity, classes[best]


def generation_score(backbone: Backbone, batch: Batch, task: Task) -> tuple[torch.Tensor, list[str]]:
    """The log-perplexity of the adapter's greedy generation (``continuation_nll`` of its token ids,
    EOS included when it stopped there), and the generated texts (decoded as ``generate_texts`` does)."""
    ids = backbone.generated_ids(batch, task)
    texts = [text.strip() for text in backbone.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return backbone.continuation_nll(batch, ids).float(), texts


def prototype_score(backbone: Backbone, batch: Batch, prototypes: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Minus the largest cosine between each embedding and the task's class prototypes, and the
    argmax of the adapter's head over the task's classes."""
    embedding = backbone.embed(batch)
    classes = prototypes["classes"].to(embedding.device)
    similarity = F.normalize(embedding.float(), dim=-1) @ prototypes["means"].to(embedding.device).T
    return -similarity.max(dim=-1).values, classes[backbone.head(embedding)[:, classes].argmax(dim=-1)]


@torch.no_grad()
def class_prototypes(backbone: Backbone, task: Task, batch_size: int) -> dict:
    """{"classes": LongTensor [C], "means": [C, H]}: L2-normalised mean embedding of each class of ``task.train``."""
    data = backbone.prepare(task.train)
    was_training = backbone.model.training
    backbone.model.eval()
    try:
        chunks = [backbone.collate(data[i : i + batch_size]) for i in range(0, len(data), batch_size)]
        embeddings = torch.cat([backbone.embed(batch).float() for batch in chunks])
        labels = torch.cat([batch["label"] for batch in chunks])
    finally:
        backbone.model.train(was_training)
    classes = sorted(task.classes)
    means = torch.stack([embeddings[labels == c].mean(dim=0) for c in classes])
    return {"classes": torch.tensor(classes, dtype=torch.long), "means": F.normalize(means, dim=-1).cpu()}


def pick(predictions: list, chosen: torch.Tensor):
    """Per example i, ``predictions[chosen[i]][i]``: a tensor [B] of label ids, or a list of texts."""
    if isinstance(predictions[0], torch.Tensor):
        return torch.stack(predictions).gather(0, chosen.to(predictions[0].device)[None]).squeeze(0)
    return [predictions[int(c)][i] for i, c in enumerate(chosen)]
