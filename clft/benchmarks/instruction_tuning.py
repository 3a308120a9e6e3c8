"""``instruction-tuning``: a continual instruction-tuning stream from your own files, YAML only.

``files: {train: PATH, test: PATH[, val: PATH]}`` in JSONL, JSON, CSV/TSV or Parquet (by
extension; relative paths are under ``data_dir``/``$CLFT_DATA_DIR`` when set). Each row has an
``instruction``, an ``input`` and an ``output`` (a string, or in JSON/JSONL/Parquet a list of
accepted answers), and optionally a ``task``; ``columns`` renames them
(``{input: question, output: answer}``). With a task column every distinct task is one step of
the stream, in ``order`` (a list of task names) or in order of first appearance in the train
file; without one the file is a single task named ``task``. ``metric`` (``rouge-l`` by default,
or ``exact-match``) scores every task unless ``metrics`` names another one for it. Sizes,
``general_tasks`` (held out of the stream, scored before training and after every task) and
``max_new_tokens`` work as in ``superni-cl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clft.benchmarks.instruction_common import Rows, check_size, generation_task, references_of, sample_indices
from clft.benchmarks.text_io import read_table, require_columns
from clft.benchmarks.text_sources import resolve
from clft.data import LocalDataConfig, data_dir
from clft.engine.scoring import GENERATION_METRICS
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks
from clft.types import Benchmark, Task

FIELDS = ("instruction", "input", "output", "task")
SINGLE = "task"


@benchmarks.register()
class InstructionTuning(Benchmark):
    """Instruction-tuning tasks from local files (see the module docstring)."""

    name = "instruction-tuning"
    input_kind = "text"
    scenarios = ("task-il", "domain-il")

    @dataclass
    class Config(LocalDataConfig):
        files: dict[str, str] = field(default_factory=dict)
        """``{train: path, test: path[, val: path]}``."""
        columns: dict[str, str] = field(default_factory=dict)
        """Column names in the files for instruction / input / output / task, when they differ."""
        order: list[str] | None = None
        """Task order (names from the task column); None: order of first appearance in train."""
        metric: Literal["rouge-l", "exact-match"] = "rouge-l"
        """How every task is scored unless ``metrics`` says otherwise."""
        metrics: dict[str, str] = field(default_factory=dict)
        """Per-task metric (task name -> rouge-l | exact-match)."""
        train_size: int | None = None
        """Training examples per task (seeded sample); None: all."""
        test_size: int | None = None
        """Test (and validation) examples per task (seeded sample); None: all."""
        general_tasks: list[str] = field(default_factory=list)
        """Tasks held out of the stream and scored as general ability."""
        max_new_tokens: int = 64
        """Generation cap per example (a backbone's ``max_new_tokens`` option overrides it)."""
        scenario: Literal["task-il", "domain-il"] = "task-il"
        """task-il: strategies may use the task id at test time; domain-il: they may not."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if not {"train", "test"} <= set(self.files) or set(self.files) - {"train", "test", "val"}:
                raise ValueError(f"files needs train and test (and optionally val), got {sorted(self.files)}")
            unknown = set(self.columns) - set(FIELDS)
            if unknown:
                raise ValueError(f"columns: unknown field(s) {sorted(unknown)}; valid: {', '.join(FIELDS)}")
            for task, metric in self.metrics.items():
                if metric not in GENERATION_METRICS:
                    raise ValueError(f"metrics[{task!r}]: {metric!r} is not one of {', '.join(GENERATION_METRICS)}")
            for key in ("train_size", "test_size", "max_new_tokens"):
                check_size(getattr(self, key), key)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        self.label_names: list[str] = []
        root = data_dir(config.data_dir)
        self.splits = {key: self._read(resolve(path, root), key) for key, path in config.files.items()}
        found = list(dict.fromkeys(self.splits["train"]))
        names = config.order if config.order is not None else [n for n in found if n not in config.general_tasks]
        for name in [*names, *config.general_tasks]:
            if name not in self.splits["train"] and name not in self.splits["test"]:
                raise ConfigError(f"instruction-tuning: no task {name!r} in the files; tasks: {', '.join(found)}")
        self.order = names
        if set(names) & set(config.general_tasks):
            raise ConfigError("instruction-tuning: general_tasks must not be in the stream's order")

    def _read(self, path, split: str) -> dict[str, Rows]:
        """task name -> its rows of one file."""
        columns = read_table(path)
        name = {f: self.config.columns.get(f, f) for f in FIELDS}
        require_columns(columns, [name["instruction"], name["input"], name["output"]], f"{path}")
        tasks = columns.get(name["task"]) or [SINGLE] * len(columns[name["input"]])
        by_task: dict[str, Rows] = {}
        for i, task in enumerate(tasks):
            rows = by_task.setdefault(str(task), Rows([], [], []))
            rows.instructions.append(str(columns[name["instruction"]][i] or "").strip())
            rows.inputs.append(str(columns[name["input"]][i] or "").strip())
            rows.references.append(references_of(columns[name["output"]][i], f"{path} row {i + 1}"))
        return by_task

    def tasks(self, seed: int) -> list[Task]:
        return [self._task(i, name, seed) for i, name in enumerate(self.order)]

    def general_tasks(self, seed: int) -> list[Task]:
        return [self._task(len(self.order) + i, name, seed) for i, name in enumerate(self.config.general_tasks)]

    def _task(self, task_id: int, name: str, seed: int) -> Task:
        cfg, splits = self.config, {}
        for key, size in (("train", cfg.train_size), ("test", cfg.test_size), ("val", cfg.test_size)):
            if key not in self.splits:
                continue
            rows = self.splits[key].get(name)
            if rows is None:
                raise DataError(f"instruction-tuning: task {name!r} has no rows in the {key} file")
            splits[key] = rows.take(sample_indices(len(rows), size, seed, name, key))
        return generation_task(task_id, name, cfg.metrics.get(name, cfg.metric), splits, cfg.max_new_tokens)
