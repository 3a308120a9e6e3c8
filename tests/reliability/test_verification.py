"""Checkpoints and results are verified before use: a damaged file is one line naming it.

A checkpoint's ``meta.json`` records the sha256 of each tensor file and of itself; a
result JSON carries a checksum of its canonical content and is schema-checked by every
reader (``clft run`` deciding a run is finished, ``clft table``, ``clft plot``).
"""

from __future__ import annotations

import json
import shutil

import pytest
from reliability_helpers import experiment, forked, matrices, one_line_error, run_quietly, write_yaml
from safetensors.torch import load_file, save_file

from clft.cli import main

RUN_ARGS = ["--quiet", "--no-plots"]
RUN_KEY = "class-il/replay+ewc/seed0"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "out"
    run_quietly(experiment(), out)
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A results folder whose run was SIGKILLed in task 2 (checkpoint of task 1 on disk)."""
    root = tmp_path_factory.mktemp("killed")
    assert forked(lambda: run_quietly(experiment(), root / "out"), {"CLFT_KILL_AT": "train:task2:step0"}) == -9
    return root / "out"


@pytest.fixture
def work(killed, tmp_path):
    """A private copy of the killed folder and its experiment file: (out, exp, task folder)."""
    out = tmp_path / "out"
    shutil.copytree(killed, out)
    folder = out / ".checkpoints" / RUN_KEY / "task001"
    return out, write_yaml(tmp_path / "exp.yaml"), folder


def resume(out, exp, *extra) -> int:
    return main(["run", str(exp), "--out", str(out), "--resume", *extra, *RUN_ARGS])


def change_one_float(path) -> None:
    tensors = load_file(str(path))
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 0.25
    save_file(tensors, str(path))


def rewrite_meta(path, change) -> None:
    from clft.storage.checkpoint import meta_digest

    meta = json.loads(path.read_text())
    change(meta)
    meta["meta_sha256"] = meta_digest(meta)  # a consistent checksum: only the content is wrong
    path.write_text(json.dumps(meta))


DAMAGES = {
    "one float changed": ("model.safetensors", lambda folder: change_one_float(folder / "model.safetensors")),
    "100 bytes of 0xFF": ("model.safetensors", lambda folder: _overwrite(folder / "model.safetensors", 200)),
    "state flipped": ("state.safetensors", lambda folder: _overwrite(folder / "state.safetensors", 300, 1)),
    "meta is []": ("meta.json", lambda folder: (folder / "meta.json").write_text("[]")),
    "meta edited": ("meta.json", lambda folder: _edit_meta_text(folder / "meta.json")),
    "meta lacks rng": ("meta.json", lambda folder: rewrite_meta(folder / "meta.json", lambda m: m.pop("rng"))),
    "meta lacks state": ("meta.json", lambda folder: rewrite_meta(folder / "meta.json", lambda m: m.pop("state"))),
    "run_state is a list": (str(RUN_KEY), lambda folder: rewrite_meta(folder / "meta.json",
                                                                      lambda m: m.update(run_state=[1]))),
    "LATEST escapes": ("LATEST", lambda folder: (folder.parent / "LATEST").write_text("../../../x\n")),
    "LATEST is a folder": ("LATEST is damaged: it is a folder",
                           lambda folder: ((folder.parent / "LATEST").unlink(), (folder.parent / "LATEST").mkdir())),
    "LATEST is a link": ("LATEST is a symbolic link",
                         lambda folder: ((folder.parent / "LATEST").unlink(),
                                         (folder.parent / "LATEST").symlink_to(folder / "meta.json"))),
}


def _overwrite(path, offset: int, count: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + count] = b"\xff" * count
    path.write_bytes(bytes(data))


def _edit_meta_text(path) -> None:
    meta = json.loads(path.read_text())
    meta["run_state"]["next_task"] = 1  # without updating meta_sha256
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_is_one_line_naming_the_file_and_restart_run_retrains(damage, work, reference, capsys):
    out, exp, folder = work
    named, apply = DAMAGES[damage]
    apply(folder)
    line = one_line_error(capsys, resume(out, exp), 2)
    assert named in line and f"pass --restart-run {RUN_KEY}" in line
    assert not (out / RUN_KEY).with_suffix(".json").exists()
    assert resume(out, exp, "--restart-run", RUN_KEY) == 0
    assert matrices(out) == matrices(reference)  # trained from scratch: the uninterrupted matrix
    assert not (out / ".checkpoints" / RUN_KEY).exists()


def test_a_latest_folder_is_named_before_a_fresh_run_trains(work, reference, capsys):
    """Without --resume the run would train task 0 and then fail to write LATEST: it is named first."""
    out, exp, folder = work
    DAMAGES["LATEST is a folder"][1](folder)
    code = main(["run", str(exp), "--out", str(out), *RUN_ARGS])
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2 and err.count("\n") == 1 and ": training " not in captured.out + err, captured
    assert "LATEST is damaged: it is a folder" in err and f"pass --restart-run {RUN_KEY}" in err


def test_an_intact_checkpoint_resumes_to_the_same_matrix(work, reference):
    out, exp, _ = work
    assert resume(out, exp) == 0
    assert matrices(out) == matrices(reference)


def test_restart_run_must_name_a_run_of_the_experiment(work, capsys):
    out, exp, _ = work
    line = one_line_error(capsys, resume(out, exp, "--restart-run", "class-il/replay/seed0"), 2)
    assert "--restart-run 'class-il/replay/seed0' names no run of this experiment" in line and RUN_KEY in line


@pytest.fixture
def finished(reference, tmp_path):
    out = tmp_path / "done"
    shutil.copytree(reference, out)
    return out, out / f"{RUN_KEY}.json"


def edit_result(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


RESULT_DAMAGES = {
    "[1, 2]": (lambda p: p.write_text("[1, 2]"), "not a run result (a JSON list"),
    "tasks null": (lambda p: edit_result(p, lambda d: d.update(tasks=None)), "tasks must be a list"),
    "NaN in acc": (lambda p: edit_result(p, lambda d: d["acc"][1].__setitem__(0, float("nan"))),
                   "acc[1] holds nan; accuracies are finite numbers in [0, 1]"),
    "Infinity in baseline": (lambda p: edit_result(p, lambda d: d["baseline_acc"].__setitem__(0, float("inf"))),
                             "baseline_acc holds inf"),
    "ragged acc": (lambda p: edit_result(p, lambda d: d["acc"][2].pop()), "acc[2] must be a list of 5 accuracies"),
    "a number changed": (lambda p: edit_result(p, lambda d: d["acc"][4].__setitem__(0, 0.5)),
                         "was changed after it was written"),
    "truncated": (lambda p: p.write_text(p.read_text()[:100]), "is unreadable"),
    "seed a string": (lambda p: edit_result(p, lambda d: d.update(seed="0")), "seed must be a int"),
}


@pytest.mark.parametrize("damage", list(RESULT_DAMAGES))
@pytest.mark.parametrize("command", ["resume", "table", "plot"])
def test_a_malformed_result_is_one_line_naming_it(command, damage, finished, capsys):
    out, path = finished
    apply, fragment = RESULT_DAMAGES[damage]
    apply(path)
    argv = {"resume": ["run", str(write_yaml(out.parent / "exp.yaml")), "--out", str(out), "--resume", *RUN_ARGS],
            "table": ["table", str(out)], "plot": ["plot", str(out), "--out", str(out.parent / "plots")]}[command]
    line = one_line_error(capsys, main(argv), 2)
    assert str(path) in line and fragment in line


def test_a_reformatted_result_still_verifies(finished, reference, capsys):
    out, path = finished
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True))
    assert main(["table", str(out)]) == 0
    assert main(["run", str(write_yaml(out.parent / "exp.yaml")), "--out", str(out), *RUN_ARGS]) == 0
    assert matrices(out) == matrices(reference)


def test_results_written_before_checksums_are_read_on_their_schema(finished, capsys):
    out, path = finished
    edit_result(path, lambda d: (d.pop("checksum"), d.pop("code")))  # no checksum, no code identity: older clft
    assert main(["table", str(out)]) == 0
    assert "| replay+ewc" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["resume", "table"])
def test_a_result_whose_checksum_was_removed_is_damaged(command, finished, capsys):
    """Code that records its identity (``code``) always adds the checksum: without it the file was edited."""
    out, path = finished
    edit_result(path, lambda d: (d.pop("checksum"), d["acc"][-1].__setitem__(0, 1.0)))
    argv = {"resume": ["run", str(write_yaml(out.parent / "exp.yaml")), "--out", str(out), "--resume", *RUN_ARGS],
            "table": ["table", str(out)]}[command]
    line = one_line_error(capsys, main(argv), 2)
    assert f"result file {path} is damaged" in line and "lacks" in line and "'checksum'" in line
    assert "ACC" not in capsys.readouterr().out


def test_the_checksum_covers_the_matrix(finished):
    from clft.results.check import canonical_digest

    data = json.loads(finished[1].read_text())
    assert data["checksum"] == canonical_digest(data)
    data["acc"][0][0] = 1.0 - data["acc"][0][0]
    assert data["checksum"] != canonical_digest(data)
