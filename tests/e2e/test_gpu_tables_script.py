"""benchmarks/gpu_tables.py on the CPU: its MFU formula by hand, its clft commands valid, its time budget shared."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from clft.cli import main as clft_main
from clft.data import data_dir

REPO = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_tables", REPO / "benchmarks" / "gpu_tables.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_mfu_is_four_n_flops_per_token_over_the_gpus_bf16_peak():
    script = load_script()
    # 20,000 tokens/s x 4 x 135e6 FLOPs = 1.08e13 FLOP/s; H100 dense bf16 989e12
    assert script.mfu(20_000, 135_000_000, "NVIDIA H100 80GB HBM3") == pytest.approx(1.08e13 / 989e12)
    assert script.mfu(20_000, 135_000_000, "NVIDIA A100-SXM4-40GB") == pytest.approx(1.08e13 / 312e12)
    assert script.mfu(20_000, 135_000_000, "Some Unknown GPU") is None


@pytest.mark.skipif(data_dir() is None or not (data_dir() / "lfpt5_fewshot").is_dir(),
                    reason="CLFT_DATA_DIR with lfpt5_fewshot/ is not set")
def test_lfpt5_commands_are_valid_clft_runs(tmp_path, capsys, monkeypatch):
    """Every ``clft run`` of the lfpt5 stage passes clft's config validation (``--dry-run``) and plans 24 runs."""
    script = load_script()
    args = script.parse(["--model", "smollm2-135m-instruct", "--out", str(tmp_path)])
    runs = [c[c.index("run"):] for c in script.stage_commands(args)["lfpt5"] if "run" in c]
    assert [c[1] for c in runs] == list(script.LFPT5_PRESETS)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    planned = 0
    for command in runs:
        assert clft_main([*command, "--dry-run"]) == 0
        planned += capsys.readouterr().out.count("to do")
    assert planned == 8 * 3  # 5 + 3 rows, 3 seeds
    assert {"backbone.dtype=auto", "train.mixed_precision=bf16"} <= set(runs[0])


def test_a_stage_gets_its_share_plus_what_the_earlier_ones_left(tmp_path, monkeypatch):
    script = load_script()
    limits = []

    def fake_run_stage(commands, seconds, log):
        limits.append(seconds)
        return {"status": 0, "wall_seconds": 10.0}

    monkeypatch.setattr(script, "run_stage", fake_run_stage)
    summary = script.main(["--model", "m", "--out", str(tmp_path), "--budget", "100"])
    # shares 10 / 55 / 35; each stage takes 10 s: 10, 55 + 0, 35 + 45
    assert limits == pytest.approx([10.0, 55.0, 80.0])
    assert json.loads((tmp_path / "summary.json").read_text())["lfpt5"]["status"] == 0
    assert summary["throughput"]["wall_seconds"] == 10.0


def test_run_stage_stops_at_the_first_failing_command(tmp_path):
    script = load_script()
    ok, fail = [sys.executable, "-c", "pass"], [sys.executable, "-c", "raise SystemExit(3)"]
    marker = tmp_path / "ran"
    after = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    with open(tmp_path / "log.txt", "w") as log:
        result = script.run_stage([ok, fail, after], 60, log)
    assert result["status"] == 3 and not marker.exists()
