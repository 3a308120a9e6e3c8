"""cost.peak_memory_mb is the run's own peak, not the process's high-water mark (issue 10)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from clft.engine.devices import _status_kb
    big = np.ones(120_000_000)  # 915 MiB touched before the run, then freed
    del big
    print(_status_kb("VmHWM") / 1024)
    from clft.cli import main
    sys.exit(main(["run", sys.argv[1], "--out", sys.argv[2], "--no-plots", "--quiet"]))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs")
def test_peak_memory_is_reset_at_the_start_of_a_run(tmp_path):
    experiment = tmp_path / "mlp.yaml"
    experiment.write_text("name: mem\nseeds: [0]\nbenchmark: {name: split-digits, n_tasks: 2}\n"
                          "backbone: {name: mlp, hidden: [8]}\ntrain: {epochs: 1, max_steps_per_task: 2, threads: 1}\n")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(experiment), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    process_peak = float(proc.stdout.splitlines()[0])
    cost = json.loads((tmp_path / "out" / "class-il" / "finetune" / "seed0.json").read_text())["cost"]
    assert cost["memory_method"] == "rss-peak-since-run-start"
    assert process_peak > 900
    assert cost["memory_at_start_mb"] <= cost["peak_memory_mb"] < process_peak - 300
