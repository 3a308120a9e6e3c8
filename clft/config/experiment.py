"""The experiment schema (``ExperimentConfig``) and its expansion into runs.

An experiment file is one mapping::

    name: quickstart
    seeds: [0, 1, 2]
    scenarios: [class-il, task-il]         # optional; default: the benchmark's own
    benchmark: {name: split-digits}
    backbone: {name: mlp, hidden: [256, 256]}
    strategies: [{name: replay}, {name: ewc}]   # ONE run composing these (DESIGN.md)
    compare: [finetune, {name: ewc, lam: 100}, [replay, ewc]]  # or: one run per entry
    train: {epochs: 3, batch_size: 32, lr: 1.0e-3}

``strategies`` and ``compare`` are exclusive. A compare entry is a strategy name,
a strategy mapping, a list of those (composed in one run), or a labelled entry
``{label: ewc-online, strategies: ..., train: {...}}`` (``clft.config.entries``). Plugin
blocks are validated against the plugin's own ``Config`` when the run is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clft.config.entries import Entry, as_group, group_label, parse_entries
from clft.config.loading import apply_overrides, load_yaml, make_dataclass_instance, to_plain
from clft.config.presets import find_preset
from clft.config.published import check_published
from clft.config.validation import check_plain_name, check_seeds, check_train_ranges
from clft.config.yaml_safe import brief
from clft.errors import ConfigError
from clft.types import SCENARIOS

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TrainConfig:
    """How the runner trains every task."""

    epochs: int = 1
    """Passes over each task's training data."""
    batch_size: int = 32
    """Training batch size."""
    eval_batch_size: int = 256
    """Most examples per evaluation batch (under ``torch.inference_mode``); token sequences are batched
    longest first, cut earlier where padding would pass a tenth of a batch's tokens (``clft.data.sampling``)."""
    eval_scope: Literal["full", "seen"] = "full"
    """Which cells of the accuracy matrix are evaluated: ``full``, every task before training (the
    baseline) and after each task, T(T+1) task evaluations; ``seen``, after task i only tasks 1..i and
    after the last task every task, T(T+1)/2 of them (no baseline), for runs where the full matrix costs
    too much. Skipped cells are null in the result JSON; a metric that reads one (FWT) is n/d, the others
    (ACC, BWT, forgetting, AIA, LA, intransigence) are computed from the evaluated cells."""
    lr: float = 1e-3
    """Learning rate of the optimizer (rebuilt at every task)."""
    optimizer: Literal["adam", "adamw", "sgd", "adagrad"] = "adam"
    """Optimizer class (torch.optim.Adam / AdamW / SGD / Adagrad)."""
    reset_optimizer: bool = True
    """A fresh optimizer at every task (True), or one optimizer whose state (Adam's moments, Adagrad's sums)
    carries over from task to task, as in Hsu et al. 2018's code (False; checkpointed with the run)."""
    weight_decay: float = 0.0
    momentum: float = 0.0
    """SGD momentum (ignored by adam/adamw/adagrad)."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; None = no clipping."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast dtype through accelerate; applied on CUDA only (CPU runs stay fp32)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = CUDA when present, else CPU."""
    bucket_by_length: bool = True
    """Sample training batches of similar length (text backbones); no effect on fixed-size inputs."""
    on_nan: Literal["stop", "skip"] = "stop"
    """A NaN/inf loss stops the run (stop) or skips that batch (skip)."""
    grad_accumulation_steps: int = 1
    """Micro-batches per optimizer step (effective batch = batch_size x this)."""
    max_steps_per_task: int | None = None
    """Cap on optimizer steps per task (smoke tests)."""
    threads: int | None = None
    """torch intra-op CPU threads (torch.set_num_threads); None = torch's default. 1 is fastest for tiny models."""
    deterministic: bool = True
    """torch.use_deterministic_algorithms(True) with warn_only; same seed -> same matrix on CPU."""
    log_with: list[Literal["tensorboard", "wandb", "mlflow", "csv"]] = field(default_factory=list)
    """Experiment trackers fed during each run (clft.results.trackers); an output option, not part of the
    run's config hash."""

    def __post_init__(self) -> None:
        check_train_ranges(self)


@dataclass
class Resources:
    """What one run asks of a Ray cluster (``clft run --executor ray``); no effect on results."""

    cpus: float = 1.0
    """CPU cores per run (Ray's num_cpus; also the run's torch threads unless train.threads is set)."""
    gpus: float = 0.0
    """GPUs per run (Ray's num_gpus; fractions share a GPU)."""

    def __post_init__(self) -> None:
        if not 0 < self.cpus < float("inf"):
            raise ValueError(f"cpus must be > 0, got {self.cpus}")
        if not 0 <= self.gpus < float("inf"):
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")


