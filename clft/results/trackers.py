"""Experiment trackers: ``train.log_with: [tensorboard, wandb, mlflow, csv]``.

One tracker run per clft run (named ``<scenario>/<strategies>/seed<k>``), fed by
:class:`RunLogger` through the runner's callbacks:

* hyper-parameters: the run's resolved config, flattened to dotted keys;
* ``loss`` at every training micro-batch (x axis: micro-batches since the run began);
* after each task i: ``acc/<task name>`` = R[i, j] for every task j evaluated (with
  ``train.eval_scope: seen`` j ≤ i until the last task), and ``acc/seen``
  = mean of R[i, j≤i] (the accuracy curve), with ``task`` = i + 1;
* at the end: ``final/<metric>`` for every metric of ``clft.results.metrics.compute_all`` that is
  defined for the run (``final_metrics``: not class-IL FWT, which tables print as n/d, nor
  BWT/FWT/forgetting of a one-task stream; not a metric that is NaN, such as FWT of a
  ``train.eval_scope: seen`` run).

A run that is already finished (skipped by the sweep) is logged from its result file
(``log_finished_run``) to each tracker of ``log_with`` that has not logged it yet: the
resolved config, one accuracy row per task (x axis: the task number, 1..T) and the final
metrics; per-step losses are not stored in a result, so they are not logged, and the
sweep says so in one line per run. ``<logs>/<run>/logged.json`` records which trackers
have logged the run (from training or from the result), so nothing is logged twice.

TensorBoard, Weights & Biases and MLflow go through ``accelerate.tracking``'s
trackers; accelerate has no CSV tracker, so :class:`CSVTracker` writes
``metrics.csv`` (``step,name,value``, long format since each call logs other
names) and ``hparams.json`` with the same interface. Files land under
``<out>/logs/<scenario>/<strategies>/seed<k>/``; wandb runs offline (no account)
unless ``WANDB_MODE`` says otherwise; MLflow writes to a file store
``<out>/logs/mlruns`` unless ``MLFLOW_TRACKING_URI`` is set. MLflow 3 reads a file store
only with ``MLFLOW_ALLOW_FILE_STORE=true`` in the reader's environment
(``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <out>/logs/mlruns``; its
database stores need SQLAlchemy, which ``mlflow-skinny`` lacks). A resumed run
starts its step counter at 0 again (the trackers see the resumed tasks twice).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from clft import console
from clft.errors import ClftError, ConfigError
from clft.results.metrics import compute_all, undefined_reason
from clft.storage.atomic import atomic_write_text

TRACKERS = ("tensorboard", "wandb", "mlflow", "csv")
_EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


class CSVTracker:
    """``metrics.csv`` (step, name, value) and ``hparams.json`` in ``logging_dir``; accelerate's tracker interface."""

    name = "csv"

    def __init__(self, logging_dir: str | Path) -> None:
        self.logging_dir = Path(logging_dir)

    def start(self) -> None:
        self.logging_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.logging_dir / "metrics.csv", "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        if self._file.tell() == 0:
            self._writer.writerow(["step", "name", "value"])

    def store_init_configuration(self, values: dict) -> None:
        atomic_write_text(self.logging_dir / "hparams.json", json.dumps(values, indent=1, sort_keys=True) + "\n")

    def log(self, values: dict, step: int | None = None) -> None:
        for name, value in values.items():
            self._writer.writerow(["" if step is None else step, name, value])
        self._file.flush()

    def finish(self) -> None:
        self._file.close()


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys; lists and None become text (what every tracker accepts as a parameter)."""
    if isinstance(config, dict):
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    key = prefix[:-1]
    if isinstance(config, (bool, int, float, str)):
        return {key: config}
    return {key: json.dumps(config)}


def make_tracker(kind: str, experiment: str, run_name: str, logs: Path):
    """A started tracker of ``kind`` for one run; ConfigError when its package is missing."""
    try:
        from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

        if kind == "tensorboard":
            import tensorboard  # noqa: F401  (accelerate falls back to tensorboardX otherwise)

            tracker = TensorBoardTracker(run_name, logs)
        elif kind == "wandb":
            tracker = WandBTracker(experiment, name=run_name, dir=str(_mkdir(logs / run_name)),
                                   mode=os.environ.get("WANDB_MODE", "offline"), reinit="finish_previous")
        elif kind == "mlflow":
            _mlflow_store(logs)
            tracker = MLflowTracker(experiment, run_name=run_name)
        elif kind == "csv":
            tracker = CSVTracker(logs / run_name)
        else:
            raise ConfigError(f"unknown tracker {kind!r}; valid: {', '.join(TRACKERS)}")
        tracker.start()
    except ImportError as exc:
        raise ConfigError(f"train.log_with: {kind} needs the {exc.name} package: "
                          f"pip install 'clft[{_EXTRAS.get(kind, kind)}]'") from None
    except ClftError:
        raise
    except Exception as exc:  # a tracker's own failure (service, store): one line, not its traceback
        raise ClftError(f"train.log_with: {kind} failed to start: {' '.join(str(exc).split())[:300]}") from None
    return tracker


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _mlflow_store(logs: Path) -> None:
    import mlflow

    if "MLFLOW_TRACKING_URI" not in os.environ:  # a local store beside the results, like TensorBoard's files
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in
        mlflow.set_tracking_uri((logs / "mlruns").resolve().as_uri())


MARKER = "logged.json"
"""``<logs>/<run>/logged.json``: ``{"trackers": [...]}`` that have logged the run."""


def final_metrics(acc: list, baseline: list | None, scenario: str) -> dict[str, float]:
    """``compute_all`` without the metrics undefined by construction for ``scenario`` and T tasks
    (``clft.results.metrics.undefined_reason``: what tables print as n/d) and without NaN."""
    return {key: value for key, value in compute_all(acc, baseline).items()
            if undefined_reason(key, scenario, len(acc)) is None and value is not None and np.isfinite(value)}


def logged_trackers(logs: Path, run_name: str) -> list[str]:
    """The trackers that have logged ``run_name`` under ``logs`` (its ``logged.json``)."""
    try:
        return list(json.loads((logs / run_name / MARKER).read_text(encoding="utf-8"))["trackers"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _mark_logged(logs: Path, run_name: str, kinds: list[str]) -> None:
    done = sorted(set(logged_trackers(logs, run_name)) | set(kinds))
    atomic_write_text(logs / run_name / MARKER, json.dumps({"trackers": done}) + "\n")


def log_finished_run(kinds: list[str], result_path: Path, logs: Path, run_name: str) -> list[str]:
    """Log a finished run from its result file to the trackers of ``kinds`` that have not logged it;
    returns those trackers (module docstring)."""
    missing = [kind for kind in kinds if kind not in logged_trackers(logs, run_name)]
    if not missing:
        return []
    result = json.loads(Path(result_path).read_text(encoding="utf-8"))
    logger = RunLogger.open(missing, result.get("experiment", "clft"), run_name, logs, result.get("config") or {})
    names = [task.get("name", str(task.get("id"))) for task in result["tasks"]]
    try:
        for i, row in enumerate(result["acc"]):
            logger.step = i + 1
            logger.log_row(row, names, i)
    except BaseException:
        logger.finish()
        raise
    logger.finish(final_metrics(result["acc"], result.get("baseline_acc"), result["scenario"]))
    console.say(f"logged {run_name} to {', '.join(missing)} from its result file (finished before; its per-step "
                "losses are not stored, so only the accuracy rows and final metrics)")
    return missing


class RunLogger:
    """Feeds one clft run to its trackers (see the module docstring for what is logged)."""

    def __init__(self, trackers: list, hyper_parameters: dict, done: tuple[Path, str, list[str]] | None = None) -> None:
        self.trackers = trackers
        self.step = 0
        self.done = done  # (logs, run name, kinds): recorded in logged.json by finish(metrics)
        flat = flatten(hyper_parameters)
        for tracker in trackers:
            tracker.store_init_configuration(flat)

    @classmethod
    def open(cls, kinds: list[str], experiment: str, run_name: str, logs: Path, resolved: dict) -> RunLogger:
        trackers = []
        try:
            for kind in kinds:
                trackers.append(make_tracker(kind, experiment, run_name, logs))
            return cls(trackers, resolved, (logs, run_name, list(kinds)))
        except BaseException:
            for tracker in trackers:
                tracker.finish()
            raise

    def _log(self, values: dict) -> None:
        for tracker in self.trackers:
            tracker.log(values, step=self.step)

    def on_step(self, run, task, step: int, loss: float) -> None:
        self.step += 1
        self._log({"loss": loss})

    def on_task_end(self, run, task) -> None:
        self.log_row(run.state.acc[-1], [t.name for t in run.tasks], task.id)

    def log_row(self, row: list[float], names: list[str], task_index: int) -> None:
        """``acc/<task name>`` for every task evaluated (None: skipped, ``train.eval_scope: seen``),
        ``acc/seen`` over tasks 0..task_index, ``task``."""
        values = {f"acc/{name}": float(value) for name, value in zip(names, row) if value is not None}
        values.update({"acc/seen": float(np.mean(row[: task_index + 1])), "task": task_index + 1})
        self._log(values)

    def finish(self, metrics: dict[str, float] | None = None) -> None:
        """Log ``final/<metric>`` (finite values: pass ``final_metrics``) and close every tracker; with
        ``metrics`` (the run finished) record the trackers in ``logged.json``."""
        if metrics:
            self._log({f"final/{k}": float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        for tracker in self.trackers:
            tracker.finish()
        if metrics is not None and self.done is not None:
            _mark_logged(*self.done)
