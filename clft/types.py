"""The core concepts of clft: Task, Benchmark, Backbone, Strategy, LabelSpace.

Every plugin implements one of these. The runner (``clft.engine.runner``) is the only
training/evaluation loop; plugins only answer the questions asked here.

Data convention: a task's ``train``/``test``/``val`` are ``datasets.Dataset``
objects with at least the columns ``label`` (a global label id, an int in
``range(len(benchmark.label_names))``) and ``task`` (the task id, added by
``clft.data.with_task_column``). Batches are *columnar*: the dict a
``Dataset`` returns for a list of indices (``dataset[[3, 5, 8]]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets
    import torch

SCENARIOS = ("task-il", "class-il", "domain-il")
Batch = dict  # columnar batch: {column: list | Tensor}


@dataclass(frozen=True)
class Task:
    """One step of a stream: ``classes`` are the global label ids it contains.

    ``metric`` says how the task is scored (``clft.engine.scoring``): ``accuracy`` (label ids; the
    default), or a generation metric (``exact-match``, ``rouge-l``) for a task whose examples
    carry a free-text ``target`` and a list of ``references`` instead of a ``label`` (its
    ``classes`` are then empty). ``max_new_tokens`` caps generation for the task (None: the
    backbone's default).
    """

    id: int
    name: str
    classes: tuple[int, ...]
    train: "datasets.Dataset"
    test: "datasets.Dataset"
    val: "datasets.Dataset | None" = None
    metric: str = "accuracy"
    max_new_tokens: int | None = None

    @property
    def generative(self) -> bool:
        """Whether the task is scored on generated text (any metric but ``accuracy``)."""
        return self.metric != "accuracy"


@dataclass
class LabelSpace:
    """Which logits a scenario allows, per example.

    - task-il: the classes of the example's own task (``task`` column);
    - class-il: every class of every task trained so far (``seen``), or all
      classes before any training (the zero-shot baseline);
    - domain-il: the whole shared label space.

    The runner owns it and marks tasks seen in ``before_task`` order; backbones
    read it to mask logits in ``loss`` and ``predict``.
    """

    scenario: str
    num_classes: int
    task_classes: dict[int, tuple[int, ...]]
    seen: set[int] = field(default_factory=set)

    def allowed(self, task_id: int) -> tuple[int, ...]:
        """Global label ids an example of ``task_id`` may be predicted as."""
        if self.scenario == "task-il":
            return self.task_classes[task_id]
        if self.scenario == "class-il" and self.seen:
            return tuple(sorted(self.seen))
        return tuple(range(self.num_classes))

    def mark_seen(self, task: Task) -> None:
        self.seen.update(task.classes)

    def mask(self, task_ids: Sequence[int], device: Any = None) -> "torch.Tensor":
        """Bool tensor [len(task_ids), num_classes], True where a logit is allowed."""
        import torch

        key = (frozenset(self.seen), str(device))
        if getattr(self, "_table_key", None) != key:
            ids = sorted(self.task_classes)
            table = torch.zeros(max(ids) + 1, self.num_classes, dtype=torch.bool)
            for task_id in ids:
                table[task_id, list(self.allowed(task_id))] = True
            self._table, self._table_key = table.to(device) if device is not None else table, key
        index = torch.as_tensor(task_ids, dtype=torch.long)
        return self._table[index.to(self._table.device)]


@dataclass
class Outputs:
    """What ``Backbone.forward`` returns for one batch; the runner computes it ONCE per step
    and hands it to every strategy hook (``loss``, ``extra_loss``, ``after_step``).

    - ``example_loss`` [B]: the backbone's training loss of each example (cross-entropy over
      its allowed classes for a classifier; the mean token cross-entropy of its target for a
      text-to-text LM), with its autograd graph.
    - ``weight`` [B] or None: how much each example counts in the main loss,
      ``main_loss = Σ_b weight_b · example_loss_b / Σ_b weight_b`` (None: the plain mean;
      text-to-text LMs weight by target tokens, so the main loss is the token mean).
    - ``logits`` [B, num_classes] or None: raw, unmasked class scores (classifiers); mask
      them with ``backbone.label_space.mask(batch["task"], logits.device)`` (True where a
      class is allowed, ``LabelSpace``) where a scenario's label space matters.
    - ``extra``: anything else a backbone exposes (e.g. ``lm_logits`` of an LM).
    """

    example_loss: "torch.Tensor"
    logits: "torch.Tensor | None" = None
    weight: "torch.Tensor | None" = None
    extra: dict = field(default_factory=dict)

    def main_loss(self) -> "torch.Tensor":
        """The weighted mean of ``example_loss`` (see the class docstring)."""
        if self.weight is None:
            return self.example_loss.mean()
        weight = self.weight.to(self.example_loss.dtype)
        return (self.example_loss * weight).sum() / weight.sum().clamp(min=1)

    def detached(self) -> "Outputs":
        """A copy whose tensors are detached from the graph (what ``after_step`` receives)."""
        detach = {f.name: _detach(getattr(self, f.name)) for f in fields(self)}
        return replace(self, **detach)


def _detach(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach()
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


class Benchmark:
    """A pure description of a task stream.

    ``tasks(seed)`` is deterministic for a seed and keeps no cursor: calling it
    twice returns equal streams. Subclasses set ``name``, ``Config`` and, in
    ``__init__``, ``self.scenario`` and ``self.label_names``.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS
    input_kind: ClassVar[str | None] = None
    """What an example's input is (``"vector"``: a float vector ``x``; ``"text"``); None = undeclared."""
    scenario: str
    label_names: list[str]

    def __init__(self, config: Any) -> None:
        self.config = config

    def tasks(self, seed: int) -> list[Task]:  # pragma: no cover - interface
        raise NotImplementedError


