"""`clft report`: one self-contained HTML page (table, published numbers, plots, configs and env)."""

import base64
import html
import json
import re
from html.parser import HTMLParser

import pytest
from test_tables import PNG_SIGNATURE, write_run

from clft.errors import DataError
from clft.results.report import write_report

PUBLISHED = {"note": "Made-up reference for the test", "acc": {"joint": 0.95}}


class Page(HTMLParser):
    """Rows of each table (by id) as lists of cell texts, and every <img> src."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", ""), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def write_results(directory):
    """finetune (2 seeds) and joint (1 seed), each with a config and an env, as the runner writes them."""
    runs = [("finetune", 0, [[0.9, 0.1], [0.2, 0.8]]), ("finetune", 1, [[0.9, 0.1], [0.4, 0.8]]),
            ("joint", 0, [[0.9, 0.1], [0.9, 0.9]])]
    for strategy, seed, acc in runs:
        path = write_run(directory, strategy, seed, acc)
        run = json.loads(path.read_text())
        run["config"] = {"name": "exp", "description": "Two tasks.", "published": PUBLISHED,
                         "seeds": [seed], "train": {"lr": 0.5}, "strategies": [{"name": strategy}]}
        run["config_hash"] = f"hash-{strategy}-{seed}"
        run["env"] = {"torch": "9.9", "git_sha": f"sha-{strategy}-{seed}", "code": {"clft": "digest"}}
        path.write_text(json.dumps(run))
    return directory


@pytest.fixture
def report(tmp_path):
    path = write_report(write_results(tmp_path / "results"))
    assert path == tmp_path / "results" / "report.html"
    return path.read_text(encoding="utf-8")


def test_metrics_table_is_the_aggregated_table(report):
    header, *rows = Page(report).tables["metrics"]
    assert header[:4] == ["scenario", "strategy", "n", "ACC"]
    assert [r[:3] for r in rows] == [["class-il", "finetune", "2"], ["class-il", "joint", "1"]]
    # finetune ACC: seed 0 (0.2+0.8)/2 = 0.5, seed 1 (0.4+0.8)/2 = 0.6 -> 0.550 ± 0.071 (sample std)
    assert rows[0][3] == "0.550 ± 0.071" and rows[1][3] == "0.900"  # one seed: no spread to show


def test_plots_are_embedded_pngs(report):
    images = Page(report).images
    assert len(images) == 3  # a heatmap per (scenario, strategy) and one curve plot for the scenario
    for src in images:
        prefix, _, data = src.partition(",")
        assert prefix == "data:image/png;base64" and base64.b64decode(data).startswith(PNG_SIGNATURE)


def test_runs_show_config_env_and_published_block(report):
    header, *rows = Page(report).tables["runs"]
    assert header == ["run", "scenario", "seed", "config hash", "finished", "env (where runs differ)", "config"]
    assert [r[0] for r in rows] == ["finetune/seed0", "finetune/seed1", "joint/seed0"]
    assert json.loads(rows[1][5]) == {"git_sha": "sha-finetune-1"}  # the rest is shared: shown once
    assert "seeds:\n- 1" in rows[1][6] and rows[1][3] == "hash-finetune-1"  # each run's own config
    assert "Made-up reference for the test" in report and "Two tasks." in report


def environment_block(report: str) -> dict:
    (block,) = re.findall(r"<pre id=environment>(.*?)</pre>", report, re.S)
    return json.loads(html.unescape(block))


def test_the_shared_environment_is_shown_once(report):
    shared = environment_block(report)
    assert shared == {"torch": "9.9", "code": {"clft": "digest"}, "code identity": "no code identity"}
    assert report.count("9.9") == 1  # not once per run
    assert "where they differ (git_sha)" in report


def test_runs_that_share_their_whole_environment_have_no_env_column(tmp_path):
    directory = write_results(tmp_path / "results")
    for path in directory.rglob("seed*.json"):
        run = json.loads(path.read_text())
        run["env"]["git_sha"] = "same"
        path.write_text(json.dumps(run))
    text = write_report(directory).read_text(encoding="utf-8")
    header = Page(text).tables["runs"][0]
    assert header == ["run", "scenario", "seed", "config hash", "finished", "config"]
    assert environment_block(text)["git_sha"] == "same" and html.unescape(text).count('"same"') == 1
    assert "shared by all 3 runs" in text


def test_the_table_says_what_plus_minus_means(report):
    (note,) = [n for n in re.findall(r"<p class=note>(.*?)</p>", report) if "±" in n]
    assert "sample standard deviation" in note and "seeds" in note and "one-seed row shows the mean alone" in note


def test_page_is_self_contained(report):
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]*)""", report, re.IGNORECASE)
    assert len(links) == 3 and all(link.startswith("data:") for link in links)
    assert "<script src" not in report and "@import" not in report


def test_report_of_an_empty_folder_is_one_line(cli, tmp_path):
    with pytest.raises(DataError, match="no run JSON files"):
        write_report(tmp_path)
    proc = cli("report", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "no run JSON files" in proc.stderr
