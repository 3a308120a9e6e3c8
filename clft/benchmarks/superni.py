"""``superni-cl``: the 15-task Super-NaturalInstructions continual instruction-tuning stream.

As shipped by SAPT (Zhao et al., ACL 2024; github circle-hit/SAPT ``CL_Benchmark/SuperNI``)
and used by later LLM continual-learning papers, read from
``<data_dir>/superni_cl/<task folder>/{train,test}.json`` (``data_dir``: the option, else
``$CLFT_DATA_DIR``). Each file is in the SuperNI task format: the task's ``Definition`` is
the instruction of every example, ``Instances`` (``input``, ``output``: accepted answers)
the examples. A task is named by its folder (``task1572_samsum_summary``) or its short name
(``samsum``).

- ``order``: 1 or 2 (SAPT's orders, :data:`ORDERS`) or an explicit list of task names;
  ``n_tasks`` keeps the first n of it.
- Sizes per task: ``train_size`` (SAPT: 1000), ``test_size`` (SAPT: 100, all), ``val_size``;
  None keeps every example. The shipped ``dev.json`` equals ``test.json``, so validation
  examples are drawn from ``train.json`` instead, disjoint from the training sample.
- Metric: exact match for the three classification tasks (folder name ending in
  ``_classification``: sst2, sentiment140, emotion), ROUGE-L for the others (``clft.engine.scoring``).
- ``general_tasks``: tasks held out of the stream and scored before training and after every
  task (general ability; ``general_test_size`` examples each; never trained on, their
  ``train_size`` training sample only sets a generated answer's length cap, the backbone's
  longest training reference). With ``general_choices`` the
  general tasks whose answer is one of a closed set are scored by rank classification
  (``instruction_common``: ``choices``) with exact match of the chosen answer: a multiple-choice
  task whose every input lists lettered options ``(A)... (B)...`` and whose references are
  letters (commonsenseqa) chooses among its options' texts, each scored as the continuation of
  the prompt (the "cloze" form of multiple-choice evaluation, which measures a small model's
  knowledge where letter answers measure its letter bias), and answers the chosen letter; a
  ``_classification`` task (sst2, sentiment140, emotion) chooses among the answers its files
  use. Other general tasks are generated.
- ``scenario``: ``task-il`` (default; strategies that pick an adapter by task id may) or
  ``domain-il`` (no task id at test time). Generation has no label space, so this matters only
  to strategies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clft.benchmarks.instruction_common import Rows, check_size, generation_task, references_of, sample_indices
from clft.benchmarks.text_io import read_json
from clft.data import LocalDataConfig, data_dir
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks
from clft.types import Benchmark, Task

FOLDER = "superni_cl"
OPTION = re.compile(r"\(([A-Z])\)")
SOURCE = "github circle-hit/SAPT CL_Benchmark/SuperNI"
ORDERS = {
    1: ["samsum", "sst2", "xsum", "outcome_extraction", "quoref", "evalution_relation_extraction", "multi_woz",
        "personachat", "commonsenseqa", "diplomacy", "glucose", "reddit_tifu", "sciq", "sentiment140", "emotion"],
    2: ["glucose", "commonsenseqa", "diplomacy", "multi_woz", "samsum", "sentiment140", "sciq", "sst2",
        "evalution_relation_extraction", "personachat", "outcome_extraction", "reddit_tifu", "quoref", "xsum",
        "emotion"],
}


@benchmarks.register()
class SuperNICL(Benchmark):
    """SuperNI continual instruction tuning (see the module docstring)."""

    name = "superni-cl"
    input_kind = "text"
    scenarios = ("task-il", "domain-il")

    @dataclass
    class Config(LocalDataConfig):
        order: int | list[str] = 1
        """1 or 2 (SAPT's task orders) or an explicit list of task names (folder or short names)."""
        n_tasks: int | None = None
        """Keep the first n tasks of the order; None: all."""
        train_size: int | None = None
        """Training examples per task (seeded sample); None: all (SAPT: 1000)."""
        test_size: int | None = None
        """Test examples per task (seeded sample); None: all (100 for most tasks)."""
        val_size: int | None = None
        """Validation examples per task, drawn from train.json disjoint from the training sample."""
        general_tasks: list[str] = field(default_factory=list)
        """Held-out tasks scored before training and after each task (general ability)."""
        general_test_size: int | None = None
        """Test examples per general-ability task; None: all."""
        general_choices: bool = False
        """Score the multiple-choice and classification general tasks by rank classification over their
        answers (module docstring) instead of generating."""
        max_new_tokens: int = 50
        """Generation cap per example (a backbone's ``max_new_tokens`` option overrides it)."""
        scenario: Literal["task-il", "domain-il"] = "task-il"
        """task-il: strategies may use the task id at test time; domain-il: they may not."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if not isinstance(self.order, list) and self.order not in ORDERS:
                raise ValueError(f"order must be 1, 2 or a list of task names, got {self.order!r}")
            for key in ("n_tasks", "train_size", "test_size", "val_size", "general_test_size", "max_new_tokens"):
                check_size(getattr(self, key), key)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        self.label_names: list[str] = []
        self.root = self._root(config)
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        names = ORDERS[config.order] if not isinstance(config.order, list) else config.order
        self.order = [resolve_task(name, folders) for name in names][: config.n_tasks]
        self.general = [resolve_task(name, folders) for name in config.general_tasks]
        overlap = sorted(set(self.order) & set(self.general))
        if overlap:
            raise ConfigError(f"general_tasks {overlap} are also in the stream; hold out tasks not in the order")

    @staticmethod
    def _root(config: Config) -> Path:
        root = data_dir(config.data_dir)
        folder = root / FOLDER if root is not None else None
        if folder is None or not folder.is_dir():
            raise DataError(f"superni-cl: no folder {FOLDER}/ under the data directory {root} "
                            f"(set CLFT_DATA_DIR or data_dir; get it from {SOURCE})")
        return folder

    def tasks(self, seed: int) -> list[Task]:
        return [self._task(i, folder, seed) for i, folder in enumerate(self.order)]

    def general_tasks(self, seed: int) -> list[Task]:
        """The held-out general-ability tasks (ids after the stream's), test split only used."""
        start = len(self.order)
        return [self._task(start + i, folder, seed, general=True) for i, folder in enumerate(self.general)]

    def _task(self, task_id: int, folder: str, seed: int, general: bool = False) -> Task:
        cfg = self.config
        train, test = read_rows(self.root / folder / "train.json"), read_rows(self.root / folder / "test.json")
        # a general task is never trained on; its training sample sets its generation cap (the longest reference)
        train_rows = sample_indices(len(train), cfg.train_size, seed, folder, "train")
        val_rows = sample_indices(len(train), cfg.val_size, seed, folder, "val", train_rows) if cfg.val_size else None
        test_size = cfg.general_test_size if general else cfg.test_size
        metric = metric_of(folder)
        if general and cfg.general_choices:
            candidates = answer_choices(folder, train, test)
            if candidates is not None:
                test, metric = test.with_choices(candidates), "exact-match"
        splits = {"train": train.take(train_rows), "test": test.take(sample_indices(len(test), test_size, seed,
                                                                                    folder, "test")),
                  "val": train.take(val_rows) if val_rows is not None else None}
        return generation_task(task_id, folder, metric, splits, cfg.max_new_tokens)


def metric_of(folder: str) -> str:
    """exact-match for the classification tasks, rouge-l for the others."""
    return "exact-match" if folder.endswith("_classification") else "rouge-l"


def lettered_options(text: str) -> list[tuple[str, str]] | None:
    """``[(letter, option text)]`` of an input ending in options ``(A)x (B)y ...`` (A, B, ... in order), else None."""
    marks = list(OPTION.finditer(text))
    if len(marks) < 2 or [m.group(1) for m in marks] != [chr(ord("A") + i) for i in range(len(marks))]:
        return None
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [(m.group(1), text[m.end() : end].strip()) for m, end in zip(marks, ends)]


def answer_choices(folder: str, train: Rows, test: Rows) -> list[list[tuple[str, str]]] | None:
    """Per test example, its ``(answer, text to score)`` candidates: the lettered options when every
    input has them and every reference is one of its letters; a classification task's answers (every
    reference of its files, sorted) for each example; else None (the task is generated)."""
    options = [lettered_options(text) for text in test.inputs]
    if all(o is not None and set(refs) <= {letter for letter, _ in o} for o, refs in zip(options, test.references)):
        return options
    if folder.endswith("_classification"):
        answers = sorted({ref for refs in train.references + test.references for ref in refs})
        return [[(answer, answer) for answer in answers]] * len(test)
    return None


def resolve_task(name: str, folders: list[str]) -> str:
    """The folder of task ``name`` (a folder name, or the short name after ``taskNNN_``)."""
    if name in folders:
        return name
    matches = [f for f in folders if re.fullmatch(rf"task\d+_{re.escape(name)}(_.*)?", f)]
    if len(matches) != 1:
        shown = ", ".join(folders[:20])
        raise ConfigError(f"superni-cl: task {name!r} is {'ambiguous' if matches else 'unknown'}; tasks: {shown}")
    return matches[0]


def read_rows(path: Path) -> Rows:
    """A SuperNI task file's instances as Rows (the Definition as every row's instruction)."""
    data = read_json(path)
    if not isinstance(data, dict) or "Instances" not in data or "Definition" not in data:
        raise DataError(f"{path}: not a SuperNI task file (needs 'Definition' and 'Instances')")
    definition = data["Definition"]
    instruction = (definition[0] if isinstance(definition, list) else str(definition)).strip()
    instances = data["Instances"]
    refs = [references_of(x.get("output"), f"{path} instance {i}") for i, x in enumerate(instances)]
    return Rows([instruction] * len(instances), [str(x.get("input", "")).strip() for x in instances], refs)
