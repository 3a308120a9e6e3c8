"""One line, not many: inputs that were taken silently, gave tracebacks or retried for a minute.

Each case goes through the command line (in-process ``clft.cli.main``, or a subprocess where
the environment must differ) and ends in one ``clft: error:`` line with its exit status, before
anything trains; or, for a results folder holding a file that is not a result, in a table and
one ``clft: warning:`` line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from reliability_helpers import STATEFUL, one_line_error, write_yaml

import clft.backbones.mlp as mlp
from clft.cli import main
from clft.registry import strategies
from clft.results.files import SkippedFileWarning
from clft.types import Strategy

RUN_ARGS = ["--quiet", "--no-plots"]
SHORT_TRAIN = {**STATEFUL["train"], "max_steps_per_task": 1}
TEXT_BACKBONE = {"name": "hf-classifier", "model": "all-MiniLM-L6-v2"}  # never built: the data fails first


def test_a_key_given_twice_in_yaml_names_the_key_and_both_lines(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    body = yaml.safe_dump({k: v for k, v in STATEFUL.items() if k != "train"}, sort_keys=False)
    exp.write_text(f"{body}train:\n  epochs: 5\n  lr: 0.001\ndescription: two blocks\ntrain:\n  epochs: 1\n")
    lines = exp.read_text().splitlines()
    first, second = (i + 1 for i, line in enumerate(lines) if line == "train:")
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    assert line == f"clft: error: {exp}: key 'train' is given twice (lines {first} and {second}); keep one"
    assert not (tmp_path / "out").exists()


def test_a_merge_key_may_still_be_overridden(tmp_path):
    from clft.config import load_yaml

    exp = tmp_path / "exp.yaml"
    exp.write_text("base: &base {epochs: 1, lr: 0.1}\ntrain:\n  <<: *base\n  lr: 0.01\n")
    assert load_yaml(exp)["train"] == {"epochs": 1, "lr": 0.01}  # YAML's merge: explicit keys win


def text_benchmark(tmp_path: Path, train: str, test: str, **options) -> dict:
    (tmp_path / "train.csv").write_text(train)
    (tmp_path / "test.csv").write_text(test)
    return {"name": "text-classification", "scenario": "class-il",
            "files": {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}, **options}


def test_a_csv_with_two_label_columns_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLFT_DATA_DIR", raising=False)
    rows = "".join(f"text {i},sports,world\n" for i in range(4))
    benchmark = text_benchmark(tmp_path, "text,label,label\n" + rows, "text,label\na,sports\nb,world\n")
    exp = write_yaml(tmp_path / "exp.yaml", backbone=TEXT_BACKBONE, benchmark=benchmark)
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    assert f"{tmp_path / 'train.csv'}: column 'label' appears twice in the header (columns 2 and 3)" in line


def test_test_labels_never_seen_in_training_are_named(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLFT_DATA_DIR", raising=False)
    train = "text,label\n" + "".join(f"t{i},{label}\n" for i in range(3) for label in ("a", "b"))
    test = "text,label\n" + "".join(f"t{i},{label}\n" for i in range(3) for label in ("c", "d"))
    exp = write_yaml(tmp_path / "exp.yaml", backbone=TEXT_BACKBONE, benchmark=text_benchmark(tmp_path, train, test,
                                                                                            n_tasks=2))
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    assert "the test split has label(s) 'c', 'd' that no training example has" in line
    assert "empty test split" not in line


def test_an_empty_compare_list_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml", strategies=None, compare=[])
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(out), *RUN_ARGS]), 2)
    assert "compare must list at least one entry" in line
    assert "finished" not in capsys.readouterr().out and not out.exists()


@pytest.fixture(scope="module")
def finished_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "out"
    exp = write_yaml(out.parent / "exp.yaml", train=SHORT_TRAIN)
    assert main(["run", str(exp), "--out", str(out), *RUN_ARGS]) == 0
    return out


def add_non_result(out: Path, kind: str) -> Path:
    path = out / "class-il" / ("old.json" if kind == "a folder named old.json" else "notes.json")
    if kind == "notes that are not JSON":
        path.write_text("remember: seed 1 looked odd\n")
    elif kind == "a folder named old.json":
        path.mkdir()
    else:
        path.symlink_to(out / "gone.json")
    return path


NON_RESULTS = ["notes that are not JSON", "a folder named old.json", "a dangling link"]


@pytest.mark.parametrize("kind", NON_RESULTS)
def test_a_non_result_json_is_skipped_by_the_table_with_a_warning(kind, finished_folder, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished_folder, out, symlinks=True)
    path = add_non_result(out, kind)
    with pytest.warns(SkippedFileWarning, match=f"skipped {path}: not a run result"):
        code = main(["table", str(out)])
    assert code == 0 and "| class-il | replay+ewc | 1 |" in capsys.readouterr().out


def test_the_skipped_file_is_one_warning_line_at_the_real_command_line(finished_folder, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished_folder, out)
    path = add_non_result(out, NON_RESULTS[0])
    done = subprocess.run([sys.executable, "-m", "clft", "table", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "| class-il | replay+ewc | 1 |" in done.stdout
    assert done.stderr == f"clft: warning: skipped {path}: not a run result (not JSON)\n"


class NoConfigStrategy(Strategy):
    """Test only: a third-party strategy that declares no Config (it takes no options)."""


def test_a_plugin_without_a_config_class_takes_no_options(tmp_path, capsys):
    out = tmp_path / "out"
    with strategies.registered(NoConfigStrategy, "no-config"):
        exp = write_yaml(tmp_path / "exp.yaml", strategies=None, compare=["no-config"], train=SHORT_TRAIN)
        assert main(["run", str(exp), "--out", str(out), *RUN_ARGS]) == 0
        assert (out / "class-il" / "no-config" / "seed0.json").is_file()
        exp = write_yaml(tmp_path / "exp.yaml", strategies=None, compare=[{"name": "no-config", "lam": 1.0}])
        line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out2"), *RUN_ARGS]), 2)
    assert line == "clft: error: strategy 'no-config': unknown key 'lam'; valid keys: (none)"


class NotADataclassConfig(Strategy):
    """Test only: a strategy whose Config is a plain class."""

    class Config:
        lam = 1.0


def test_a_plugin_whose_config_is_no_dataclass_is_one_line(tmp_path, capsys):
    with strategies.registered(NotADataclassConfig, "plain-config"):
        exp = write_yaml(tmp_path / "exp.yaml", strategies=None, compare=["plain-config"])
        line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    assert "strategy plugin 'plain-config'" in line and "its Config is not a dataclass" in line


UNKNOWN_MODEL = "no-such-org/no-such-model-xyz"


def text_experiment(tmp_path: Path, backbone: dict) -> Path:
    return write_yaml(tmp_path / "exp.yaml", backbone=backbone, strategies=None, compare=["finetune"],
                      benchmark={"name": "synthetic-text", "n_tasks": 2, "classes_per_task": 2}, train=SHORT_TRAIN)


@pytest.mark.slow
@pytest.mark.parametrize("network", ["HF_HUB_OFFLINE=1", "no network"])
def test_an_unknown_hub_model_offline_fails_fast_in_one_line(network, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if network == "HF_HUB_OFFLINE=1":
        env["HF_HUB_OFFLINE"] = "1"
    else:  # an endpoint that refuses at once stands for a machine without a network, without using one
        env["HF_ENDPOINT"] = "http://127.0.0.1:1"
    exp = text_experiment(tmp_path, {"name": "hf-classifier", "model": UNKNOWN_MODEL})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "clft", "run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS],
                          capture_output=True, text=True, env=env, timeout=240)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines[-1:] == [line for line in lines if line.startswith("clft: error: ")], lines
    assert len([line for line in lines if "huggingface" in line.lower() or "retry" in line.lower()]) <= 1, lines
    assert f"'{UNKNOWN_MODEL}' is neither a local folder nor in the HuggingFace cache" in lines[-1]
    assert ("HF_HUB_OFFLINE is set" if network == "HF_HUB_OFFLINE=1" else "cannot be reached") in lines[-1]
    assert time.monotonic() - started < 120  # retries took ~45 s beyond the start-up


def test_a_model_folder_without_a_tokenizer_is_one_line(tmp_path, capsys):
    from transformers import BertConfig, BertModel

    from clft.strategies._text import TINY_BERT

    folder = tmp_path / "model"
    options = {k: v for k, v in TINY_BERT.items() if k != "model_type"}
    BertModel(BertConfig(**options)).save_pretrained(folder)  # weights and config.json, no tokenizer
    exp = text_experiment(tmp_path, {"name": "hf-classifier", "model": str(folder)})
    line = one_line_error(capsys, main(["run", str(exp), "--out", str(tmp_path / "out"), *RUN_ARGS]), 2)
    assert f"tokenizer: the folder {folder} holds no tokenizer files" in line
    assert "set the backbone's 'tokenizer' option" in line


def test_an_mlp_too_large_for_memory_is_refused_before_it_is_built(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mlp, "available_memory_bytes", lambda: 16 * 2**30)  # a 16 GiB machine, whatever runs this
    monkeypatch.setattr(mlp, "build_mlp", lambda *args: pytest.fail("the model was built"))
    out = tmp_path / "out"
    exp = write_yaml(tmp_path / "exp.yaml")
    line = one_line_error(capsys, main(["run", str(exp), "backbone.hidden=[65536,65536]", "--out", str(out),
                                        *RUN_ARGS]), 2)
    assert "hidden [65536, 65536] has 4.3e+09 parameters" in line and "64.0 GiB" in line
    assert "more than the 16.0 GiB of memory available" in line and not out.exists()


def test_the_mlp_estimate_counts_every_weight_and_bias(monkeypatch):
    model = mlp.build_mlp(64, [32, 16], 10, 0.0, "relu")
    assert mlp.parameter_count([64, 32, 16, 10]) == sum(p.numel() for p in model.parameters()) == 2778
    monkeypatch.setattr(mlp, "available_memory_bytes", lambda: 2778 * 16 - 1)
    with pytest.raises(ValueError, match="2.78e\\+03 parameters"):
        mlp.check_fits_in_memory(2778, "mlp")
    monkeypatch.setattr(mlp, "available_memory_bytes", lambda: 2778 * 16)
    mlp.check_fits_in_memory(2778, "mlp")  # exactly enough


@pytest.mark.parametrize("command", ["tune", "table --reference"])
def test_every_command_that_takes_an_experiment_takes_a_preset_name(command, tmp_path, capsys):
    out = tmp_path / "out"
    small = ["seeds=[0]", "scenarios=[class-il]", "backbone.hidden=[8]", "train.epochs=1", "train.max_steps_per_task=1"]
    if command == "tune":
        code = main(["tune", "quickstart", "--key", "compare.1.lam", "--values", "10", "--out", str(out), "--quiet",
                     *small])
        assert code == 0, capsys.readouterr().err
        assert "best by validation ACC: class-il: compare.1.lam=10" in capsys.readouterr().out
    else:
        assert main(["run", "quickstart", "--out", str(out), *RUN_ARGS, *small, "compare=[finetune]"]) == 0
        capsys.readouterr()
        code = main(["table", str(out), "--reference", "quickstart"])  # its published block: none, so no cells
        captured = capsys.readouterr()
        assert code == 0 and captured.out.startswith("| scenario | entry | ours | n | paper |"), captured.err
