"""One line per plugin: clft's own conformance checks (``clft.testing``), run on the installed entry points."""

from clft.testing import check_benchmark, check_strategy

pytest_plugins = ["clft.testing.pytest_plugin"]


def test_er_ace(clft_checks):
    clft_checks.strategy("er-ace")


def test_rotated_digits():
    check_benchmark("rotated-digits")


def test_small_cnn(clft_checks):
    clft_checks.backbone("small-cnn", benchmark={"name": "rotated-digits", "n_tasks": 2})


def test_er_ace_with_the_other_plugins():
    check_strategy("er-ace", backbone={"name": "small-cnn"}, benchmark={"name": "rotated-digits", "n_tasks": 2})


def test_every_result_records_this_distribution(tmp_path):
    """clft ties each result to the plugin code that made it: name, version and the sha256 of the files
    this distribution installed (``path NUL content NUL``, sorted, without byte code and install records)."""
    import hashlib
    import json
    from importlib import metadata
    from pathlib import Path

    from clft.experiment import load_experiment
    from clft.sweep import run_experiment

    dist = metadata.distribution("clft-plugin-example")
    digest = hashlib.sha256()
    for file in sorted(dist.files, key=lambda f: f.as_posix()):
        skip = file.suffix == ".pyc" or file.name in {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
        if not skip and Path(file.locate()).is_file():
            digest.update(file.as_posix().encode() + b"\0" + Path(file.locate()).read_bytes() + b"\0")
    cfg, _ = load_experiment(str(Path(__file__).resolve().parents[1] / "experiment.yaml"))
    for path in run_experiment(cfg, tmp_path, progress=False, log=lambda message: None):
        plugins = json.loads(path.read_text())["code"]["plugins"]
        assert plugins == [{"name": "clft-plugin-example", "version": dist.version, "sha256": digest.hexdigest()}]
