"""Crash safety: SIGKILL at many points, then --resume, always ends with the uninterrupted matrix.

Each scenario is a chain of kill points: the run is started (in a forked child, see
``reliability_helpers.forked``) with ``CLFT_KILL_AT`` set to the first point and must die
there; every later point kills a resumed run; a last resume (in this process) finishes.
After every kill each ``.json`` under the results folder must parse and every
checkpoint ``LATEST`` must name a complete folder; at the end the results equal those
of an uninterrupted run and nothing else (no checkpoint, lock or temporary file) is left.
One kill through the real command line (``clft run``, then ``clft run --resume``, in subprocesses) closes the file.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from reliability_helpers import (
    check_checkpoints,
    experiment,
    files,
    forked,
    matrices,
    parse_every_json,
    run_quietly,
    write_yaml,
)

from clft.results.files import load_results
from clft.storage import faults

CHAINS = {  # name -> (seeds, kill points in the order a run (resumed after each kill) reaches them)
    "early": ([0], ["run:after-baseline", "train:task0:step0", "write:meta.json:before-rename",
                    "checkpoint:task0:before-rename", "checkpoint:task0:before-latest", "write:LATEST:before-rename",
                    "checkpoint:task0:before-cleanup", "train:task1:step0", "checkpoint:task1:before-rename",
                    "checkpoint:task1:before-latest"]),
    "late": ([0], ["train:task2:step5", "train:task3:step1", "checkpoint:task3:before-latest",
                   "checkpoint:task3:before-cleanup", "train:task4:step2", "checkpoint:task4:before-rename",
                   "checkpoint:task4:before-latest", "checkpoint:task4:before-cleanup"]),
    "runs": ([0, 1], ["write:seed0.json:before-rename", "run:after-result", "train:task2:step3",
                      "checkpoint:task2:before-cleanup", "write:seed1.json:before-rename", "run:after-result"]),
    # single kills of a run never resumed before
    **{point: ([0], [point]) for point in ("train:task2:step5", "checkpoint:task2:before-rename",
                                           "checkpoint:task2:before-latest", "checkpoint:task2:before-cleanup")},
}
KILL_POINTS = {point for _, chain in CHAINS.values() for point in chain}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted results of the one-run and two-run experiments."""
    found = {}
    for seeds in ([0], [0, 1]):
        out = tmp_path_factory.mktemp(f"reference{len(seeds)}")
        run_quietly(experiment(seeds=seeds), out)
        found[len(seeds)] = (matrices(out), files(out))
    return found


def kill_then_resume(chain: list[str], seeds: list[int], out) -> None:
    cfg = experiment(seeds=seeds)
    for number, point in enumerate(chain):
        code = forked(lambda resume=number > 0: run_quietly(cfg, out, resume=resume), {"CLFT_KILL_AT": point})
        assert code == -9, f"{point}: the child exited with {code} instead of being killed there"
        parse_every_json(out)  # raises (naming the file) on any .json a reader could not parse
        check_checkpoints(out)
        load_results(out)  # the table/plot reader accepts the folder at every instant
    run_quietly(cfg, out, resume=True)


@pytest.mark.parametrize("name", list(CHAINS))
def test_killed_then_resumed_run_ends_with_the_uninterrupted_matrix(name, reference, tmp_path):
    seeds, chain = CHAINS[name]
    out = tmp_path / "out"
    kill_then_resume(chain, seeds, out)
    expected_matrices, expected_files = reference[len(seeds)]
    assert matrices(out) == expected_matrices
    assert files(out) == expected_files  # no checkpoint, lock or temporary file left


def test_every_kill_point_of_the_chains_is_reached_by_an_uninterrupted_sweep(tmp_path, monkeypatch):
    """A renamed or removed kill point would make a chain above test nothing: record the points reached."""
    reached: set[str] = set()

    class Recording(str):  # stands for $CLFT_KILL_AT: records every point asked about, kills at none
        def split(self, sep=None):
            return type("Points", (), {"__contains__": lambda _, name: reached.add(name) or False})()

    fake_os = SimpleNamespace(environ={faults.ENV: Recording("recording")}, kill=os.kill, getpid=os.getpid)
    monkeypatch.setattr(faults, "os", fake_os)
    run_quietly(experiment(seeds=[0, 1]), tmp_path / "out")
    assert reached >= KILL_POINTS, sorted(KILL_POINTS - reached)


@pytest.mark.slow
def test_the_real_command_line_killed_then_resumed(cli, reference, tmp_path):
    """`clft run` killed while writing its result (a half-written temporary file), then `clft run --resume`."""
    exp, out = write_yaml(tmp_path / "exp.yaml"), tmp_path / "out"
    args = ["run", str(exp), "--out", str(out), "--quiet", "--no-plots"]
    proc = cli(*args, env={"CLFT_KILL_AT": "write:seed0.json:before-rename"})
    assert proc.returncode == -9, proc.stderr
    parse_every_json(out)
    assert list(out.rglob(".seed0.json.*.tmp"))  # the kill left a half-written result behind
    check_checkpoints(out)
    proc = cli(*args, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "| replay+ewc" in proc.stdout
    expected_matrices, expected_files = reference[1]
    assert matrices(out) == expected_matrices and files(out) == expected_files
