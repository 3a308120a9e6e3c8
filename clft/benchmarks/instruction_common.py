"""Shared pieces of the instruction-tuning streams (``superni-cl``, ``instruction-tuning``).

An instruction example is ``(instruction, input, references)``; as a dataset row it has the
columns ``instruction``, ``text`` (the input), ``target`` (the first reference: what training
teaches), ``references`` (every accepted answer: what scoring compares with) and ``task``.
Generation tasks have no label ids (``classes`` is empty); their ``metric`` says how they are
scored (``clft.engine.scoring``). A task scored by choosing among candidate answers also has the
columns ``choices`` (the candidates' texts, scored as continuations of the prompt) and
``choice_labels`` (the answer each candidate stands for, compared with the references): the
text-to-text backbones then predict the label of the most likely candidate (rank
classification) instead of generating.

Per-task sizes are drawn without replacement by a generator seeded with ``(seed, task name)``,
so a stream is deterministic for a seed and a task's sample does not depend on which other
tasks are in the stream; the rows keep their file order.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import datasets
import numpy as np

from clft.data import with_task_column
from clft.errors import DataError
from clft.types import Task


@dataclass
class Rows:
    """Parallel lists of one split's examples; ``choices``: per example, (label, text) candidates, or None."""

    instructions: list[str]
    inputs: list[str]
    references: list[list[str]]
    choices: list[list[tuple[str, str]]] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, indices: Sequence[int]) -> Rows:
        choices = None if self.choices is None else [self.choices[i] for i in indices]
        return Rows([self.instructions[i] for i in indices], [self.inputs[i] for i in indices],
                    [self.references[i] for i in indices], choices)

    def with_choices(self, choices: list[list[tuple[str, str]]]) -> Rows:
        return Rows(self.instructions, self.inputs, self.references, choices)


def references_of(value, where: str) -> list[str]:
    """An output cell as a non-empty list of strings (a string, or a list of them)."""
    answers = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not answers or not all(isinstance(a, str) for a in answers):
        raise DataError(f"{where}: output must be a string or a non-empty list of strings, got {value!r}")
    return [a.strip() for a in answers]


def sample_indices(n: int, size: int | None, seed: int, name: str, salt: str, exclude: Sequence[int] = ()) -> list[int]:
    """At most ``size`` of ``range(n)`` minus ``exclude``, chosen by ``(seed, name, salt)``; sorted."""
    pool = np.setdiff1d(np.arange(n), np.asarray(exclude, dtype=np.int64))
    if size is None or size >= len(pool):
        return pool.tolist()
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(salt.encode())])
    return np.sort(rng.choice(pool, size=size, replace=False)).tolist()


def to_dataset(rows: Rows, task_id: int) -> datasets.Dataset:
    """The rows as a dataset with the columns of the module docstring."""
    columns = {"instruction": rows.instructions, "text": rows.inputs,
               "target": [refs[0] for refs in rows.references], "references": rows.references}
    if rows.choices is not None:
        columns["choices"] = [[text for _, text in pairs] for pairs in rows.choices]
        columns["choice_labels"] = [[label for label, _ in pairs] for pairs in rows.choices]
    return with_task_column(datasets.Dataset.from_dict(columns), task_id)


def generation_task(task_id: int, name: str, metric: str, splits: dict[str, Rows | None],
                    max_new_tokens: int | None) -> Task:
    """A generation Task from its rows (``train``, ``test``, optional ``val``); DataError when one is empty."""
    built = {}
    for key, rows in splits.items():
        if rows is None:
            continue
        if not len(rows):
            raise DataError(f"task {task_id} ({name!r}) has an empty {key} split")
        built[key] = to_dataset(rows, task_id)
    return Task(task_id, name, (), built["train"], built["test"], built.get("val"), metric=metric,
                max_new_tokens=max_new_tokens)


def check_size(value: int | None, key: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{key} must be >= 1 or null, got {value}")
