"""The one training/evaluation loop.

For a run (experiment x strategy group x scenario x seed) the runner:

1. builds the stream, the backbone and the strategies, and evaluates every task
   before training (``baseline_acc``);
2. for each task i: ``before_task`` hooks, builds the optimizer, trains (per step:
   ONE ``backbone.forward``, the main loss or the replacing strategy's ``loss``, plus
   the strategies' ``extra_loss`` terms, backward, ``before_step`` hooks, optimizer
   step, ``after_step`` hooks; see ``clft.types.Strategy``), ``after_task`` hooks,
   evaluates every task of the stream (row i of ``acc``; with ``train.eval_scope: seen``
   only tasks 1..i until the last row, the others None, and no baseline), and writes an atomic
   checkpoint; the held-out ``general_tasks`` (general ability) are scored before
   training and after each task;
3. writes the run's JSON (``clft.results``) and removes the checkpoint.

Determinism: the global seed is set before the backbone is built and again
(``seed * 1000 + task id``) at the start of every task; batch order comes from a
numpy generator seeded with ``(seed, task id, epoch)``. So a run resumed at a
task boundary replays exactly what an uninterrupted run does.
"""

from __future__ import annotations

import gc
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from clft.data.columns import columns
from clft.data.sampling import eval_batches, train_batches
from clft.engine.devices import Devices, peak_memory_mb, reset_peak_memory, rss_mb
from clft.engine.distributed import Parallel
from clft.engine.run_state import RunState
from clft.engine.scoring import example_scores
from clft.errors import ClftError, ConfigError, DivergenceError
from clft.storage.faults import kill_point
from clft.storage.state_io import check_checkpointable
from clft.types import Backbone, Outputs, Strategy, Task

EXCLUSIVE_HOOKS = ("loss", "predict", "train_data")
"""Hooks at most one strategy of a run may override: each decides alone."""


@dataclass
class Run:
    """Everything one run needs, already built (see ``clft.sweep.build_run``)."""

    run_id: str
    seed: int
    scenario: str
    tasks: list[Task]
    backbone: Backbone
    strategies: list[Strategy]
    train: object  # TrainConfig
    devices: Devices
    state: RunState
    progress: bool = True
    benchmark: object = None
    on_task_end: list = field(default_factory=list)
    """Callbacks ``(run, task)`` after each task's evaluation row (checkpoints, trackers)."""
    on_step: list = field(default_factory=list)
    """Callbacks ``(run, task, step, loss)`` after each training micro-batch's backward (trackers)."""
    trainable_names: set = field(default_factory=set)
    """Parameters trainable at any task end: what checkpoints keep."""
    parallel: Parallel = field(default_factory=Parallel)
    """This process's share of a data-parallel run (``clft.engine.distributed``); one process by default."""
    optimizer: object = None
    """The optimizer of the last task (kept across tasks when ``train.reset_optimizer`` is false)."""
    optimizer_state: dict | None = None
    """A checkpointed optimizer state to load into the next task's optimizer (resume, reset_optimizer false)."""
    general_tasks: list[Task] = field(default_factory=list)
    """Held-out tasks never trained on, scored before training and after each task (general ability)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_composition(strategy_classes: list[type]) -> None:
    """At most one strategy of a run overrides each of ``EXCLUSIVE_HOOKS``; else a one-line ConfigError."""
    for hook in EXCLUSIVE_HOOKS:
        names = [cls.name for cls in strategy_classes if overrides(cls, hook)]
        if len(names) > 1:
            raise ConfigError(f"strategies {', '.join(names)} all override {hook}; combine at most one of them")


def overrides(cls: type, hook: str) -> bool:
    """Whether strategy class ``cls`` overrides ``Strategy.<hook>``."""
    return getattr(cls, hook) is not getattr(Strategy, hook)


def check_initial_states(strategies: list[Strategy]) -> None:
    """Every strategy's ``state_dict()`` can be checkpointed (one-line ConfigError naming the key)."""
    for strategy in strategies:
        check_checkpointable(strategy.state_dict(), f"strategy {strategy.name!r}")


def execute(run: Run) -> RunState:
    """Train the remaining tasks of ``run`` and return the final state."""
    check_composition([type(s) for s in run.strategies])
    check_initial_states(run.strategies)
    run.state.memory_method = reset_peak_memory(run.devices)
    run.state.memory_at_start_mb = rss_mb()
    try:
        return _execute_tasks(run)
    finally:
        gc.unfreeze()


