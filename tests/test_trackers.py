"""train.log_with: what each tracker wrote, read back with the tracker's own reader, against the run's JSON."""

import csv
import importlib.util
import json
import math
import sys

import numpy as np
import pytest
import yaml

from clft.errors import ConfigError
from clft.results.metrics import compute_all, undefined_reason
from clft.results.trackers import flatten, make_tracker

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]

OPTIONAL = [name for name in ("wandb", "mlflow") if importlib.util.find_spec(name) is not None]
RUN = "class-il/finetune/seed0"


@pytest.fixture(scope="module")
def logged(tmp_path_factory, request):
    """One tiny run logging to every installed tracker: (out folder, result JSON)."""
    pytest.importorskip("tensorboard")
    from conftest import TINY_EXPERIMENT, run_cli

    root = tmp_path_factory.mktemp("trackers")
    experiment = {**TINY_EXPERIMENT, "train": {**TINY_EXPERIMENT["train"],
                                                "log_with": ["tensorboard", "csv", *OPTIONAL]}}
    (root / "exp.yaml").write_text(yaml.safe_dump(experiment))
    out = root / "out"
    proc = run_cli("run", str(root / "exp.yaml"), "--out", str(out), "--quiet", "--no-plots",
                   env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / f"{RUN}.json").read_text())


def _expected_steps(result) -> int:
    batch = result["config"]["train"]["batch_size"]
    return sum(math.ceil(t["n_train"] / batch) for t in result["tasks"])


