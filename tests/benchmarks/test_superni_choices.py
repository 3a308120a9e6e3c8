"""superni-cl's ``general_choices``: held-out multiple-choice and classification tasks scored by rank
classification over their answers, on small SuperNI-format files; the choice itself checked by hand
on a tiny random Llama, and through the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from llm_helpers import save_tokenizer, tiny_llama_backbone

import clft.backbones  # noqa: F401  (registers the backbones)
import clft.benchmarks  # noqa: F401
from clft.benchmarks.superni import lettered_options
from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.registry import backbones, benchmarks
from clft.sweep.run import run_experiment
from clft.types import LabelSpace

MC = [("which colour is the sky ?\n(A)blue (B)green (C)red", "A"),
      ("which colour is grass ?\n(A)red (B)green (C)blue", "B"),
      ("which colour is blood ?\n(A)green (B)blue (C)red", "C"),
      ("which colour is snow ?\n(A)white (B)red (C)green", "A")]
CLASSIFICATION = [("a lovely day", "positive"), ("a sad day", "negative"), ("a fine day", "positive"),
                  ("a bad day", "negative")]
GENERATION = [("say one", "one"), ("say two", "two two"), ("say three", "three three three"), ("say four", "four")]
WORDS = " ".join(text for rows in (MC, CLASSIFICATION, GENERATION) for pair in rows for text in pair)


def write_task(root: Path, folder: str, definition: str, rows) -> None:
    (root / folder).mkdir(parents=True)
    data = {"Definition": [definition], "Instances": [{"id": str(i), "input": x, "output": [y]}
                                                      for i, (x, y) in enumerate(rows)]}
    for split in ("train", "test"):
        (root / folder / f"{split}.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def superni(tmp_path_factory):
    root = tmp_path_factory.mktemp("superni")
    write_task(root / "superni_cl", "task001_colours_answer_generation", "choose the colour", MC)
    write_task(root / "superni_cl", "task002_mood_classification", "say the mood", CLASSIFICATION)
    write_task(root / "superni_cl", "task003_count_generation", "repeat the number", GENERATION)
    write_task(root / "superni_cl", "task004_stream_generation", "repeat the number", GENERATION)
    size = save_tokenizer(root / "tok", chat=True, words=WORDS)
    spec = {"name": "superni-cl", "data_dir": str(root), "order": ["stream"],
            "general_tasks": ["colours", "mood", "count"], "general_choices": True}
    return root, spec, size


def test_lettered_options_are_read_in_order_or_not_at_all():
    assert lettered_options("sky ?\n(A)blue (B)dark green (C)red") == [("A", "blue"), ("B", "dark green"), ("C", "red")]
    assert lettered_options("(B)x (A)y") is None and lettered_options("only (A)one") is None
    assert lettered_options("no options") is None


def test_general_choices_give_the_options_or_the_answers_and_exact_match(superni):
    _, spec, _ = superni
    mc, mood, count = benchmarks.build(spec).general_tasks(0)
    assert (mc.metric, mood.metric, count.metric) == ("exact-match", "exact-match", "rouge-l")
    assert mc.test["choices"][1] == ["red", "green", "blue"] and mc.test["choice_labels"][1] == ["A", "B", "C"]
    assert mood.test["choices"] == [["negative", "positive"]] * 4 == mood.test["choice_labels"]
    assert "choices" not in count.test.column_names
    plain = benchmarks.build({**spec, "general_choices": False}).general_tasks(0)
    assert all("choices" not in t.test.column_names for t in plain)
    assert [t.metric for t in plain] == ["rouge-l", "exact-match", "rouge-l"]
    (stream,) = benchmarks.build(spec).tasks(0)
    assert "choices" not in stream.test.column_names  # only held-out tasks are rank-scored


def continuation_log_prob(model, prompt: list[int], continuation: list[int]) -> float:
    """Σ_t log p(continuation[t] | prompt, continuation[:t]) with the model run on the plain concatenation."""
    ids = torch.tensor([prompt + continuation])
    log_probs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    positions = range(len(prompt) - 1, len(prompt) + len(continuation) - 1)
    return sum(log_probs[p, ids[0, p + 1]].item() for p in positions)


def test_the_chosen_answer_is_the_most_likely_candidate_by_hand(superni):
    root, spec, size = superni
    bench = benchmarks.build(spec)
    stream, general = bench.tasks(0), bench.general_tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(tiny_llama_backbone(root / "tok", size), bench, stream + general)
    backbone.label_space = LabelSpace("task-il", 0, {t.id: () for t in stream + general})
    backbone.model.eval()
    not_first = 0
    for task in general[:2]:
        rows = backbone.prepare(task.test)[:]
        batch = backbone.collate(rows)
        with torch.inference_mode():
            chosen = backbone.predict(batch, task, "task-il")
            expected = []
            for b, (texts, labels) in enumerate(zip(rows["choices"], rows["choice_labels"])):
                prompt = batch["prompt_ids"][b][batch["prompt_mask"][b].bool()].tolist()
                eos = [backbone.tokenizer.eos_token_id]
                scores = [continuation_log_prob(backbone.model, prompt, backbone.tokenizer(t, add_special_tokens=False)
                                                ["input_ids"] + eos) for t in texts]
                assert max(scores) - min(scores) > 1e-3  # the candidates are told apart, not tied
                expected.append(labels[scores.index(max(scores))])
        assert chosen == expected
        not_first += sum(label != labels[0] for label, labels in zip(chosen, rows["choice_labels"]))
    assert not_first  # some choice is not the first candidate: a first-on-tie default would fail


def test_runner_scores_rank_chosen_general_tasks(superni, tmp_path):
    root, spec, size = superni
    raw = {"name": "tiny-superni", "seeds": [0], "benchmark": spec,
           "backbone": tiny_llama_backbone(root / "tok", size), "strategies": ["finetune"],
           "train": {"epochs": 1, "batch_size": 2, "lr": 0.01, "eval_batch_size": 4, "threads": 1}}
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    (path,) = run_experiment(cfg, tmp_path / "out", progress=False, log=lambda *_: None)
    general = json.loads(path.read_text())["general"]
    assert [t["metric"] for t in general["tasks"]] == ["exact-match", "exact-match", "rouge-l"]
    for scores in general["scores"]:  # before training and after the task; a choice is right or wrong
        assert all(score * 4 == int(score * 4) for score in scores[:2])


def test_a_generated_general_tasks_cap_comes_from_its_training_sample_not_one_example(superni):
    root, spec, size = superni
    bench = benchmarks.build(spec)
    stream, general = bench.tasks(0), bench.general_tasks(0)
    count = general[2]
    assert len(count.train) == 4  # the train_size sample (all here), not a single example
    backbone = backbones.build(tiny_llama_backbone(root / "tok", size), bench, stream + general)
    assert backbone.new_tokens(count) == 3  # "three three three": the longest training reference
