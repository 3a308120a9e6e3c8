"""Batch index lists for training and evaluation, with optional length bucketing.

``train_batches`` shuffles; with per-example ``lengths`` it also buckets: the
shuffled indices are cut into chunks of ``chunk_batches`` batches, each chunk is
sorted by length and cut into batches, and the order of all batches is shuffled
again. Batches then hold examples of similar length, so dynamic padding pads
little, while every batch still comes from a random ~``chunk_batches * batch_size``
slice of the data (the same scheme as fairseq/AllenNLP "sorted within chunks").
Everything random comes from the ``numpy.random.Generator`` passed in, so a
generator seeded the same way gives the same batches.

``eval_batches`` needs no randomness: longest examples first when lengths are
given (an out-of-memory error shows on the first batch), each batch cut where
padding to its longest example would exceed ``EVAL_PADDING`` of its real tokens.
A batch of 256 CLINC150 test examples (4-29 MiniLM tokens) padded to its longest
was 2.0x the real tokens; an encoder's evaluation is its matrix products, so
padding was half its time (MiniLM + LoRA: 198 -> 315 examples/s of CPU time
with the bound). Padding is masked out, so predictions do not depend on the cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK_BATCHES = 50
EVAL_PADDING = 0.1
"""Padding tokens an evaluation batch may hold, as a fraction of its real tokens (0.0 and 0.25 were as
fast for MiniLM on CLINC150; below the bound batches get smaller, above it padding costs)."""


def _check(n: int, batch_size: int, lengths: Sequence[int] | None) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if lengths is not None and len(lengths) != n:
        raise ValueError(f"lengths has {len(lengths)} entries for {n} examples")


def _cut(indices: np.ndarray, batch_size: int) -> list[list[int]]:
    return [indices[i : i + batch_size].tolist() for i in range(0, len(indices), batch_size)]


def train_batches(
    n: int,
    batch_size: int,
    generator: np.random.Generator,
    lengths: Sequence[int] | None = None,
    bucket: bool = True,
    chunk_batches: int = CHUNK_BATCHES,
) -> list[list[int]]:
    """Shuffled batches of ``range(n)``: every index exactly once, at most one short batch.

    With ``lengths`` and ``bucket``: sort-within-chunks bucketing (module docstring);
    otherwise plain shuffled batches. Deterministic for the generator's state.
    """
    _check(n, batch_size, lengths)
    order = generator.permutation(n)
    if lengths is None or not bucket:
        return _cut(order, batch_size)
    sizes = np.asarray(lengths)
    chunk = batch_size * max(1, chunk_batches)
    batches: list[list[int]] = []
    for start in range(0, n, chunk):
        part = order[start : start + chunk]
        batches += _cut(part[np.argsort(sizes[part], kind="stable")], batch_size)
    return [batches[i] for i in generator.permutation(len(batches))]


def eval_batches(n: int, batch_size: int, lengths: Sequence[int] | None = None,
                 padding: float = EVAL_PADDING) -> list[list[int]]:
    """Batches of ``range(n)`` in order, or longest-first when ``lengths`` are given: at most
    ``batch_size`` examples, and at most ``padding`` x its real tokens of padding to its first
    (longest) example, n_b x max_b ≤ (1 + padding) x Σ_b length (a batch holds at least one example)."""
    _check(n, batch_size, lengths)
    if lengths is None:
        return _cut(np.arange(n), batch_size)
    sizes = np.asarray(lengths)
    batches: list[list[int]] = []
    batch: list[int] = []
    tokens = 0
    for index in np.argsort(-sizes, kind="stable").tolist():
        padded = (len(batch) + 1) * (sizes[batch[0]] if batch else 0)
        if batch and (len(batch) == batch_size or padded > (1 + padding) * (tokens + sizes[index])):
            batches.append(batch)
            batch, tokens = [], 0
        batch.append(index)
        tokens += int(sizes[index])
    return batches + ([batch] if batch else [])
