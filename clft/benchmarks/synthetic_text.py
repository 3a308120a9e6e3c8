"""``synthetic-text``: a tiny offline text stream of topic sentences (smoke tests, conformance).

No files, no downloads: class k is a topic with six common English words;
each example is ``"<opener> <word> and <word>"`` with two words of its topic,
drawn by a generator seeded with ``(seed, split)``, and one of four openers.
A topic's words are in every WordPiece/BPE vocabulary (e.g. MiniLM's), so
a tiny model learns the stream in a few steps. The ``n_tasks x
classes_per_task`` topics are cut into tasks in order (class-IL or task-IL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import datasets
import numpy as np

from clft.data import make_task
from clft.registry import benchmarks
from clft.types import Benchmark, Task

TOPICS = {
    "sports": ["football", "goal", "team", "match", "player", "coach"],
    "food": ["pizza", "bread", "cheese", "soup", "apple", "dinner"],
    "music": ["guitar", "song", "piano", "band", "concert", "singer"],
    "weather": ["rain", "snow", "wind", "storm", "sunny", "cloud"],
    "money": ["bank", "cash", "price", "loan", "market", "tax"],
    "travel": ["flight", "hotel", "train", "airport", "trip", "beach"],
    "health": ["doctor", "hospital", "fever", "medicine", "nurse", "pain"],
    "school": ["teacher", "exam", "class", "student", "homework", "book"],
}
OPENERS = ["i think about", "we talked about", "tell me about", "she wrote about"]


@benchmarks.register()
class SyntheticText(Benchmark):
    """Topic sentences in ``n_tasks`` tasks of ``classes_per_task`` topics (see the module docstring)."""

    name = "synthetic-text"
    input_kind = "text"
    scenarios = ("class-il", "task-il")

    @dataclass
    class Config:
        scenario: Literal["class-il", "task-il"] = "class-il"
        """class-il: predict among every topic seen so far; task-il: among the task's own topics."""
        n_tasks: int = 2
        """Number of tasks; n_tasks x classes_per_task must not exceed the 8 topics."""
        classes_per_task: int = 2
        """Topics per task."""
        train_per_class: int = 16
        """Training sentences per topic."""
        test_per_class: int = 8
        """Test sentences per topic."""

        def __post_init__(self) -> None:
            if self.n_tasks < 1 or self.classes_per_task < 1:
                raise ValueError("n_tasks and classes_per_task must be >= 1")
            if self.n_tasks * self.classes_per_task > len(TOPICS):
                raise ValueError(f"n_tasks x classes_per_task must be <= {len(TOPICS)} topics")
            if self.train_per_class < 1 or self.test_per_class < 1:
                raise ValueError("train_per_class and test_per_class must be >= 1")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.scenario = config.scenario
        self.label_names = list(TOPICS)[: config.n_tasks * config.classes_per_task]

    def _split(self, classes: list[int], per_class: int, rng: np.random.Generator) -> datasets.Dataset:
        texts, labels = [], []
        for label in classes:
            words = TOPICS[self.label_names[label]]
            for _ in range(per_class):
                first, second = rng.choice(len(words), size=2, replace=False)
                texts.append(f"{OPENERS[rng.integers(len(OPENERS))]} {words[first]} and {words[second]}")
                labels.append(label)
        return datasets.Dataset.from_dict({"text": texts, "label": labels})

    def tasks(self, seed: int) -> list[Task]:
        size = self.config.classes_per_task
        result = []
        for task_id in range(self.config.n_tasks):
            classes = list(range(task_id * size, (task_id + 1) * size))
            train = self._split(classes, self.config.train_per_class, np.random.default_rng([seed, task_id, 0]))
            test = self._split(classes, self.config.test_per_class, np.random.default_rng([seed, task_id, 1]))
            name = "+".join(self.label_names[c] for c in classes)
            result.append(make_task(task_id, name, classes, train, test))
        return result