class Backbone:
    """The model and everything model-specific: tokenising, heads, adapters, devices.

    The runner calls ``prepare`` once per dataset (tokenise/cache), batches with
    ``collate``, runs ``forward`` once per training step (its ``Outputs`` go to every
    strategy hook; the main loss is ``outputs.main_loss()`` unless a strategy replaces it)
    and evaluates with ``predict``. ``self.label_space`` is set by the runner before
    training; use it to mask logits.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    input_kind: ClassVar[str | None] = None
    """The benchmark ``input_kind`` this backbone takes; None = any (checked before any run trains)."""
    model: "torch.nn.Module"
    """The network being trained, set by the subclass's ``__init__``. The runner moves it with ``to``,
    trains what ``trainable_parameters`` returns, switches ``train()``/``eval()`` around evaluation,
    and checkpoints its ``state_dict`` (the parameters trainable at some task end, and the buffers).
    Strategies read it (EWC's anchors, LwF's old copy) and may set its weights with ``load_weights``."""
    label_space: LabelSpace
    """Set by the runner before training: which classes each example may be predicted as."""

    def __init__(self, config: Any, benchmark: Benchmark, tasks: list[Task]) -> None:
        self.config = config
        self.device: Any = "cpu"  # the runner calls .to(device) before training

    def prepare(self, dataset: "datasets.Dataset") -> "datasets.Dataset":
        """Return the dataset in the form ``collate`` expects (e.g. tokenised once)."""
        return dataset

    def lengths(self, dataset: "datasets.Dataset") -> list[int] | None:
        """Per-example lengths of a prepared dataset, for length bucketing; None if n/a."""
        return None

    def collate(self, examples: Batch) -> Batch:  # pragma: no cover - interface
        """Columnar examples -> a batch of tensors on ``self.device``."""
        raise NotImplementedError

    def batch_padding(self) -> dict[str, tuple[float, str]]:
        """How ``collate`` pads the batch columns whose width varies from batch to batch:
        ``{column: (value, side)}``, side ``"right"`` or ``"left"`` (a text model: token ids with the
        pad id, attention masks with 0, LM labels with -100). Memories of collated rows (replay's
        reservoir, DER's buffer: ``clft.strategies._memory.TensorReservoir``) widen a stored row with
        it, so that it reads as the same row collated in a wider batch; a width-varying column not
        named here is an error there. Default: none (every column has a fixed width)."""
        return {}

    def forward(self, batch: Batch, task: Task) -> Outputs:  # pragma: no cover - interface
        """One forward pass over a training batch: per-example loss (and logits, for a classifier)."""
        raise NotImplementedError

    def loss(self, batch: Batch, task: Task) -> "torch.Tensor":
        """The main loss of a batch, ``forward(batch, task).main_loss()`` (replay batches, Fisher, tests)."""
        return self.forward(batch, task).main_loss()

    def predict(self, batch: Batch, task: Task, scenario: str) -> "torch.Tensor | list[str]":  # pragma: no cover
        """Predicted global label ids, shape [batch]; for a ``task.generative`` task the generated
        texts (a list of strings, one per example)."""
        raise NotImplementedError

    def logits(self, batch: Batch) -> "torch.Tensor":  # pragma: no cover
        """Raw class scores [batch, num_classes] (classifiers; used by LwF, DER)."""
        raise NotImplementedError

    def trainable_parameters(self) -> list["torch.nn.Parameter"]:
        """The parameters the optimizer trains (``requires_grad``), in ``model.parameters()`` order."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def weights(self) -> dict[str, "torch.Tensor"]:
        """A copy of the model's trainable parameters and buffers (``state_dict`` names, detached clones):
        what a strategy keeps to reset or restore the model later with ``load_weights``. Frozen
        parameters are left out: nothing changes them."""
        trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
        buffers = {name for name, _ in self.model.named_buffers()}
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if k in trainable | buffers}

    def load_weights(self, weights: dict[str, "torch.Tensor"]) -> None:
        """Copy ``weights`` (from ``weights()``, possibly through a checkpoint) into the model, in place.

        The way for a strategy to reset or restore the model (GDumb retrains from scratch on its
        memory at every task; early stopping restores the best epoch): call it in ``before_task``
        (the runner builds the task's optimizer afterwards, over the same parameter objects) or
        in ``after_task`` (before the task's evaluation). Keep what you load in the strategy's
        ``state_dict``, so that a resumed run loads the same. A name the model lacks, or a tensor
        of another shape, is a ValueError."""
        own = self.model.state_dict()
        unknown = sorted(set(weights) - set(own))
        if unknown:
            raise ValueError(f"load_weights: the model has no {unknown[:3]}")
        for name, value in weights.items():
            if tuple(value.shape) != tuple(own[name].shape):
                raise ValueError(f"load_weights: {name} has shape {tuple(value.shape)}, "
                                 f"the model's {tuple(own[name].shape)}")
        self.model.load_state_dict(weights, strict=False)

    def to(self, device: Any) -> "Backbone":
        self.device = device
        self.model.to(device)
        return self


