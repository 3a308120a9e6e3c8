"""Files clft writes (results, tables, plots, the report, checkpoints) get the mode open() would give them:
0o666 (folders 0o777) less the umask, not mkstemp's 0o600."""

import os
import stat
from contextlib import contextmanager

import pytest

from clft.cli import main
from clft.config.experiment import load_experiment
from clft.sweep.run import run_experiment


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_every_file_follows_the_umask(mask, write_experiment, tmp_path):
    cfg, _ = load_experiment(str(write_experiment()))
    out = tmp_path / "out"
    with umask(mask):
        [result] = run_experiment(cfg, out, progress=False, log=lambda m: None)
        assert main(["table", str(out), "--output", str(out / "table.md")]) == 0
        assert main(["plot", str(out)]) == 0
        assert main(["report", str(out)]) == 0
    written = [result, out / "table.md", out / "report.html", *sorted((out / "plots").glob("*.png"))]
    assert len(written) > 4
    assert {str(p.relative_to(out)): mode(p) for p in written} == {str(p.relative_to(out)): 0o666 & ~mask
                                                                     for p in written}


def test_a_checkpoint_folder_follows_the_umask(tmp_path):
    """A task checkpoint is written in a temporary folder (mkdtemp: 0o700) renamed into place."""
    from clft.storage.checkpoint import save_checkpoint

    with umask(0o027):
        folder = save_checkpoint(tmp_path / "ckpt", 0, {"run": "r"}, {}, {})
    assert mode(folder) == 0o750 and mode(folder / "meta.json") == 0o640
