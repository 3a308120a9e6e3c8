"""The generic text-classification stream: your own files (or a hub dataset) cut into tasks.

Two shapes (see ``clft.benchmarks.text_sources`` for files, formats and labels):

- one source (``files`` or ``dataset``) whose classes are split into tasks by
  ``class_groups`` (explicit lists of label names or ids; classes in no group
  are left out) or ``n_tasks`` consecutive chunks of the label order (seed-
  shuffled with ``shuffle_order``); neither = one task with every class;
- ``sequence``: a list of sources, each becoming one task. In class-IL and
  task-IL each source gets its own global label ids (names shared by two
  sources are prefixed ``<task>/``); in domain-IL the sources share one label
  set (``label_names``, else the sorted union of theirs).

Validation splits come from ``files.val`` (or the hub's ``validation``).
Errors are one-line DataErrors: a missing column (naming those present), a
file that is not UTF-8, corrupt CSV/JSON, a label outside the label set, a test
label no training example has, an empty task, a class in two tasks of a class-/task-IL split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clft.benchmarks.text_common import (
    Split,
    TextConfig,
    build_task,
    chunk,
    class_split_tasks,
    seeded_order,
    unique_label_names,
    verbalizer,
)
from clft.benchmarks.text_sources import (
    Raw,
    SequenceEntry,
    SourceFields,
    check_labels_trained,
    encode,
    label_names_of,
    read_source,
)
from clft.data import check_disjoint_classes
from clft.errors import ConfigError, DataError
from clft.registry import benchmarks
from clft.types import Benchmark, Task


@dataclass
class SourceTask:
    """One sequence entry, read: its task name, own label names and raw splits."""

    name: str
    entry: SequenceEntry
    names: list[str]
    raw: Raw


@benchmarks.register()
class TextClassification(Benchmark):
    """Generic text classification from local files or a hub dataset (see the module docstring)."""

    name = "text-classification"
    input_kind = "text"

    @dataclass
    class Config(TextConfig, SourceFields):
        class_groups: list[list[str | int]] | None = None
        """Explicit tasks: lists of label names (strings) or global label ids (integers)."""
        n_tasks: int | None = None
        """Cut the label order into this many tasks (uneven sizes allowed); exclusive with class_groups."""
        shuffle_order: bool = False
        """Shuffle the label order with the run seed before cutting it into n_tasks chunks."""
        sequence: list[SequenceEntry] = field(default_factory=list)
        """One task per entry (each with its own files/dataset/columns); replaces files/dataset when given."""
        scenario: Literal["class-il", "task-il", "domain-il"] = "class-il"
        """domain-il needs a sequence whose entries share one label set."""
        hub: bool = False
        """Download ``dataset`` from the HuggingFace hub when local files are not given or missing."""

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.class_groups is not None and self.n_tasks is not None:
                raise ValueError("give class_groups or n_tasks, not both")
            if self.n_tasks is not None and self.n_tasks < 1:
                raise ValueError(f"n_tasks must be >= 1, got {self.n_tasks}")
            if not self.sequence:
                if self.scenario == "domain-il":
                    raise ValueError("domain-il needs a 'sequence' of datasets sharing one label set")
                self.check_source()
                return
            if self.files is not None or self.dataset is not None or self.class_groups or self.n_tasks:
                raise ValueError("with 'sequence' give files/dataset in its entries, and no class_groups/n_tasks")
            if self.label_names is not None and self.scenario != "domain-il":
                raise ValueError("top-level label_names apply to a domain-il sequence; give them per entry")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        if not config.sequence:
            self._init_single(config)
        else:
            self._init_sequence(config)
        self.label_texts = verbalizer(config, self.label_names)

    def _init_single(self, config: Config) -> None:
        raw = read_source(config, config.data_dir, config.hub, "text-classification")
        check_labels_trained(raw, "text-classification")
        self.label_names = label_names_of(raw, config.label_names, "text-classification")
        self._splits: dict[str, Split] = {
            key: (texts, encode(labels, self.label_names, f"text-classification {key} split"))
            for key, (texts, labels) in raw.items()
        }

    def _init_sequence(self, config: Config) -> None:
        self._entries: list[SourceTask] = []
        for i, entry in enumerate(config.sequence):
            where = f"sequence[{i}] ({entry.task_name()})"
            raw = read_source(entry, config.data_dir, config.hub, where)
            if self.scenario != "domain-il":  # own label ids: each must be trained in its own task
                check_labels_trained(raw, where)
            self._entries.append(
                SourceTask(entry.task_name(), entry, label_names_of(raw, entry.label_names, where), raw)
            )
        names = [task.name for task in self._entries]
        if len(set(names)) != len(names):
            raise ConfigError(f"sequence: task names must be unique (give 'name'), got {names}")
        if self.scenario == "domain-il":  # one label set: a label must be trained in some task
            check_labels_trained(_merged([task.raw for task in self._entries]), "sequence")
            shared = config.label_names or sorted({n for task in self._entries for n in task.names})
            self.label_names = list(shared)
        else:
            self.label_names = unique_label_names([(task.name, task.names) for task in self._entries])

    def tasks(self, seed: int) -> list[Task]:
        if self.config.sequence:
            stream = self._sequence_tasks(seed)
        else:
            stream = class_split_tasks(self.groups(seed), self._splits, self.config.instruction, self.config, seed)
        check_disjoint_classes(stream, self.scenario)
        return stream

    def groups(self, seed: int) -> list[tuple[str, list[int]]]:
        """(task name, label ids) per task for a single source."""
        config, count = self.config, len(self.label_names)
        if config.class_groups is not None:
            return [(f"task-{i}", self._group_ids(group, i)) for i, group in enumerate(config.class_groups)]
        order = seeded_order(range(count), config.shuffle_order, seed)
        n_tasks = config.n_tasks or 1
        if n_tasks > count:
            raise ConfigError(f"n_tasks {n_tasks} exceeds the {count} classes of the data")
        return [(f"task-{i}", [int(c) for c in part]) for i, part in enumerate(chunk(order, n_tasks))]

    def _group_ids(self, group: list[str | int], index: int) -> list[int]:
        ids = []
        for item in group:
            if isinstance(item, str) and item in self.label_names:
                ids.append(self.label_names.index(item))
            elif isinstance(item, int) and 0 <= item < len(self.label_names):
                ids.append(item)
            else:
                shown = ", ".join(map(repr, self.label_names[:8])) + (" ..." if len(self.label_names) > 8 else "")
                raise ConfigError(f"class_groups[{index}]: {item!r} is not a label name or id; labels: {shown}")
        return ids

    def _sequence_tasks(self, seed: int) -> list[Task]:
        stream, offset = [], 0
        for task_id, task in enumerate(self._entries):
            where = f"sequence[{task_id}] ({task.name})"
            if self.scenario == "domain-il":
                mapping = [self._shared_id(name, where) for name in task.names]
            else:
                mapping = list(range(offset, offset + len(task.names)))
                offset += len(task.names)
            splits = {
                key: (texts, [mapping[i] for i in encode(labels, task.names, f"{where} {key} split")])
                for key, (texts, labels) in task.raw.items()
            }
            classes = sorted(set(mapping))
            stream.append(build_task(task_id, task.name, classes, splits, task.entry.instruction, self.config, seed))
        return stream

    def _shared_id(self, name: str, where: str) -> int:
        if name not in self.label_names:
            raise DataError(f"{where}: label {name!r} outside the shared label set {self.label_names[:8]}")
        return self.label_names.index(name)


def _merged(raws: list[Raw]) -> Raw:
    """The splits of several sources concatenated (the labels are what is compared)."""
    keys = dict.fromkeys(key for raw in raws for key in raw)
    return {key: ([t for raw in raws if key in raw for t in raw[key][0]],
                  [label for raw in raws if key in raw for label in raw[key][1]]) for key in keys}
