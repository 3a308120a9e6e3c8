"""benchmarks/hsu_logs.py: our Hsu cells beside the paper's and the public code's logs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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
    for seed, last in enumerate(([0.5, 0.7], [0.6, 0.8])):
        path = tmp_path / "domain-il" / "online-ewc" / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        run = {"scenario": "domain-il", "label": "online-ewc", "strategy": "ewc", "acc": [[0.9, 0.0], last]}
        path.write_text(json.dumps(run))
    row = hsu_logs.table(tmp_path, REPO / "experiments").splitlines()[2]
    # mean of 60 and 70 = 65.00, std 7.07; paper 57.33 (Δ +7.67); the code's log 63.31 (Δ +1.69)
    assert row.startswith("| domain-il | online-ewc | 2 | 65.00 ± 7.07 | 57.33 ± 1.44 | +7.67 | 63.31 ± 1.35 | +1.69 |")
    assert row.endswith("within 3 of the code's log |")