def _execute_tasks(run: Run) -> RunState:
    """Baseline, then per task: train, evaluate, callbacks. Before the baseline and each task,
    ``gc.freeze()`` moves every object alive into the collector's permanent generation, so its
    collections scan only what the task creates, not the ~390k objects of the imports (torch,
    datasets) and the stream: in MLP Split-MNIST training the collector took 0.37 s of 5.3 s, frozen
    0.12 s (a hand-written loop's process, 318k objects: 0.27 s). ``execute`` unfreezes at the end,
    so a sweep's later collections can free what this run left."""
    gc.freeze()
    if run.state.baseline_acc is None:
        run.state.baseline_acc = evaluate_stream(run, scored=scored_tasks(run, 0))
        run.state.general = [evaluate_stream(run, run.general_tasks)] if run.general_tasks else []
        kill_point("run:after-baseline")
    for task in run.tasks[run.state.next_task :]:
        gc.freeze()
        seed_everything(run.seed * 1000 + task.id)
        started = time.perf_counter()
        train_task(run, task)
        run.state.train_seconds.append(time.perf_counter() - started)
        run.state.acc.append(evaluate_stream(run, scored=scored_tasks(run, task.id + 1)))
        if run.general_tasks:
            run.state.general.append(evaluate_stream(run, run.general_tasks))
        run.state.next_task = task.id + 1
        run.state.peak_memory_mb = max(run.state.peak_memory_mb, peak_memory_mb(run.devices))
        for callback in run.on_task_end:
            callback(run, task)
    return run.state


def training_data(run: Run, task: Task):
    """The strategy overriding ``train_data`` (at most one) decides; else the task's own data."""
    seen = run.tasks[: task.id + 1]
    for strategy in run.strategies:
        if overrides(type(strategy), "train_data"):
            return strategy.train_data(task, seen)
    return task.train


def train_task(run: Run, task: Task) -> None:
    backbone, cfg = run.backbone, run.train
    backbone.label_space.mark_seen(task)
    for strategy in run.strategies:
        strategy.before_task(backbone, task, run.tasks)
    prepared = backbone.prepare(training_data(run, task))
    data = columns(prepared)  # batches are slices of tensors read once per task (clft.data.columns)
    optimizer = task_optimizer(run)
    backbone.model.train()
    micro = 0
    pending: list[tuple[dict, Outputs]] = []  # the micro-batches of the coming optimizer step
    for epoch in range(cfg.epochs):
        rng = np.random.default_rng([run.seed, task.id, epoch])
        batches = train_batches(len(data), cfg.batch_size, rng, backbone.lengths(prepared), cfg.bucket_by_length)
        bar = tqdm(batches, desc=f"{run.run_id} task {task.id + 1}/{len(run.tasks)} ep {epoch + 1}",
                   disable=None if run.progress else True, leave=False, dynamic_ncols=True)
        for indices in bar:
            step = micro // cfg.grad_accumulation_steps
            if cfg.max_steps_per_task is not None and step >= cfg.max_steps_per_task:
                break
            local = data[run.parallel.shard(indices)] if run.parallel.active else None
            loss = forward_backward(run, task, data[indices], step, pending, local)
            micro += 1
            if loss is not None:
                for callback in run.on_step:
                    callback(run, task, step, loss)
            if micro % cfg.grad_accumulation_steps == 0:
                optimizer_step(run, task, optimizer, pending)
            if loss is not None and micro % 10 == 1:
                bar.set_postfix(loss=f"{loss:.4f}")
    if micro % cfg.grad_accumulation_steps:
        optimizer_step(run, task, optimizer, pending)
    for strategy in run.strategies:
        strategy.after_task(backbone, task)


