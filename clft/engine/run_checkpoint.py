"""A run's per-task checkpoint: written after each finished task, verified and restored on ``--resume``.

What it holds (``clft.storage.checkpoint`` writes it atomically, with a checksum): the trainable weights and
buffers, every strategy's ``state_dict``, the run state (accuracy rows so far, next task), the seen
classes, and the optimizer's state when ``train.reset_optimizer`` is false. Its metadata carries the
run's config hash and the code's source hash, so a checkpoint of another config or other code is refused.
"""

from __future__ import annotations

from pathlib import Path

from clft.config.yaml_safe import brief
from clft.engine.run_state import RunState
from clft.engine.runner import Run, optimizer_checkpoint, optimizer_from_checkpoint
from clft.errors import CheckpointError
from clft.storage.checkpoint import check_latest, load_checkpoint, save_checkpoint
from clft.storage.state_io import check_checkpointable


def trainable_state(run: Run) -> dict:
    """The model tensors a checkpoint keeps: every parameter trainable at some task end, and the buffers."""
    model = run.backbone.model
    run.trainable_names |= {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    return {k: v for k, v in model.state_dict().items() if k in run.trainable_names or k in buffers}


def save_task_checkpoint(run: Run, root: Path, expected: dict) -> None:
    """The run's state after its last finished task, atomically (``clft.storage.checkpoint``): the trainable
    weights and buffers, the strategies' states, the optimizer's when it is carried across tasks."""
    meta = {**expected, "run": run.run_id, "run_state": run.state.to_json(),
            "seen": sorted(run.backbone.label_space.seen), "trainable_names": sorted(run.trainable_names)}
    state = {"strategies": [s.state_dict() for s in run.strategies]}
    if not run.train.reset_optimizer and run.optimizer is not None:  # checksummed with the rest of the state
        state["optimizer"] = optimizer_checkpoint(run.optimizer)
    try:
        save_checkpoint(root, run.state.next_task - 1, meta, trainable_state(run), state)
    except TypeError:  # a state_dict that changed type after the initial check: name strategy and key
        for strategy, strategy_state in zip(run.strategies, state["strategies"]):
            check_checkpointable(strategy_state, f"strategy {strategy.name!r}")
        raise


def resume_run(run: Run, root: Path, expected: dict, run_key: str) -> None:
    """Load the run's last checkpoint (verified: ``clft.storage.checkpoint``); one of another config or made
    by other code is refused, and a damaged one is one line naming the file and the way out
    (``--restart-run``), never a silently different run."""
    try:
        loaded = load_checkpoint(root, {**expected, "run": run.run_id})
        if loaded is not None:
            _restore(run, root, *loaded)
    except CheckpointError as exc:
        raise _with_restart_hint(exc, run_key) from None


def check_checkpoint_folder(root: Path, run_key: str) -> None:
    """Before a run trains from its first task: a damaged ``LATEST`` (a folder, a link) would stop it at
    its first checkpoint; name it now, with the way out."""
    try:
        check_latest(root)
    except CheckpointError as exc:
        raise _with_restart_hint(exc, run_key) from None


def _with_restart_hint(exc: CheckpointError, run_key: str) -> CheckpointError:
    return CheckpointError(f"{exc}; to discard it and train this run from scratch pass --restart-run {run_key}")


def _restore(run: Run, root: Path, meta: dict, model_tensors: dict, state: dict) -> None:
    try:
        for strategy, strategy_state in zip(run.strategies, state["strategies"], strict=True):
            strategy.load_state_dict(strategy_state)
            strategy.restore(run.backbone)
        run_state = RunState.from_json(meta["run_state"])
        seen, trainable = set(meta["seen"]), set(meta["trainable_names"])
        if not 0 < run_state.next_task <= len(run.tasks) or len(run_state.baseline_acc) != len(run.tasks):
            raise ValueError(f"it finished {run_state.next_task} of {len(run.tasks)} tasks")
        if "optimizer" in state:  # train.reset_optimizer false: the carried optimizer's verified state
            run.optimizer_state = optimizer_from_checkpoint(state["optimizer"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {root} does not fit this run: {brief(str(exc))}") from None
    device = run.devices.device
    missing = set(model_tensors) - set(run.backbone.model.state_dict())
    if missing:
        raise CheckpointError(f"checkpoint {root} has weights this model lacks: {sorted(missing)[:3]}")
    try:
        run.backbone.model.load_state_dict({k: v.to(device) for k, v in model_tensors.items()}, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise CheckpointError(f"checkpoint {root} does not fit this model: {brief(str(exc))}") from None
    run.state, run.backbone.label_space.seen, run.trainable_names = run_state, seen, trainable
