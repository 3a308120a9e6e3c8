"""What `clft run` prints: --quiet, the default and -v, lines above the progress bar (tqdm.write),
and the libraries it drives kept quiet below -v."""

from __future__ import annotations

import importlib.util
import io
import re
import warnings

import pytest

from clft import console
from clft.config.experiment import load_experiment

TWO_RUNS = {"strategies": None, "compare": ["finetune", {"name": "ewc", "lam": 10.0}]}


def stderr_lines(proc) -> list[str]:
    """The non-blank lines of a subprocess's stderr."""
    return [line for line in proc.stderr.splitlines() if line.strip()]


def run_lines(capsys, *args) -> tuple[int, list[str], str]:
    """``clft run ARGS`` in this process: (exit status, the non-blank stderr lines, stdout)."""
    from clft.cli import main

    status = main(["run", *args])
    captured = capsys.readouterr()
    return status, [line for line in captured.err.splitlines() if line.strip()], captured.out


def test_quiet_default_and_verbose_say_what_users_expect(write_experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(console.ENV, raising=False)
    exp = str(write_experiment(**TWO_RUNS))
    status, lines, out = run_lines(capsys, exp, "--out", str(tmp_path / "q"), "--no-plots", "--quiet")
    assert status == 0 and lines == []  # errors and warnings only
    assert "| finetune |" in out  # the table still goes to stdout
    status, lines, _ = run_lines(capsys, exp, "--out", str(tmp_path / "n"), "--no-plots")
    assert status == 0 and len(lines) == 2  # one line per run
    assert lines[0].startswith("done class-il/finetune/seed0 ") and lines[1].startswith("done class-il/ewc/seed0 ")
    status, lines, _ = run_lines(capsys, exp, "--out", str(tmp_path / "v"), "--no-plots", "-v")
    assert status == 0 and "[tiny] class-il finetune/seed0: training 5 task(s)" in lines and len(lines) == 4
    status, lines, _ = run_lines(capsys, exp, "--out", str(tmp_path / "n"), "--no-plots")
    assert lines[0] == "2 planned run(s): 2 done" and len(lines) == 3  # + a skip line each
    status, lines, _ = run_lines(capsys, exp, "--quiet", "-v")
    assert status == 2 and lines == ["clft: error: --quiet and -v exclude each other; pass one of them"]


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so tqdm draws its bar."""

    def isatty(self) -> bool:
        return True


def test_lines_never_land_inside_the_progress_bar(write_experiment, tmp_path, monkeypatch):
    """In a terminal (or tmux/screen) a line printed while the bar is drawn would continue the bar's
    line; tqdm.write clears the bar, writes the line and draws the bar again below it."""
    from clft.sweep.executors import run_sweep

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setenv(console.ENV, str(console.VERBOSE))
    cfg, _ = load_experiment(str(write_experiment(**TWO_RUNS)))
    run_sweep(cfg, tmp_path / "out", progress=True)
    written = terminal.getvalue()
    assert "runs:" in written  # the bar was drawn
    messages = [m for m in re.split(r"[\r\n]", written) if "training" in m or m.startswith("done ")]
    assert len(messages) == 4, written
    for line in written.split("\n"):
        if "training" in line or "done class-il" in line:
            assert "runs:" not in line.split("\r")[-1], repr(line)  # the message starts a clean line


def test_the_level_is_restored_after_an_in_process_command(write_experiment, tmp_path, monkeypatch):
    from clft.cli import main

    monkeypatch.delenv(console.ENV, raising=False)
    assert main(["run", str(write_experiment()), "--out", str(tmp_path / "o"), "--no-plots", "--quiet"]) == 0
    assert console.verbosity() == console.NORMAL


def test_below_verbose_the_libraries_are_quiet(monkeypatch):
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    monkeypatch.setenv(console.ENV, str(console.NORMAL))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        console.quiet_libraries()
        qpsolvers = "no QP solver found on your system, you can install solvers from PyPI by ..."
        warnings.warn(qpsolvers, stacklevel=1)  # what importing Avalanche (qpsolvers) warns
    assert not seen
    assert console.ray_init_options() == {"log_to_driver": False, "logging_level": 40}
    import os

    assert os.environ["WANDB_SILENT"] == "true" and os.environ["RAY_COLOR_PREFIX"] == "0"
    monkeypatch.setenv(console.ENV, str(console.VERBOSE))
    assert console.ray_init_options() == {}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("wandb") is None,
                    reason="wandb is not installed (pip install 'clft[wandb]')")
def test_wandb_prints_nothing_per_run(cli, write_experiment, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    exp = write_experiment(**TWO_RUNS)
    proc = cli("run", str(exp), "--out", str(tmp_path / "w"), "--no-plots", "train.log_with=[wandb]",
               env={"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in stderr_lines(proc)] == ["done", "done"], proc.stderr
    assert "wandb:" not in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="the ray extra is not installed (pip install 'clft[ray]')")
def test_ray_prints_one_line_per_run_without_colour_codes(cli, write_experiment, tmp_path):
    proc = cli("run", str(write_experiment(**TWO_RUNS)), "--out", str(tmp_path / "r"), "--no-plots",
               "--executor", "ray", env={"RAY_DEDUP_LOGS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stderr + proc.stdout
    assert [line.split()[0] for line in stderr_lines(proc)] == ["done", "done"], proc.stderr


@pytest.mark.parametrize("level, quieted", [(console.QUIET, [True]), (console.VERBOSE, [])])
def test_a_jobs_or_ray_worker_quiets_its_own_libraries(level, quieted, monkeypatch, tmp_path):
    """A worker process inherits the level through the environment only; ``run_plan`` applies it there, so that
    ``datasets`` prints no per-task "Map" bars from ``--jobs`` workers below -v."""
    from types import SimpleNamespace

    from clft.sweep import worker

    calls = []
    result = tmp_path / "seed0.json"
    result.write_text("{}")
    monkeypatch.setenv(console.ENV, str(level))
    monkeypatch.setattr(console, "quiet_libraries", lambda quiet_hub=True: calls.append(quiet_hub))
    monkeypatch.setattr(worker, "run_one", lambda cfg, planned, out_dir, **kwargs: result)
    cfg = SimpleNamespace(train=SimpleNamespace(threads=None))
    outcome = worker.run_plan(cfg, None, tmp_path, worker.RunOptions(), wait_if_locked=False)
    assert outcome.path == result and calls == quieted
