"""benchmarks/hsu_logs.py: our Hsu cells beside the paper's and the public code's logs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from test_tables import write_run

from clft.errors import DataError

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("hsu_logs", REPO / "benchmarks" / "hsu_logs.py")
hsu_logs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hsu_logs)


def test_verdict_prefers_the_paper_then_the_codes_log():
    assert hsu_logs.verdict(57.0, (55.16, 1.38), (59.58, 0.59)) == "within 3 of paper"
    assert hsu_logs.verdict(64.3, (57.33, 1.44), (63.31, 1.35)) == "within 3 of the code's log"
    assert hsu_logs.verdict(19.7, (24.17, 0.33), None) == "**outside**"
    assert hsu_logs.verdict(50.0, None, None) == "no reference"


def test_table_averages_the_last_row_over_seeds(tmp_path):
    for seed, last in enumerate(([0.5, 0.7], [0.6, 0.8])):  # schema-v1 runs, read through clft.results
        path = write_run(tmp_path, "online-ewc", seed, [[0.9, 0.0], last], scenario="domain-il")
        path.write_text(json.dumps({**json.loads(path.read_text()), "strategy": "ewc", "label": "online-ewc"}))
    row = hsu_logs.table(tmp_path, REPO / "experiments").splitlines()[2]
    # mean of 60 and 70 = 65.00, std 7.07; paper 57.33 (Δ +7.67); the code's log 63.31 (Δ +1.69)
    assert row.startswith("| domain-il | online-ewc | 2 | 65.00 ± 7.07 | 57.33 ± 1.44 | +7.67 | 63.31 ± 1.35 | +1.69 |")
    assert row.endswith("within 3 of the code's log |")


def test_a_malformed_run_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "domain-il" / "ewc" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"scenario": "domain-il", "acc": [[0.9]]}))  # no schema_version, strategy, ...
    with pytest.raises(DataError, match="seed0.json") as info:
        hsu_logs.table(tmp_path, REPO / "experiments")
    assert "\n" not in str(info.value)