@dataclass
class ExperimentConfig:
    """A whole experiment: stream x backbone x strategies x seeds (x scenarios)."""

    name: str = "experiment"
    benchmark: dict = field(default_factory=lambda: {"name": "split-digits"})
    backbone: dict = field(default_factory=lambda: {"name": "mlp"})
    seeds: list[int] = field(default_factory=lambda: [0])
    scenarios: list[str] | None = None
    strategies: list[Any] | None = None
    compare: list[Any] | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    resources: Resources = field(default_factory=Resources)
    """Per-run resources for the Ray executor (not part of a run's config hash)."""
    description: str = ""
    eval_split: Literal["test", "val"] = "test"
    """Which split fills the accuracy matrix: ``test``, or ``val`` to choose hyper-parameters (``clft tune``;
    a task without a validation split holds out ``val_fraction`` of its training data, ``clft.data.holdout``)."""
    val_fraction: float = 0.1
    """Fraction of each task's training examples held out (stratified) when it has no validation split."""
    published: dict = field(default_factory=dict)
    """A paper's numbers to print beside ours (``clft table --reference``); schema in ``clft.config.published``."""

    def __post_init__(self) -> None:
        if self.strategies is not None and self.compare is not None:
            raise ValueError("give either 'strategies' (one composed run) or 'compare' (one run per entry), not both")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        if self.compare is not None and not self.compare:
            raise ValueError("compare must list at least one entry (e.g. compare: [finetune, ewc]); "
                             "drop it to run 'strategies'")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        check_plain_name(self.name, "name")
        check_seeds(self.seeds)
        for scenario in self.scenarios or []:
            if scenario not in SCENARIOS:
                raise ValueError(f"unknown scenario {brief(scenario)}; valid: {', '.join(SCENARIOS)}")
        for key in ("benchmark", "backbone"):
            if "name" not in getattr(self, key) and "file" not in getattr(self, key):
                raise ValueError(f"'{key}' needs a 'name' (or a 'file' holding one)")
        entries = self.entries()
        for entry in entries:  # labels, duplicates and per-entry train blocks fail here, before any run
            self.train_for(entry)
        check_published(self.published, [entry.label for entry in entries], self.scenarios)

    def entries(self) -> list[Entry]:
        """The runs to make, one :class:`~clft.config.entries.Entry` per compare entry (or the one composed run)."""
        if self.compare is not None:
            return parse_entries(self.compare)
        group = as_group(self.strategies or ["finetune"], "strategies")
        return [Entry(group, group_label(group))]

    def strategy_groups(self) -> list[list[dict]]:
        """The strategy specs (mappings with a 'name') of each entry."""
        return [entry.strategies for entry in self.entries()]

    def train_for(self, entry: Entry) -> TrainConfig:
        """The experiment's ``train`` block with the entry's ``train`` overrides merged over it."""
        if not entry.train:
            return self.train
        return make_dataclass_instance(TrainConfig, {**to_plain(self.train), **entry.train},
                                       where=f"{entry.label}.train")


def load_experiment(path: str | None, overrides: list[str] | None = None) -> tuple[ExperimentConfig, dict]:
    """Read, override and validate an experiment; returns (config, raw resolved mapping)."""
    raw = load_yaml(path) if path else {}
    raw = apply_overrides(raw, overrides or [])
    config = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    return config, raw


def resolve_spec(spec: dict, base_dir: Path | None) -> dict:
    """A plugin block, with ``file: x.yaml`` replaced by that file's mapping (keys given here win).

    The file is looked up as given, then relative to ``base_dir`` (the experiment's folder)
    and its parent, then relative to the project root, then among the benchmark presets
    (``clft.config.presets``); so ``benchmark: {file: benchmarks/clinc150.yaml}`` works in a
    checkout and from an installed wheel, and a user's own file wins.
    """
    spec = dict(spec)
    if "file" not in spec:
        return spec
    name = spec.pop("file")
    if not isinstance(name, str):
        raise ConfigError(f"'file' must be a path to a YAML file, got {brief(name)}")
    candidates = [Path(name)]
    if base_dir is not None:
        candidates += [base_dir / name, base_dir.parent / name]
    candidates.append(PROJECT_ROOT / name)
    preset = find_preset("benchmarks", Path(name).name)
    if preset is not None:
        candidates.append(preset)
    for path in candidates:
        if path.is_file():
            return {**load_yaml(path), **spec}
    raise ConfigError(f"plugin file {brief(name)} not found (looked in: {', '.join(str(p) for p in candidates)})")
