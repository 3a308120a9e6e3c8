"""The step contract of ``clft.types.Strategy``: one forward pass per step, a replaceable main
loss (one strategy at most), ``before_step`` once per optimizer step, ``after_step`` after it,
and a state_dict checked before training."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clft.backbones.mlp import MLP
from clft.cli import main
from clft.registry import strategies
from clft.types import Strategy


@dataclass
class NoOptions:
    """No options."""


def run_main(write_experiment, tmp_path, **changes) -> int:
    return main(["run", str(write_experiment(**changes)), "--out", str(tmp_path / "out"), "--quiet", "--no-plots"])


def test_no_strategy_runs_a_second_training_forward_pass_on_the_step_batch(write_experiment, tmp_path, monkeypatch):
    """Every collated batch gets at most one forward pass with gradients in train mode (LwF's and
    DER's old-model/stored-logit passes run without gradients, or on other batches)."""
    calls: dict[int, int] = {}
    kept: list = []  # keeps every batch alive, so ids stay unique
    depth = [0]
    collate, forward, logits = MLP.collate, MLP.forward, MLP.logits

    def counting_collate(self, examples):
        batch = collate(self, examples)
        kept.append(batch)
        calls[id(batch)] = 0
        return batch

    def counted(method):
        def wrapper(self, batch, *args):
            if depth[0] == 0 and id(batch) in calls and torch.is_grad_enabled() and self.model.training:
                calls[id(batch)] += 1
            depth[0] += 1  # forward calls logits: count the outer call only
            try:
                return method(self, batch, *args)
            finally:
                depth[0] -= 1
        return wrapper

    monkeypatch.setattr(MLP, "collate", counting_collate)
    monkeypatch.setattr(MLP, "forward", counted(forward))
    monkeypatch.setattr(MLP, "logits", counted(logits))
    # replay at task end collates its replay batches (the ER default replays stored tensors, never collated)
    group = ["lwf", {"name": "derpp", "memory_size": 40}, {"name": "replay", "memory_size": 40, "update": "task-end"},
             "ewc"]
    assert run_main(write_experiment, tmp_path, strategies=group,
                    train={"epochs": 1, "batch_size": 16, "lr": 0.01, "max_steps_per_task": 3}) == 0
    trained = [n for n in calls.values() if n]
    assert len(trained) >= 2 * 5 * 3 - 3  # the steps' batches and replay's batches (none on the first task)
    assert max(trained) == 1


class Recorder(Strategy):
    """Records what each hook sees."""

    Config = NoOptions

    def __init__(self, config):
        super().__init__(config)
        self.log: list = []

    def extra_loss(self, backbone, batch, outputs, task):
        self.log.append(("extra_loss", outputs.example_loss.requires_grad, backbone.model[0].weight.detach().clone()))

    def before_step(self, backbone, task):
        self.log.append(("before_step", all(p.grad is not None for p in backbone.trainable_parameters()), None))

    def after_step(self, backbone, batch, outputs, task):
        self.log.append(("after_step", outputs.example_loss.requires_grad, backbone.model[0].weight.detach().clone()))
        assert len(outputs.example_loss) == len(batch["label"]) == len(outputs.logits)


def test_before_step_runs_once_per_optimizer_step_and_after_step_sees_each_micro_batch_after_it(
        write_experiment, tmp_path):
    from clft.engine.runner import execute

    train = {"epochs": 1, "batch_size": 8, "lr": 0.01, "max_steps_per_task": 2, "grad_accumulation_steps": 2}
    with strategies.registered(Recorder, "recorder"):
        run = built_run(write_experiment, ["recorder"], train=train, benchmark={"name": "split-digits", "n_tasks": 1})
        execute(run)
    kinds = [kind for kind, _, _ in run.strategies[0].log]
    assert kinds == ["extra_loss", "extra_loss", "before_step", "after_step", "after_step"] * 2
    log = run.strategies[0].log
    assert log[0][1] and not log[3][1]  # live outputs while training, detached ones after the step
    assert log[2][1]  # gradients are there before the step
    assert torch.equal(log[0][2], log[1][2]) and not torch.equal(log[1][2], log[3][2])  # after_step: after it


class Frozen(Strategy):
    """Replaces the main loss by zero times it: Adam then never moves a weight."""

    Config = NoOptions

    def loss(self, backbone, batch, outputs, task):
        return outputs.main_loss() * 0.0


def built_run(write_experiment, group, **changes):
    from clft.config.experiment import load_experiment
    from clft.sweep.build import build_run
    from clft.sweep.plan import plan_runs

    cfg, _ = load_experiment(str(write_experiment(strategies=group, **changes)))
    return build_run(cfg, plan_runs(cfg)[0], None, False)


def test_a_strategy_can_replace_the_main_loss(write_experiment):
    from clft.engine.runner import execute

    with strategies.registered(Frozen, "frozen"):
        run = built_run(write_experiment, ["frozen"], benchmark={"name": "split-digits", "n_tasks": 2})
        before = {k: v.clone() for k, v in run.backbone.model.state_dict().items()}
        execute(run)
    after = run.backbone.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the replaced loss was the one trained on


class OtherLoss(Frozen):
    """A second loss-replacing strategy."""


def test_two_loss_replacing_strategies_are_a_one_line_error_before_training(write_experiment, tmp_path, capsys):
    with strategies.registered(Frozen, "frozen"), strategies.registered(OtherLoss, "other-loss"):
        assert run_main(write_experiment, tmp_path, strategies=["frozen", "other-loss"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "clft: error: strategies frozen, other-loss all override loss; combine at most one of them"
    assert not (tmp_path / "out").exists()  # nothing started


class SetState(Strategy):
    """Keeps a set in its state: not checkpointable."""

    Config = NoOptions

    def __init__(self, config):
        super().__init__(config)
        self.seen: set = set()

    def state_dict(self):
        return {"counts": [1, 2], "seen": self.seen}


def test_a_state_dict_that_cannot_be_checkpointed_stops_before_training_naming_strategy_and_key(
        write_experiment, tmp_path, capsys, monkeypatch):
    import clft.engine.runner

    trained = []
    monkeypatch.setattr(clft.engine.runner, "train_task", lambda run, task: trained.append(task.id))
    with strategies.registered(SetState, "set-state"):
        assert run_main(write_experiment, tmp_path, strategies=["set-state"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clft: error: strategy 'set-state': state_dict() holds a set at ['seen'], which cannot be "
                          "checkpointed; use tensors")
    assert "\n" not in err and trained == []  # one line, before the run even starts
