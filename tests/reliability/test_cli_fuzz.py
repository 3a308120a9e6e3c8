"""Fuzz the whole command line: experiment files and overrides, checkpoint files, result files.

Every example goes through ``clft.cli.main`` (in-process) and must end in one of:
the uninterrupted run's matrix; one line with a documented exit status, after which
``--restart-run`` / ``--overwrite`` retrains the identical matrix; never a traceback.
``CLFT_FUZZ_EXAMPLES`` raises the example count of each test (CI keeps the default).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import STATEFUL, experiment, forked, matrices, run_quietly
from test_config_fuzz import no_hang, realistic, texts

from clft.cli import main

EXAMPLES = int(os.environ.get("CLFT_FUZZ_EXAMPLES", "0"))
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
RUN_ARGS = ["--quiet", "--no-plots"]
RUN_KEY = "class-il/replay+ewc/seed0"
DOCUMENTED = {0, 2, 3, 74}  # success, bad input, diverged loss, cannot write (docs/reliability.md)
CASES = {"count": 0}
SMALL = {"benchmark": {"name": "split-digits", "scenario": "class-il", "n_tasks": 2},
         "train": {**STATEFUL["train"], "max_steps_per_task": 4}}  # two tasks: each example runs in well under 1 s


def cli(*argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``clft ARGV``; an exception escaping main fails the test.

    torch's process-wide settings that an experiment may change (threads, deterministic
    algorithms) are put back afterwards, so one example cannot slow or change the next.
    """
    out, err = io.StringIO(), io.StringIO()
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), no_hang(120.0):
            code = main(list(argv))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    CASES["count"] += 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", autouse=True)
def report_the_number_of_cases(request):
    """Prints how many command lines this module's fuzzers ran (the count asked for in issue 11)."""
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nclft CLI fuzz: {CASES['count']} command lines run")


def assert_one_line(code: int, err: str) -> None:
    assert code in DOCUMENTED - {0}, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("clft: error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "out"
    run_quietly(experiment(**SMALL), out)
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    root = tmp_path_factory.mktemp("killed")
    assert forked(lambda: run_quietly(experiment(**SMALL), root / "out"), {"CLFT_KILL_AT": "train:task1:step0"}) == -9
    return root / "out"


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exp") / "exp.yaml"
    path.write_text(yaml.safe_dump({**STATEFUL, **SMALL}))
    return path


# ------------------------------------------------------------------ mutations of a file's bytes or JSON
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                           max_leaves=6)
mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), min_size=1, max_size=3)),
    st.tuples(st.just("json"), st.tuples(st.integers(0, 10**6), st.sampled_from(["set", "delete", "add"]),
                                         json_values)),
)


def mutate(path: Path, mutation) -> None:
    kind, how = mutation
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(len(data) * how)])
    elif kind == "flip":
        buffer = bytearray(data)
        for where, xor in how:
            if buffer:
                buffer[min(int(where * len(buffer)), len(buffer) - 1)] ^= xor
        path.write_bytes(bytes(buffer))
    else:
        _mutate_json(path, *how)


def _mutate_json(path: Path, seed: int, action: str, value) -> None:
    """Pick a random node of the JSON document (seeded) and set, delete or add an entry there."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # not JSON (a tensor file): flip a byte instead
        return mutate(path, ("flip", [(seed % 997 / 997, 1 + seed % 255)]))
    rng = random.Random(seed)
    containers = [document] if isinstance(document, (dict, list)) else []
    node = document
    while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
        node = rng.choice(list(node.values()) if isinstance(node, dict) else node)
        if isinstance(node, (dict, list)):
            containers.append(node)
    target = containers[-1] if containers else None
    if isinstance(target, dict) and target:
        key = rng.choice(sorted(target))
        if action == "delete":
            del target[key]
        else:
            target[key if action == "set" else f"{key}_x"] = value
    elif isinstance(target, list) and target:
        index = rng.randrange(len(target))
        if action == "delete":
            target.pop(index)
        else:
            target[index] = value
    else:
        document = value
    path.write_text(json.dumps(document))


CHECKPOINT_FILES = ["LATEST", "task000/meta.json", "task000/model.safetensors", "task000/state.safetensors"]


@settings(FUZZ, max_examples=EXAMPLES or 10)
@given(name=st.sampled_from(CHECKPOINT_FILES), mutation=mutations)
def test_a_mutated_checkpoint_resumes_identically_or_fails_in_one_line_then_retrains(
        name, mutation, killed, reference, exp):
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        shutil.copytree(killed, out)
        mutate(out / ".checkpoints" / RUN_KEY / name, mutation)
        code, _, err = cli("run", str(exp), "--out", str(out), "--resume", *RUN_ARGS)
        if code != 0:
            assert_one_line(code, err)
            assert f"--restart-run {RUN_KEY}" in err, err
            code, _, err = cli("run", str(exp), "--out", str(out), "--resume", "--restart-run", RUN_KEY, *RUN_ARGS)
            assert code == 0, err
        assert matrices(out) == matrices(reference)


@settings(FUZZ, max_examples=EXAMPLES or 10)
@given(mutation=mutations)
def test_a_mutated_result_is_read_identically_or_named_in_one_line(mutation, reference, exp):
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        shutil.copytree(reference, out)
        mutate(out / f"{RUN_KEY}.json", mutation)
        code, table, err = cli("table", str(out))
        if code == 0:
            assert table == cli("table", str(reference))[1]
        else:
            assert_one_line(code, err)
            assert f"{RUN_KEY}.json" in err
        code, _, err = cli("run", str(exp), "--out", str(out), *RUN_ARGS)
        if code != 0:
            assert_one_line(code, err)
            assert f"{RUN_KEY}.json" in err and "--overwrite" in err, err
            code, _, err = cli("run", str(exp), "--out", str(out), "--overwrite", *RUN_ARGS)
            assert code == 0, err
        assert matrices(out) == matrices(reference)


BUDGET = ["train.max_steps_per_task=1", "train.eval_batch_size=512"]


@settings(FUZZ, max_examples=EXAMPLES or 30)
@given(text=st.one_of(st.just(None), texts), items=realistic)
def test_random_experiments_and_overrides_run_or_fail_in_one_line(text, items, exp):
    """A valid experiment with random overrides (or a random document), at a tiny training budget."""
    with tempfile.TemporaryDirectory() as folder:
        path = exp if text is None else Path(folder) / "random.yaml"
        if text is not None:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = Path(folder) / "out"
        code, _, err = cli("run", str(path), *items, *BUDGET, "--out", str(out), *RUN_ARGS)
        if code == 0:
            assert list(out.rglob("seed*.json")), err
            assert cli("table", str(out))[0] == 0
        else:
            assert_one_line(code, err)


