"""Hostile input: names that would be paths, values out of range, bad pairings, YAML bombs, odd folders.

Each case goes through the command line in-process (``clft.cli.main``) and must end in
one line with its documented exit status, before anything trains or is written.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass

import pytest
import yaml
from reliability_helpers import STATEFUL, one_line_error, write_yaml

import clft.sweep.locks
from clft.cli import main
from clft.config.yaml_safe import brief
from clft.registry import strategies
from clft.types import Strategy

RUN_ARGS = ["--quiet", "--no-plots"]


def result_files(root) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.json")) if root.exists() else []


@pytest.mark.parametrize("name", ["../../escape", "ABSOLUTE", ".hidden", "a/b", ".."])
def test_a_name_that_is_a_path_is_refused_and_nothing_is_written(name, tmp_path, capsys, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    name = str(tmp_path / "absolute-escape") if name == "ABSOLUTE" else name
    monkeypatch.chdir(work)
    exp = write_yaml(work / "exp.yaml", name=name)
    line = one_line_error(capsys, main(["run", str(exp), *RUN_ARGS]), 2)
    assert "is not a plain name" in line and brief(name) in line  # a long name is quoted by its prefix
    assert result_files(tmp_path) == [] and not (tmp_path / "absolute-escape").exists()


@pytest.mark.parametrize("override, fragment", [
    ("seeds=[-1]", "seed -1 is out of range; seeds must lie in [0, 2^32)"),
    ("seeds=[99999999999999999999]", "seeds[0]: 99999999999999999999 is out of range"),
    ("seeds=[4294967296]", "seed 4294967296 is out of range"),
    ("train.lr=1e300", "lr must be finite and in (0, 1000]"),
    ("train.lr=.inf", "train.lr: expected a finite number"),
    ("train.epochs=100000000000000000000000", "train.epochs: 100000000000000000000000 is out of range"),
    ("train.epochs=1000000", "epochs must lie in [1, 100000], got 1000000"),
    ("train.batch_size=10000000000", "batch_size must lie in [1, 1048576]"),
    ("train.momentum=1.5", "momentum must lie in [0, 1)"),
    ("train.weight_decay=-0.1", "weight_decay must lie in [0, 1000]"),
    ("train.grad_clip=0", "grad_clip must be a positive number or null"),
    ("train.max_steps_per_task=0", "max_steps_per_task must lie in [1,"),
    ("strategies.1.lam=.nan", "lam: expected a finite number"),
])
def test_numbers_out_of_range_fail_at_load_in_one_line(override, fragment, tmp_path, capsys):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", train={**STATEFUL["train"], "optimizer": "sgd"})
    line = one_line_error(capsys, main(["run", str(exp), override, "--out", str(out), *RUN_ARGS]), 2)
    assert fragment in line
    assert not out.exists()


def test_a_typo_in_the_third_entry_fails_before_the_first_run_trains(tmp_path, capsys):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", strategies=None,
                     compare=["finetune", "replay", {"name": "ewc", "lamm": 1.0}])
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 2)
    assert "unknown key 'lamm'" in line and "lam" in line
    assert result_files(out) == [] and not (out / ".checkpoints").exists()


def test_a_vector_backbone_on_a_text_benchmark_is_refused_before_any_run(tmp_path, capsys):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", benchmark={"name": "synthetic-text"}, backbone={"name": "mlp"},
                     strategies=None, compare=["finetune"])
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 2)
    assert "backbone 'mlp' takes vector inputs but benchmark 'synthetic-text' gives text examples" in line
    assert "hf-classifier" in line and not out.exists()


@dataclass
class NoOptions:
    pass


class NeedsTaskIds(Strategy):
    """Test only: a strategy that needs the task id at test time."""

    Config = NoOptions
    requires_task_id = True


class PredictsA(Strategy):
    """Test only: overrides predict."""

    Config = NoOptions

    def predict(self, backbone, batch, task, scenario):
        return backbone.predict(batch, task, scenario)


class PredictsB(PredictsA):
    """Test only: overrides predict too."""

    def predict(self, backbone, batch, task, scenario):
        return backbone.predict(batch, task, scenario)


@pytest.fixture
def test_strategies():
    strategies.names()  # load the built-ins and entry points first
    added = {"needs-task-ids": NeedsTaskIds, "predicts-a": PredictsA, "predicts-b": PredictsB}
    for name, cls in added.items():
        strategies.add(name, cls, "tests")
    yield
    for name in added:
        del strategies._entries[name]


@pytest.mark.parametrize("entry, fragment", [
    ("needs-task-ids", "strategy 'needs-task-ids' needs task ids at test time; use scenario task-il"),
    (["predicts-a", "predicts-b"], "strategies predicts-a, predicts-b all override predict; combine at most one"),
    ("l2p", "strategy 'l2p' needs a backbone for text inputs; 'mlp' takes vector inputs"),
    ("progressive-prompts", "strategy 'progressive-prompts' needs a backbone for text inputs"),
])
def test_plugin_pairings_are_checked_before_the_first_run_trains(entry, fragment, test_strategies, tmp_path, capsys):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", strategies=None, compare=["finetune", entry])
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 2)
    assert fragment in line
    assert result_files(out) == []  # finetune, listed first, did not train


def test_the_predict_conflict_is_also_caught_by_the_runner(test_strategies, tmp_path):
    """The runner's own check (``runner.predictor``), for code that builds runs without the sweep."""
    from clft.engine.runner import predictor
    from clft.errors import ConfigError

    run = type("FakeRun", (), {"strategies": [PredictsA(NoOptions()), PredictsB(NoOptions())]})()
    with pytest.raises(ConfigError, match="predicts-a, predicts-b all override predict"):
        predictor(run)
    run.strategies = [PredictsA(NoOptions())]
    assert predictor(run).__self__ is run.strategies[0]


BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
                 + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)])


@pytest.mark.parametrize("where", ["description", "published"])
def test_a_yaml_bomb_is_one_short_line_and_fast(where, tmp_path, capsys):
    body = "\n".join(yaml.safe_dump(STATEFUL).splitlines())
    text = f"{body}\n{where}:\n" + "\n".join("  " + line for line in BOMB.splitlines())
    exp = tmp_path / "exp.yaml"
    exp.write_text(text)
    started = time.perf_counter()
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    assert time.perf_counter() - started < 30  # a guard against a hang, not a performance target
    assert "aliases expand to more than 100000 nodes" in line and len(line) < 300


def test_long_values_are_quoted_by_a_short_prefix(tmp_path, capsys):
    exp = write_yaml(tmp_path / "exp.yaml", description=["x" * 10_000] * 1000)
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    assert "description: expected str, got list" in line and len(line) < 300


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_experiment_file_is_an_error(text, tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(text)
    out = tmp_path / "out"
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 2)
    assert f"{exp}: the file is empty" in line and not out.exists()


@pytest.mark.parametrize("inside", [False, True])
def test_out_naming_a_regular_file_is_exit_2(inside, tmp_path, capsys):
    regular = tmp_path / "file.txt"
    regular.write_text("keep me\n")
    out = regular / "sub" if inside else regular
    exp = write_yaml(tmp_path / "exp.yaml")
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 2)
    assert f"--out {regular} is a file, not a folder" in line and regular.read_text() == "keep me\n"


def test_a_read_only_results_folder_names_the_result_not_the_lock(tmp_path, capsys, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):  # the tests may run as root, for whom chmod does not bite
        if str(path).endswith("seed0.lock"):  # the run's lock (the sweep's claim on the folder went through)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(clft.sweep.locks.os, "open", read_only)
    exp = write_yaml(tmp_path / "exp.yaml")
    out = tmp_path / "out"
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 74)
    assert f"cannot write {out}/class-il/replay+ewc/seed0.json: Permission denied" in line and ".lock" not in line


def test_a_full_disk_under_overwrite_names_the_file(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml")
    assert main(["run", str(exp), "--out", str(out), *RUN_ARGS]) == 0
    result = out / "class-il" / "replay+ewc" / "seed0.json"
    before = result.read_bytes()
    import safetensors.torch

    def full_disk(tensors, filename, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), "--overwrite", *RUN_ARGS]), 74)
    assert "cannot write checkpoint file" in line and "model.safetensors: No space left on device" in line
    assert result.read_bytes() == before


def test_a_full_disk_while_claiming_the_folder_names_it(tmp_path, capsys, monkeypatch):
    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(clft.sweep.locks.os, "write", full_disk)
    exp = write_yaml(tmp_path / "exp.yaml")
    out = tmp_path / "out"
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), "--overwrite", *RUN_ARGS]), 74)
    assert line == f"clft: error: cannot write {out}: No space left on device; nothing was run"


@pytest.mark.parametrize("registry, spec, fragment", [
    ("benchmarks", {"name": "permuted-digits", "permutation_seed": -1}, "permutation_seed must lie in [0, 2^32)"),
    ("benchmarks", {"name": "permuted-mnist", "n_tasks": 10**6}, "n_tasks must lie in [1, 1000]"),
    ("strategies", {"name": "o-lora", "lora_alpha": 0}, "r and lora_alpha must be >= 1"),
    ("backbones", {"name": "mlp", "hidden": [10**9]}, "hidden must list at most 64 widths in [1, 65536]"),
])
def test_plugin_hyper_parameters_out_of_range_are_config_errors(registry, spec, fragment):
    from clft.errors import ConfigError
    from clft.registry import REGISTRIES

    with pytest.raises(ConfigError, match=re.escape(fragment)):
        REGISTRIES[registry].resolve(spec)
