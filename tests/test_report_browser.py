"""`clft report` in a real headless browser (Debian's chromium): the page renders the table and the
heatmaps, sorts by a column, and logs nothing to the console."""

import shutil
import subprocess

import numpy as np
import pytest
from test_report import Page, write_results

from clft.results.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install -y chromium (Debian)")
HEADER_GREY = np.array([240, 240, 240])  # the sortable headers' background (#f0f0f0)


def chromium(url: str, tmp_path, *flags: str) -> subprocess.CompletedProcess:
    """Headless chromium on ``url``; console messages go to stderr (``--enable-logging=stderr``)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *flags, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def console_messages(proc: subprocess.CompletedProcess) -> list[str]:
    """What the page wrote to the console (errors, uncaught exceptions, console.log alike)."""
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture
def page_url(tmp_path):
    return write_report(write_results(tmp_path / "results")).resolve().as_uri()


def test_console_detector_sees_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); notDefined();</script></body></html>")
    messages = console_messages(chromium(bad.as_uri(), tmp_path, "--dump-dom"))
    assert any("boom" in m for m in messages) and any("Uncaught ReferenceError" in m for m in messages)


def test_report_dom_sorts_on_request_without_console_messages(page_url, tmp_path):
    ascending = chromium(page_url + "#sort=ACC", tmp_path, "--dump-dom")
    descending = chromium(page_url + "#sort=ACC:desc", tmp_path, "--dump-dom")
    for proc in (ascending, descending):
        assert console_messages(proc) == []
    rows_up = Page(ascending.stdout).tables["metrics"][1:]
    rows_down = Page(descending.stdout).tables["metrics"][1:]
    assert [r[1] for r in rows_up] == ["finetune", "joint"] and [r[1] for r in rows_down] == ["joint", "finetune"]
    assert 'data-dir="desc"' in descending.stdout  # the script ran in the browser (the file has no data-dir)


def test_screenshot_shows_the_table_and_a_heatmap(page_url, tmp_path):
    from matplotlib import colormaps
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    proc = chromium(page_url, tmp_path, f"--screenshot={shot}", "--window-size=1400,1100")
    assert console_messages(proc) == []
    pixels = (imread(shot)[..., :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (1100, 1400)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # not blank: text, table, image
    assert (np.abs(pixels - HEADER_GREY).max(axis=-1) == 0).sum() > 2000  # the table header row
    cell = (np.asarray(colormaps["viridis"](0.9)[:3]) * 255).round()  # the heatmaps' R[1,1] = 0.9 cells
    assert (np.abs(pixels - cell).max(axis=-1) <= 3).sum() > 5000
