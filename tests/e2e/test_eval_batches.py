"""Evaluation batches cut where padding would pass a bound (issue 23; here 0: one length per batch) predict
what the uncut batches and one example at a time predict: the same accuracy matrix, the same prediction
per example."""

from __future__ import annotations

import json

import numpy as np

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.data.sampling import EVAL_PADDING, eval_batches
from clft.engine import runner
from clft.strategies._text import TINY_TEXT_BACKBONE
from clft.sweep.run import run_experiment

TOPICS = {"sports": "team match goal player coach", "money": "bank loan price market stock",
          "food": "bread soup cheese apple dinner", "weather": "rain snow wind storm cloud"}


def write_stream(folder) -> dict:
    """A text-classification block over JSONL files of 2 to 24 topic words per example (varied lengths)."""
    rng = np.random.default_rng(0)
    for split, per_label in (("train", 24), ("test", 24)):
        rows = [{"text": " ".join(rng.choice(words.split(), size=int(rng.integers(2, 25)))), "label": label}
                for label, words in TOPICS.items() for _ in range(per_label)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"name": "text-classification", "n_tasks": 2, "scenario": "class-il",
            "files": {"train": str(folder / "train.jsonl"), "test": str(folder / "test.jsonl")}}


def evaluated(tmp_path, monkeypatch, eval_batch_size: int, padding: float) -> tuple[list, dict, list]:
    """(accuracy matrix, {(evaluation pass, task, example's token ids): predicted labels}, batch sizes) of
    a two-task tiny-BERT run."""
    sizes, predictions, passes = [], {}, []

    def batches(n, batch_size, lengths=None):
        cut = eval_batches(n, batch_size, lengths, padding)
        sizes.extend(len(b) for b in cut)
        return cut

    def recording(run):  # called once per evaluation pass (the baseline, then after each task)
        predict, evaluation = predictor(run), len(passes)
        passes.append(evaluation)

        def record(backbone, batch, task, scenario):
            out = predict(backbone, batch, task, scenario)
            for ids, mask, label in zip(batch["input_ids"], batch["attention_mask"], out.tolist()):
                key = (evaluation, task.id, tuple(ids[mask.bool()].tolist()))
                predictions.setdefault(key, set()).add(label)
            return out
        return record

    predictor = runner.predictor
    raw = {"name": "eval-batches", "seeds": [0], "benchmark": write_stream(tmp_path),
           "backbone": dict(TINY_TEXT_BACKBONE),
           "strategies": ["finetune"], "train": {"epochs": 1, "lr": 0.003, "eval_batch_size": eval_batch_size}}
    out = tmp_path / f"{eval_batch_size}-{padding}"
    with monkeypatch.context() as patch:
        patch.setattr(runner, "eval_batches", batches)
        patch.setattr(runner, "predictor", recording)
        (path,) = run_experiment(make_dataclass_instance(ExperimentConfig, raw, where="e"), out, progress=False,
                                 log=lambda *_: None)
    return json.loads(path.read_text())["acc"], predictions, sizes


def test_padding_bounded_batches_predict_what_uncut_and_single_example_batches_predict(tmp_path, monkeypatch):
    bounded = evaluated(tmp_path, monkeypatch, 256, 0.0)
    uncut = evaluated(tmp_path, monkeypatch, 256, float("inf"))
    alone = evaluated(tmp_path, monkeypatch, 1, EVAL_PADDING)
    assert len(bounded[2]) > len(uncut[2]) and set(alone[2]) == {1}  # three different cuts
    assert bounded[0] == uncut[0] == alone[0]
    assert any(0 < score < 1 for row in bounded[0] for score in row)  # a matrix that predictions could change
    assert bounded[1] == uncut[1] == alone[1] and all(len(labels) == 1 for labels in bounded[1].values())