class Strategy:
    """A forgetting-mitigation method: hooks with no-op defaults.

    One training step of the runner, for a batch ``b`` of task ``t`` (docs/writing-plugins.md
    has the full hook reference):

    1. ``outputs = backbone.forward(b, t)``: the trained model's ONLY forward pass on ``b``;
    2. ``loss = s.loss(backbone, b, outputs, t)`` of the one strategy overriding ``loss``
       (None, or no such strategy: ``outputs.main_loss()``);
    3. ``loss += s.extra_loss(backbone, b, outputs, t)`` for every strategy, in list order;
    4. backward (gradient accumulation: once per micro-batch);
    5. ``s.before_step(backbone, t)`` once per optimizer step, on the accumulated, unscaled
       gradients, before clipping and ``optimizer.step()``;
    6. ``s.after_step(backbone, b, outputs.detached(), t)`` for every micro-batch of the step.

    Hooks change only the strategy's own state or return a loss; the runner owns the loop,
    the optimizer and the batch. Two things a hook may change in the backbone: its structure in
    ``before_task`` (add or activate an adapter or prompt, freeze weights), and its weights through
    ``backbone.load_weights`` in ``before_task`` or ``after_task`` (reset or restore them; keep what
    is loaded in ``state_dict``). Several strategies may run together: hooks run in list order,
    ``extra_loss`` terms are summed; at most one may override ``loss``, ``predict`` or
    ``train_data`` (two are a ConfigError before training).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    requires_task_id: ClassVar[bool] = False
    input_kind: ClassVar[str | None] = None
    """The backbone ``input_kind`` this strategy works on (e.g. "text" for PEFT adapters); None = any."""
    conformance_backbone: ClassVar[dict] = {"name": "mlp", "hidden": [16]}
    """The backbone block the registry-wide conformance tests run this strategy on."""
    conformance_benchmark: ClassVar[dict] = {"name": "split-digits", "n_tasks": 2}
    """The benchmark block of those tests (a PEFT strategy names a tiny text stream)."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def default_label(cls, config: Any) -> str:
        """This strategy's part of a compare entry's default label (the parts of a composed run are
        joined by ``+``): its ``name``, unless ``config`` switches on a component that the method's
        paper does not have, which the label then names (o-lora with ``protect_head``:
        ``o-lora+frozen-head``). Lower-case words joined by ``-`` or ``+``. An entry's explicit
        ``label:`` replaces the whole default label."""
        return cls.name

    def before_task(self, backbone: Backbone, task: Task, stream: list[Task]) -> None:
        """Called before the optimizer is built for ``task`` (add/activate adapters here)."""

    def train_data(self, task: Task, seen_tasks: list[Task]) -> "datasets.Dataset":
        """The data to train on for ``task``; ``seen_tasks`` ends with ``task``."""
        return task.train

    def loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> "torch.Tensor | None":
        """REPLACES the main loss ``outputs.main_loss()`` (ER-ACE, iCaRL); None keeps it this step.
        At most one strategy of a run may override this hook."""
        return None

    def extra_loss(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> "torch.Tensor | None":
        """An additive loss term (penalty, replay loss, distillation on ``outputs.logits``), or None."""
        return None

    def before_step(self, backbone: Backbone, task: Task) -> None:
        """Once per optimizer step, after every micro-batch's backward, before clipping and the
        step: ``.grad`` holds the accumulated, unscaled gradients (gradient surgery: A-GEM, SI)."""

    def after_step(self, backbone: Backbone, batch: Batch, outputs: Outputs, task: Task) -> None:
        """After the optimizer step, once per micro-batch it used: the batch and its (detached,
        pre-step) outputs, for online memories (a reservoir, DER's stored logits)."""

    def after_task(self, backbone: Backbone, task: Task) -> None:
        """After training ``task`` (Fisher, buffer update, freezing)."""

    def predict(self, backbone: Backbone, batch: Batch, task: Task, scenario: str) -> "torch.Tensor":
        """Predicted label ids; override to infer the task (adapter-per-task, L2P)."""
        return backbone.predict(batch, task, scenario)

    def restore(self, backbone: Backbone) -> None:
        """On resume, after ``load_state_dict`` and before the model's weights load:
        rebuild structure the finished tasks created (adapters, prompts). Default: nothing."""

    def report(self) -> dict:
        """Numbers for the run JSON's ``extra`` (e.g. task-inference accuracy). Default: none."""
        return {}

    def extra_state_bytes(self) -> int:
        """Bytes of extra state kept (buffers, Fishers, old adapters), for ``cost``."""
        return 0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (tensors may arrive on the CPU)."""
