"""The built wheel carries the presets: installed into a fresh virtual environment, `clft presets`
and `clft run quickstart` work from an empty folder, offline, with the wheel's clft (not the checkout's)."""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCES = ["clft", "experiments", "benchmarks", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md"]
TINY = ["seeds=[0]", "scenarios=[class-il]", "compare=[finetune]", "train.epochs=1", "train.max_steps_per_task=2"]


def _copy_sources(dest: Path) -> Path:
    """A copy of the source tree, so that building leaves no build/ folder in the checkout."""
    for name in SOURCES:
        source = CHECKOUT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def _run(*cmd, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _copy_sources(tmp_path_factory.mktemp("src"))
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", dist, src)
    (found,) = dist.glob("clft-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; torch & co. come from this interpreter's site-packages
    through a path entry (its .pth hooks, such as the editable clft finder, are not run)."""
    root = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", root)
    (own_site,) = root.glob("lib/python*/site-packages")
    (own_site / "shared_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(sys.executable, "-m", "pip", "--python", root / "bin" / "python", "install", "--no-deps", "--no-index",
         "--ignore-installed", "-q", wheel)
    return root


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_wheel_contains_every_preset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("experiments", "benchmarks"):
        expected = {f"clft/config/presets/{kind}/{p.name}" for p in (CHECKOUT / kind).glob("*.yaml")}
        assert expected and expected <= names, sorted(expected - names)
    assert not any(n.startswith("clft/py.typed") for n in names)


@pytest.mark.slow
def test_installed_wheel_lists_presets_and_runs_the_quickstart_from_an_empty_folder(venv, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    env = _clean_env()
    code = ("import clft.config.presets as p, clft.config.experiment as e; "
            "print(p.__file__, p.preset_dir('experiments'), "
            "e.resolve_spec({'file': 'benchmarks/clinc150-by-domain.yaml'}, p.preset_dir('experiments'))['name'])")
    *where, benchmark = _run(venv / "bin" / "python", "-c", code, cwd=work, env=env).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where  # the wheel's clft and its presets
    assert benchmark == "clinc150"  # an experiment's `file: benchmarks/...` is found among the wheel's presets

    listing = _run(venv / "bin" / "clft", "presets", cwd=work, env=env).stdout
    assert "quickstart" in listing and "Split digits" in listing and "clinc150-by-domain" in listing

    proc = _run(venv / "bin" / "clft", "run", "quickstart", "--out", "out", *TINY, "--quiet", "--no-plots",
                cwd=work, env=env)
    assert "| finetune" in proc.stdout
    assert (work / "out" / "class-il" / "finetune" / "seed0.json").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["out"]  # nothing else written in the folder
