"""The conformance checks clft runs on its own plugins, for any plugin's test suite.

``check_strategy``: for each scenario the strategy supports (``task-il`` only when it
``requires_task_id``), a short stream (two tasks by default) runs a few steps through
the real sweep, and

- the accuracy matrix is full and every state the strategy keeps after the first task
  survives ``state_dict`` -> checkpoint format (``clft.storage.state_io``) -> a fresh instance's
  ``load_state_dict`` exactly, with ``extra_state_bytes() > 0`` when it keeps state;
- a run interrupted in the second task and resumed from the first task's checkpoint
  ends with the same matrix, model and strategy state, bit for bit.

``check_benchmark``: a deterministic, well-formed stream. ``check_backbone``: a
well-formed ``forward``/``loss``/``predict`` contract on one batch, then a finetune run
through ``check_strategy``. Every check also checks the plugin's documentation: a class
docstring and a ``Config`` dataclass whose every field has a docstring and which rejects
an unknown option. A failed check raises ``AssertionError`` saying what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import torch
import yaml

from clft.config import field_docs
from clft.errors import ConfigError
from clft.registry import Registry, backbones, benchmarks, strategies
from clft.testing._state import assert_same, differs, through_checkpoint, without_rng
from clft.types import SCENARIOS, LabelSpace, Outputs

DEFAULT_BACKBONE = {"name": "mlp", "hidden": [16]}
DEFAULT_BENCHMARK = {"name": "split-digits", "n_tasks": 2}
TRAIN = {"epochs": 1, "batch_size": 16, "lr": 0.01, "max_steps_per_task": 3, "threads": 1}
KILL_AT = "train:task1:step1"


class Interrupted(Exception):
    """Stands in for a SIGKILL at ``KILL_AT`` (in-process, so the check stays fast)."""


@contextmanager
def using(registry: Registry, cls_or_name: type | str) -> Iterator[str]:
    """The registered name of ``cls_or_name``; an unregistered class is registered for the block."""
    if isinstance(cls_or_name, str):
        registry.get(cls_or_name)  # a one-line error when unknown, broken or in conflict
        yield cls_or_name
        return
    name = getattr(cls_or_name, "name", None)
    if name in registry and registry.get(name) is cls_or_name:
        yield name
        return
    with registry.registered(cls_or_name, name, "clft.testing") as registered:
        yield registered


@contextmanager
def workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="clft-check-") as tmp:
        yield Path(tmp)


def check_documented_config(registry: Registry, name: str) -> None:
    """A class docstring; a ``Config`` dataclass, each field documented, that rejects unknown options."""
    cls = registry.get(name)
    assert (cls.__doc__ or "").strip(), f"{registry.singular} {name!r} has no class docstring"
    assert dataclasses.is_dataclass(cls.Config), f"{registry.singular} {name!r}: Config is not a dataclass"
    documented = field_docs(cls.Config)
    missing = [f.name for f in dataclasses.fields(cls.Config) if not documented.get(f.name, "").strip()]
    assert not missing, f"{registry.singular} {name!r}: Config fields without a docstring: {missing}"
    try:
        registry.resolve({"name": name, "no_such_option": 1})
    except ConfigError as exc:
        assert "no_such_option" in str(exc), f"{registry.singular} {name!r}: the error does not name the key: {exc}"
    else:
        raise AssertionError(f"{registry.singular} {name!r} accepted the unknown option 'no_such_option'")


def scenarios_for(cls: type, benchmark: dict) -> list[str]:
    """The scenarios the conformance stream offers, restricted to task-il for ``requires_task_id``."""
    bench_cls = benchmarks.get(benchmark["name"])
    supported = [s for s in SCENARIOS if s in getattr(bench_cls, "scenarios", SCENARIOS)]
    return ["task-il"] if cls.requires_task_id else supported


def conformance_experiment(folder: Path, strategy: str, scenario: str, backbone: dict, benchmark: dict):
    """A two-task, few-step experiment of ``strategy`` in ``scenario`` (loaded like a YAML file)."""
    from clft.config.experiment import load_experiment

    raw = {"name": "conformance", "seeds": [0], "benchmark": benchmark, "backbone": backbone,
           "strategies": [strategy], "train": TRAIN}
    if "scenario" in {f.name for f in dataclasses.fields(benchmarks.get(benchmark["name"]).Config)}:
        raw["scenarios"] = [scenario]
    path = folder / f"{scenario}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(str(path))[0]


def recorded_run(cfg, out: Path, *, resume: bool = False, kill: bool = False):
    """Run ``cfg`` through ``clft.sweep``; returns (the Run, [(states, bytes)] after each task, result paths)."""
    import clft.engine.runner
    import clft.sweep.run

    runs, after_task = [], []
    build = clft.sweep.run.build_run

    def record(run, task) -> None:
        states = [through_checkpoint(s.state_dict()) for s in run.strategies]
        after_task.append((states, [s.extra_state_bytes() for s in run.strategies]))

    def recording_build(*args, **kwargs):
        run = build(*args, **kwargs)
        run.on_task_end.append(record)
        runs.append(run)
        return run

    def kill_point(name: str) -> None:
        if kill and name == KILL_AT:
            raise Interrupted(name)

    with mock.patch.object(clft.sweep.run, "build_run", recording_build), \
            mock.patch.object(clft.engine.runner, "kill_point", kill_point):
        paths = clft.sweep.run.run_experiment(cfg, out, resume=resume, progress=False, log=lambda message: None)
    return runs[-1], after_task, paths


def check_round_trips(name: str, after_task: list) -> None:
    """Each recorded state loads into a fresh instance exactly; stateful means extra_state_bytes() > 0."""
    fresh = strategies.build({"name": name})
    empty = without_rng(through_checkpoint(fresh.state_dict()))
    for states, sizes in after_task[:1]:
        for state, size in zip(states, sizes):
            assert isinstance(size, int) and size >= 0, f"{name}: extra_state_bytes() is {size!r}"
            if differs(without_rng(state), empty):
                assert size > 0, f"{name} keeps state after the first task but reports extra_state_bytes() == 0"
            fresh.load_state_dict(state)
            assert_same(through_checkpoint(fresh.state_dict()), state, f"{name} state after load_state_dict")
            assert fresh.extra_state_bytes() == size, f"{name}: extra_state_bytes() differs after load_state_dict"


def check_strategy_in(name: str, scenario: str, backbone: dict, benchmark: dict, folder: Path) -> list:
    """The two-task run, state round trip and kill/resume identity of ``name`` in ``scenario``."""
    cfg = conformance_experiment(folder, name, scenario, backbone, benchmark)
    run, after_task, [path] = recorded_run(cfg, folder / "straight")
    acc = json.loads(path.read_text())["acc"]
    assert len(acc) >= 2 and all(len(row) == len(acc) for row in acc), f"{name}: accuracy matrix {acc} is not TxT"
    assert all(0.0 <= a <= 1.0 for row in acc for a in row), f"{name}: accuracies out of [0, 1]: {acc}"
    check_round_trips(name, after_task)
    try:
        recorded_run(cfg, folder / "killed", kill=True)
    except Interrupted:
        pass
    else:
        raise AssertionError(f"{name}: the run never reached {KILL_AT}")
    resumed, _, [resumed_path] = recorded_run(cfg, folder / "killed", resume=True)
    assert json.loads(resumed_path.read_text())["acc"] == acc, f"{name}: a resumed run ends with another matrix"
    assert_same(resumed.backbone.model.state_dict(), run.backbone.model.state_dict(), f"{name} resumed model")
    for a, b in zip(resumed.strategies, run.strategies):
        assert_same(through_checkpoint(a.state_dict()), through_checkpoint(b.state_dict()), f"{name} resumed state")
    return acc


def check_strategy(cls_or_name: type | str, scenarios: list[str] | None = None, *, backbone: dict | None = None,
                   benchmark: dict | None = None, workdir_path: Path | None = None) -> dict[str, list]:
    """Conformance of a strategy; returns ``{scenario: accuracy matrix}``. Raises ``AssertionError``
    naming the strategy and what is wrong. It checks:

    - documentation: a class docstring; ``Config`` is a dataclass, every field has a docstring
      (the string under it, which ``clft show`` prints), and an unknown option is refused with
      a ConfigError naming it;
    - a new instance keeps no state (``extra_state_bytes() == 0``);
    - for each scenario (``scenarios``, default: every scenario the benchmark offers, only
      ``task-il`` for a ``requires_task_id`` strategy), a few steps of a two-task run through
      the real sweep (``clft.sweep``) give a full T×T matrix of accuracies in [0, 1];
    - the state after the first task survives ``state_dict`` -> the checkpoint format
      (safetensors + JSON) -> a fresh instance's ``load_state_dict`` exactly, with the same
      ``extra_state_bytes()``, which is > 0 when any state (other than an RNG) is kept;
    - a run killed in the second task and resumed from the first task's checkpoint ends with
      the same matrix, model weights and strategy state as the uninterrupted run, bit for bit.

    ``backbone``/``benchmark`` default to the class's ``conformance_backbone`` and
    ``conformance_benchmark`` (an mlp on two-task split-digits); ``workdir_path`` keeps the
    runs there (default: a temporary folder)."""
    with using(strategies, cls_or_name) as name:
        cls = strategies.get(name)
        check_documented_config(strategies, name)
        assert strategies.build({"name": name}).extra_state_bytes() == 0, f"{name}: a new instance keeps state"
        backbone = dict(backbone or getattr(cls, "conformance_backbone", DEFAULT_BACKBONE))
        benchmark = dict(benchmark or getattr(cls, "conformance_benchmark", DEFAULT_BENCHMARK))
        matrices = {}
        with workdir(workdir_path) as folder:
            for scenario in scenarios or scenarios_for(cls, benchmark):
                (folder / scenario).mkdir(parents=True, exist_ok=True)
                matrices[scenario] = check_strategy_in(name, scenario, backbone, benchmark, folder / scenario)
        return matrices


def check_benchmark(cls_or_name: type | str, options: dict | None = None, seeds: tuple[int, ...] = (0, 1)) -> list:
    """Conformance of a benchmark (built with ``options``); returns the tasks of ``seeds[0]``. Raises
    ``AssertionError`` naming what is wrong. It checks:

    - documentation: a class docstring, a ``Config`` dataclass whose every field has a docstring,
      an unknown option refused with a ConfigError naming it;
    - ``scenario`` is one of ``SCENARIOS`` and of the class's ``scenarios``; ``label_names`` are strings;
    - ``tasks(seed)`` is deterministic: called twice it gives the same task names, classes and
      (first 50) training examples;
    - every stream of ``seeds`` is well formed: task ids 0..T-1 in order, classes within the
      label names, non-empty train and test splits with ``label`` and ``task`` columns, labels
      within the task's classes, the ``task`` column equal to the task id, and classes
      disjoint across tasks where the scenario requires it (``clft.data.check_disjoint_classes``)."""
    from clft.data import check_disjoint_classes

    with using(benchmarks, cls_or_name) as name:
        check_documented_config(benchmarks, name)
        bench = benchmarks.build({"name": name, **(options or {})})
        assert bench.scenario in SCENARIOS and bench.scenario in type(bench).scenarios, \
            f"{name}: scenario {bench.scenario!r} is not one of {type(bench).scenarios}"
        assert bench.label_names and all(isinstance(n, str) for n in bench.label_names), f"{name}: label_names"
        streams = [bench.tasks(seed) for seed in seeds]
        again = bench.tasks(seeds[0])
        for first, second in zip(streams[0], again):
            assert (first.name, first.classes) == (second.name, second.classes), f"{name}: tasks(seed) differs"
            assert first.train[:50] == second.train[:50], f"{name}: tasks(seed) gives other examples twice"
        for tasks in streams:
            check_stream(name, tasks, bench)
            check_disjoint_classes(tasks, bench.scenario)
        return streams[0]


def check_stream(name: str, tasks: list, bench) -> None:
    assert tasks, f"{name}: an empty stream"
    assert [t.id for t in tasks] == list(range(len(tasks))), f"{name}: task ids are not 0..T-1 in order"
    for task in tasks:
        assert set(task.classes) <= set(range(len(bench.label_names))), f"{name}: task {task.id} classes"
        for split in (task.train, task.test):
            assert {"label", "task"} <= set(split.column_names), f"{name}: task {task.id} lacks label/task"
            assert len(split) > 0, f"{name}: task {task.id} has an empty split"
            assert set(split["label"]) <= set(task.classes), f"{name}: task {task.id} labels outside its classes"
            assert set(split["task"]) == {task.id}, f"{name}: task {task.id}'s task column is wrong"


def check_backbone(cls_or_name: type | str, options: dict | None = None, *, benchmark: dict | None = None,
                   workdir_path: Path | None = None) -> Outputs:
    """Conformance of a backbone (built with ``options`` on ``benchmark``, default two-task
    split-digits); returns the ``Outputs`` of one batch. Raises ``AssertionError`` naming what is
    wrong. It checks:

    - documentation: a class docstring, a ``Config`` dataclass whose every field has a docstring,
      an unknown option refused with a ConfigError naming it;
    - ``forward`` on a batch of 8 returns an ``Outputs``: ``example_loss`` of shape [8], finite,
      ``logits`` (when given) of shape [8, number of classes], and ``loss(batch, task)`` equal to
      ``forward(batch, task).main_loss()``;
    - a gradient flows: after ``main_loss().backward()`` some trainable parameter has a non-zero grad;
    - ``predict`` returns shape [8] of label ids the label space allows for the task (or -1);
    - a finetune run of two tasks on it passes ``check_strategy`` (full matrix, kill/resume identity)."""
    with using(backbones, cls_or_name) as name:
        check_documented_config(backbones, name)
        spec, bench_spec = {"name": name, **(options or {})}, dict(benchmark or DEFAULT_BENCHMARK)
        bench = benchmarks.build(bench_spec)
        tasks = bench.tasks(0)
        torch.manual_seed(0)
        backbone = backbones.build(spec, bench, tasks).to("cpu")
        backbone.label_space = LabelSpace(bench.scenario, len(bench.label_names), {t.id: t.classes for t in tasks})
        backbone.label_space.mark_seen(tasks[0])
        outputs = check_one_batch(name, backbone, tasks[0])
        scenario = bench_spec.get("scenario", bench.scenario)
        check_strategy("finetune", [scenario], backbone=spec, benchmark=bench_spec, workdir_path=workdir_path)
        return outputs


def check_one_batch(name: str, backbone, task) -> Outputs:
    data = backbone.prepare(task.train)
    examples = data[list(range(min(8, len(data))))]
    batch = backbone.collate(examples)
    size = len(examples["label"])
    backbone.model.eval()  # no dropout: forward and loss must agree exactly
    outputs = backbone.forward(batch, task)
    assert isinstance(outputs, Outputs), f"{name}: forward returned a {type(outputs).__name__}, not Outputs"
    assert outputs.example_loss.shape == (size,), f"{name}: example_loss has shape {tuple(outputs.example_loss.shape)}"
    assert torch.isfinite(outputs.example_loss).all(), f"{name}: a non-finite example loss"
    if outputs.logits is not None:
        shape = (size, backbone.label_space.num_classes)
        assert outputs.logits.shape == shape, f"{name}: logits have shape {tuple(outputs.logits.shape)}, not {shape}"
    main = outputs.main_loss()
    torch.testing.assert_close(backbone.loss(batch, task), main, msg=f"{name}: loss() is not forward().main_loss()")
    main.backward()
    grads = [p.grad for p in backbone.trainable_parameters()]
    assert grads and any(g is not None and bool(g.abs().sum() > 0) for g in grads), f"{name}: no gradient flows"
    with torch.inference_mode():
        predicted = backbone.predict(batch, task, backbone.label_space.scenario)
    backbone.model.train()
    allowed = set(backbone.label_space.allowed(task.id)) | {-1}
    assert predicted.shape == (size,), f"{name}: predict returned shape {tuple(predicted.shape)}"
    assert set(predicted.tolist()) <= allowed, f"{name}: predict returned labels outside {sorted(allowed)}"
    return outputs