def _csv_rows(out):
    with open(out / "logs" / RUN / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_every_loss_each_accuracy_row_and_the_final_metrics(logged):
    out, result = logged
    rows = _csv_rows(out)
    losses = [float(r["value"]) for r in rows if r["name"] == "loss"]
    assert len(losses) == _expected_steps(result) and all(math.isfinite(v) for v in losses)
    names = [t["name"] for t in result["tasks"]]
    matrix = [[float(r["value"]) for r in rows if r["name"] == f"acc/{name}"] for name in names]
    assert np.allclose(np.asarray(matrix).T, result["acc"])  # column j logged after each task = R[:, j]
    final = {r["name"][6:]: float(r["value"]) for r in rows if r["name"].startswith("final/")}
    expected = compute_all(result["acc"], result["baseline_acc"])
    defined = {k: v for k, v in expected.items() if math.isfinite(v) and undefined_reason(k, "class-il", 5) is None}
    assert final == pytest.approx(defined)

    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == len(losses)
    hparams = json.loads((out / "logs" / RUN / "hparams.json").read_text())
    assert hparams["train.lr"] == result["config"]["train"]["lr"]
    assert json.loads(hparams["strategies"]) == result["config"]["strategies"]


def test_class_il_fwt_is_not_logged_where_tables_print_n_d(logged):
    out, result = logged
    assert result["scenario"] == "class-il" and math.isfinite(compute_all(result["acc"], result["baseline_acc"])["fwt"])
    assert "final/fwt" not in {r["name"] for r in _csv_rows(out)}  # the table prints n/d¹ for it
    assert "final/bwt" in {r["name"] for r in _csv_rows(out)}


def test_tensorboard_events_match_the_csv(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, result = logged
    events = EventAccumulator(str(out / "logs" / RUN)).Reload()
    loss = [(e.step, e.value) for e in events.Scalars("loss")]
    csv_loss = [(int(r["step"]), float(r["value"])) for r in _csv_rows(out) if r["name"] == "loss"]
    assert [s for s, _ in loss] == [s for s, _ in csv_loss]
    assert np.allclose([v for _, v in loss], [v for _, v in csv_loss], rtol=1e-6)  # float32 in the event file
    last = result["tasks"][-1]["name"]
    assert [e.value for e in events.Scalars(f"acc/{last}")] == pytest.approx(np.asarray(result["acc"])[:, -1])
    assert events.Scalars("final/acc")[0].value == pytest.approx(compute_all(result["acc"], None)["acc"])
    (hparams,) = (out / "logs" / RUN).glob("*/hparams.yml")
    assert yaml.safe_load(hparams.read_text())["train.epochs"] == result["config"]["train"]["epochs"]


def test_trackers_do_not_change_the_run_identity(logged, cli, write_experiment, tmp_path):
    out, result = logged
    assert "log_with" not in result["config"]["train"]
    plain = tmp_path / "plain"
    assert cli("run", str(write_experiment()), "--out", str(plain), "--quiet", "--no-plots").returncode == 0
    again = json.loads((plain / f"{RUN}.json").read_text())
    assert again["config_hash"] == result["config_hash"] and again["acc"] == result["acc"]


@pytest.mark.skipif("wandb" not in OPTIONAL, reason="wandb is not installed (pip install 'clft[wandb]')")
def test_wandb_offline_run_holds_the_losses_and_final_metrics(logged):
    out, result = logged
    (record,) = (out / "logs" / RUN / "wandb").glob("offline-run-*/run-*.wandb")
    data = record.read_bytes()  # the offline transaction log: protobuf records, keys and JSON values verbatim
    acc = compute_all(result["acc"], None)["acc"]
    assert RUN.encode() in data and b"final/acc" in data and json.dumps(acc).encode() in data
    assert b"train.lr" in data


@pytest.mark.skipif("mlflow" not in OPTIONAL, reason="mlflow is not installed (pip install 'clft[mlflow]')")
def test_mlflow_run_has_params_and_metric_history(logged, monkeypatch):
    import mlflow

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri results/quickstart/logs/mlruns" in readme
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as the README says: MLflow 3 reads a file store so

    out, result = logged
    client = mlflow.MlflowClient(tracking_uri=(out / "logs" / "mlruns").resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "tiny"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == RUN
    assert float(run.data.params["train.lr"]) == result["config"]["train"]["lr"]
    assert len(client.get_metric_history(run.info.run_id, "loss")) == _expected_steps(result)
    assert run.data.metrics["final/acc"] == pytest.approx(compute_all(result["acc"], None)["acc"])


def test_missing_tracker_package_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ConfigError, match=r"wandb needs the wandb package: pip install 'clft\[wandb\]'"):
        make_tracker("wandb", "exp", "run", tmp_path)


def test_flatten_gives_dotted_scalars():
    assert flatten({"train": {"lr": 0.1, "log": None}, "seeds": [0, 1], "name": "x"}) == {
        "train.lr": 0.1, "train.log": "null", "seeds": "[0, 1]", "name": "x"}


def test_trackers_asked_for_after_the_runs_finished_log_them_from_their_results(cli, write_experiment, tmp_path):
    exp, out = write_experiment(), tmp_path / "out"
    assert cli("run", str(exp), "--out", str(out), "--quiet", "--no-plots").returncode == 0
    assert not (out / "logs").exists()
    later = cli("run", str(exp), "--out", str(out), "--no-plots", "train.log_with=[csv]")
    assert later.returncode == 0, later.stderr
    assert f"logged {RUN} to csv from its result file" in later.stderr
    assert "per-step losses are not stored" in later.stderr
    result = json.loads((out / f"{RUN}.json").read_text())
    rows = _csv_rows(out)
    assert not [r for r in rows if r["name"] == "loss"]
    matrix = [[float(r["value"]) for r in rows if r["name"] == f"acc/{t['name']}"] for t in result["tasks"]]
    assert np.allclose(np.asarray(matrix).T, result["acc"])
    assert [int(r["step"]) for r in rows if r["name"] == "task"] == [1, 2, 3, 4, 5]  # x axis: the task number
    final = {r["name"][6:]: float(r["value"]) for r in rows if r["name"].startswith("final/")}
    assert final["acc"] == pytest.approx(compute_all(result["acc"], None)["acc"]) and "fwt" not in final
    before = (out / "logs" / RUN / "metrics.csv").read_bytes()
    again = cli("run", str(exp), "--out", str(out), "--no-plots", "train.log_with=[csv]")
    assert again.returncode == 0 and "logged" not in again.stderr  # logged once
    assert (out / "logs" / RUN / "metrics.csv").read_bytes() == before