def forward_backward(run: Run, task: Task, examples: dict, step: int, pending: list,
                     local: dict | None = None) -> float | None:
    """One forward pass, loss = (replacing strategy's ``loss`` or ``outputs.main_loss()``) + the
    ``extra_loss`` terms; backward (scaled for accumulation). Appends ``(batch, outputs)`` to
    ``pending`` for the ``after_step`` hooks when some strategy has one.

    Data parallel (``local``: this process's shard of ``examples``): loss = (n_local / N) ·
    backbone.loss(local) + (1/P) · Σ extra_loss(examples); see ``clft.engine.distributed``.
    Returns the loss, or None when a non-finite loss was skipped (``on_nan: skip``).
    """
    backbone, cfg = run.backbone, run.train
    kill_point(f"train:task{task.id}:step{step}")
    advice = ("lower train.batch_size and raise train.grad_accumulation_steps to keep the effective batch "
              f"(now {cfg.batch_size} x {cfg.grad_accumulation_steps})")
    with explain_oom(f"at task {task.id} ({task.name!r}) step {step} with batch_size {cfg.batch_size}", advice):
        with run.devices.autocast(), run.devices.strategy_losses():  # fp16: no torch.autograd.grad in hooks
            batch = backbone.collate(examples)
            outputs = backbone.forward(batch, task)
            if local is None:
                loss = step_loss(run.strategies, backbone, batch, outputs, task)
            else:  # hooks see the whole batch (as in one process), each process adds 1/P of their terms
                main = _shard_loss(run, task, local, len(examples["label"]))
                loss = step_loss(run.strategies, backbone, batch, outputs, task, main, 1 / run.parallel.world)
        value = run.parallel.sum(loss.detach().float().item())
        if not math.isfinite(value):
            return _non_finite(run, task, step, value)
        run.devices.backward(loss / cfg.grad_accumulation_steps)
    if any(overrides(type(s), "after_step") for s in run.strategies):
        pending.append((batch, outputs.detached()))
    return value


def step_loss(strategies: list[Strategy], backbone: Backbone, batch: dict, outputs: Outputs, task: Task,
              main=None, scale: float = 1.0):
    """The replacing strategy's ``loss`` (None: ``main``, default ``outputs.main_loss()``) plus every
    ``extra_loss`` term; strategy terms are multiplied by ``scale`` (1/P under data parallelism)."""
    loss = None
    for strategy in strategies:
        if overrides(type(strategy), "loss"):
            loss = strategy.loss(backbone, batch, outputs, task)
    if loss is None:
        loss = outputs.main_loss() if main is None else main
    elif scale != 1.0:
        loss = loss * scale
    for strategy in strategies:
        term = strategy.extra_loss(backbone, batch, outputs, task)
        if term is not None:
            loss = loss + (term if scale == 1.0 else term * scale)
    return loss


def _shard_loss(run: Run, task: Task, local: dict, n_global: int) -> torch.Tensor:
    """(n_local / N) · backbone.loss on this process's shard (zero, with a graph, for an empty shard)."""
    n_local = len(local["label"])
    if n_local == 0:
        return sum(p.sum() * 0.0 for p in run.backbone.trainable_parameters())
    return run.backbone.loss(run.backbone.collate(local), task) * (n_local / n_global)


def is_oom(exc: BaseException) -> bool:
    """torch's out-of-memory error (CUDA, MPS), or the CPU allocator's failure."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc))


@contextmanager
def explain_oom(where: str, advice: str):
    """Turn an out-of-memory error into one line: where it happened and what to change."""
    try:
        yield
    except (RuntimeError, MemoryError) as exc:
        if not is_oom(exc):
            raise
        raise ClftError(f"out of memory {where}; {advice}; finished tasks are checkpointed (--resume)") from None


def optimizer_step(run: Run, task: Task, optimizer, pending: list) -> None:
    """Gradients summed over data-parallel processes, ``before_step`` hooks (unscaled gradients),
    clipping, step, zero_grad, then ``after_step`` hooks for each micro-batch of the step (``pending``)."""
    run.parallel.reduce_gradients(run.backbone.trainable_parameters())
    run.devices.unscale(optimizer)
    for strategy in run.strategies:
        strategy.before_step(run.backbone, task)
    if run.train.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.backbone.trainable_parameters(), run.train.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    for batch, outputs in pending:
        for strategy in run.strategies:
            strategy.after_step(run.backbone, batch, outputs, task)
    pending.clear()


def _non_finite(run: Run, task: Task, step: int, value: float) -> None:
    if run.train.on_nan == "skip":
        run.state.skipped_batches += 1
        return None
    raise DivergenceError(
        f"loss is {value} at task {task.id} ({task.name!r}) step {step} of run {run.run_id}; "
        f"{run.state.next_task} finished task(s) are kept in the checkpoint; set train.on_nan=skip to skip such batches"
    )


def task_optimizer(run: Run):
    """The optimizer for the next task: fresh, or (``reset_optimizer`` false) the run's last one while it
    optimises the same parameters; a checkpointed state (``run.optimizer_state``) is loaded into a new one."""
    params = run.backbone.trainable_parameters()
    kept = run.optimizer
    same = kept is not None and [id(p) for g in kept.param_groups for p in g["params"]] == [id(p) for p in params]
    if run.train.reset_optimizer or not same:
        run.optimizer = run.devices.prepare_optimizer(build_optimizer(run.backbone, run.train))
        if not run.train.reset_optimizer and run.optimizer_state is not None:
            run.optimizer.load_state_dict(run.optimizer_state)
    run.optimizer_state = None
    return run.optimizer


def optimizer_checkpoint(optimizer) -> dict:
    """``optimizer.state_dict()`` with string keys (checkpoints are JSON + tensors)."""
    state = optimizer.state_dict()
    return {"state": {str(k): v for k, v in state["state"].items()}, "param_groups": state["param_groups"]}


def optimizer_from_checkpoint(state: dict) -> dict:
    """Inverse of ``optimizer_checkpoint``: integer parameter keys, as torch's ``load_state_dict`` expects."""
    return {"state": {int(k): v for k, v in state["state"].items()}, "param_groups": state["param_groups"]}


def build_optimizer(backbone: Backbone, cfg) -> torch.optim.Optimizer:
    params = backbone.trainable_parameters()
    if not params:
        raise ConfigError("the backbone has no trainable parameters (check the peft block / strategies)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def predictor(run: Run):
    """The strategy that overrides ``predict`` (at most one), else the backbone's."""
    overriding = [s for s in run.strategies if type(s).predict is not Strategy.predict]
    if len(overriding) > 1:
        names = ", ".join(s.name for s in overriding)
        raise ConfigError(f"strategies {names} all override predict; combine at most one of them")
    if overriding:
        return overriding[0].predict
    return lambda backbone, batch, task, scenario: backbone.predict(batch, task, scenario)


@torch.inference_mode()
def evaluate_task(run: Run, task: Task, predict) -> float:
    """The task's score on ``task.test``: accuracy (mean of [predicted id == label]) or, for a
    generative task, the mean of its metric over the generated texts (``clft.engine.scoring``).

    The test set's columns are read once (``clft.data.columns``, cached across the T + 1
    evaluations of a run); batches of ``eval_batch_size`` are slices of them.
    """
    backbone = run.backbone
    prepared = backbone.prepare(task.test)
    data = columns(prepared)
    total = 0.0  # this process's sum of per-example scores (an exact integer count for accuracy)
    batches = list(eval_batches(len(data), run.train.eval_batch_size, backbone.lengths(prepared)))
    for indices in run.parallel.mine(batches):
        examples = data[indices]
        with run.devices.autocast():
            batch = backbone.collate(examples)
            predicted = predict(backbone, batch, task, run.scenario)
        if task.generative:
            total += math.fsum(example_scores(task.metric, predicted, examples["references"]))
        else:
            labels = torch.as_tensor(examples["label"])
            total += int((predicted.detach().cpu().long() == labels).sum())
    return run.parallel.sum(total) / len(data)


def scored_tasks(run: Run, trained: int) -> int:
    """How many of the stream's first tasks a row scores after ``trained`` tasks: all of them, or with
    ``train.eval_scope: seen`` the ``trained`` ones (all of them after the last task)."""
    everything = len(run.tasks)
    return everything if run.train.eval_scope == "full" or trained == everything else trained


def evaluate_stream(run: Run, tasks: list[Task] | None = None, scored: int | None = None) -> list[float | None]:
    """The score on every task of the stream (seen or not), or of ``tasks``; with ``scored``, on the
    first ``scored`` of them only, None for the others (not evaluated)."""
    tasks = run.tasks if tasks is None else tasks
    scored = len(tasks) if scored is None else scored
    predict = predictor(run)
    run.backbone.model.eval()
    try:
        with explain_oom(f"evaluating with eval_batch_size {run.train.eval_batch_size}", "lower train.eval_batch_size"):
            return [evaluate_task(run, task, predict) if i < scored else None for i, task in enumerate(tasks)]
    finally:
        run.backbone.model.train()
