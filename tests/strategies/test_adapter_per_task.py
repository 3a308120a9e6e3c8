"""adapter-per-task's adapter selection (AdapterCL's confidence, the prototype option) and its base-model
rule for tasks no adapter was trained on, on a tiny random BERT whose adapters are set by hand."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest
import torch

import clft.engine.runner
import clft.sweep.run
from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.errors import ConfigError
from clft.registry import backbones, benchmarks, strategies
from clft.strategies._peft import adapter_name, adapter_parameters
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import LabelSpace

N_TRAINED = 3


def backbone_and_tasks(scenario: str = "class-il", task_classes: dict | None = None):
    """hf-classifier on a tiny random BERT over 4 synthetic-text tasks (8 topics); ``task_classes``
    overrides the label space's classes per task (e.g. tasks of different sizes)."""
    bench = benchmarks.build({**TINY_TEXT_BENCHMARK, "n_tasks": 4, "test_per_class": 3})
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(dict(TINY_TEXT_BACKBONE), bench, tasks)
    classes = task_classes or {t.id: t.classes for t in tasks}
    backbone.label_space = LabelSpace(scenario, len(bench.label_names), classes)
    backbone.model.eval()  # no dropout
    return backbone, tasks


def train_by_hand(backbone, tasks, spec=None, n=N_TRAINED):
    """The strategy after ``n`` tasks whose adapters (LoRA and head copy) got seeded random updates."""
    strategy = strategies.build(spec or {"name": "adapter-per-task"})
    noise = torch.Generator().manual_seed(1)
    for task in tasks[:n]:
        backbone.label_space.seen.update(backbone.label_space.task_classes[task.id])
        strategy.before_task(backbone, task, tasks)
        with torch.no_grad():
            for param in adapter_parameters(backbone, adapter_name(task.id)).values():
                param.add_(torch.randn(param.shape, generator=noise))
        strategy.after_task(backbone, task)
    backbone.model.eval()
    return strategy


def mixed_batch(backbone, tasks, n=N_TRAINED):
    """The test examples of tasks 0..n-1 in one batch."""
    rows = [tasks[t].test[i] for t in range(n) for i in range(len(tasks[t].test))]
    return backbone.collate({key: [row[key] for row in rows] for key in rows[0]})


def use_adapter(backbone, t: int) -> None:
    backbone.model.base_model.set_adapter(adapter_name(t))


def test_confidence_picks_per_example_the_adapter_of_lowest_normalised_entropy():
    sizes = {0: (0, 1), 1: (2, 3, 4), 2: (5, 6, 7), 3: ()}  # 2, 3 and 3 classes: log C_t differs
    backbone, tasks = backbone_and_tasks(task_classes=sizes)
    strategy = train_by_hand(backbone, tasks)
    batch = mixed_batch(backbone, tasks)
    normalised, plain, answers = [], [], []
    for t in range(N_TRAINED):
        use_adapter(backbone, t)
        with torch.inference_mode():
            z = backbone.logits(batch)[:, list(sizes[t])].double()
        entropy = torch.logsumexp(z, dim=1) - (z.softmax(dim=1) * z).sum(dim=1)  # H = log Σe^z - E_p[z]
        normalised.append(entropy / math.log(len(sizes[t])))
        plain.append(entropy)
        answers.append(torch.tensor(sizes[t])[z.argmax(dim=1)])
    chosen = torch.stack(normalised).argmin(dim=0)
    expected = torch.stack(answers).gather(0, chosen[None])[0]
    assert len(set(chosen.tolist())) > 1  # the batch is split between adapters
    assert not torch.equal(chosen, torch.stack(plain).argmin(dim=0))  # the division by log C_t decides some
    with torch.inference_mode():
        predicted = strategy.predict(backbone, batch, tasks[0], "class-il")
    assert torch.equal(predicted, expected)
    assert strategy.report()["task_inference_acc"] == pytest.approx((chosen == batch["task"]).double().mean().item())
    assert backbone.model.active_adapters == [adapter_name(N_TRAINED - 1)]  # the last adapter is back, trainable
    trainable = {n for n, p in backbone.model.named_parameters() if p.requires_grad}
    assert trainable and all(f".{adapter_name(N_TRAINED - 1)}." in n for n in trainable)


def test_prototype_selector_picks_the_adapter_of_the_nearest_class_mean():
    backbone, tasks = backbone_and_tasks()
    strategy = train_by_hand(backbone, tasks, {"name": "adapter-per-task", "selector": "prototype"})
    batch = mixed_batch(backbone, tasks)
    similarity, answers = [], []
    for t in range(N_TRAINED):
        train = backbone.collate(tasks[t].train[:])
        classes = sorted(tasks[t].classes)
        use_adapter(backbone, t)
        with torch.inference_mode():
            train_embedding, embedding, logits = backbone.embed(train), backbone.embed(batch), backbone.logits(batch)
        means = torch.stack([train_embedding[train["label"] == c].mean(dim=0) for c in classes])
        cosine = torch.nn.functional.cosine_similarity(embedding[:, None], means[None], dim=-1)
        similarity.append(cosine.max(dim=1).values)
        answers.append(torch.tensor(classes)[logits[:, classes].argmax(dim=1)])
    chosen = torch.stack(similarity).argmax(dim=0)
    assert len(set(chosen.tolist())) > 1
    with torch.inference_mode():
        predicted = strategy.predict(backbone, batch, tasks[0], "class-il")
    assert torch.equal(predicted, torch.stack(answers).gather(0, chosen[None])[0])
    assert strategy.report()["task_inference_acc"] == pytest.approx((chosen == batch["task"]).double().mean().item())


@pytest.mark.parametrize("scenario", ["task-il", "class-il"])
def test_a_task_no_adapter_was_trained_on_runs_on_the_base_model(scenario):
    backbone, tasks = backbone_and_tasks(scenario)
    untrained = tasks[N_TRAINED]
    batch = backbone.collate(untrained.test[:])
    with torch.inference_mode():
        logits_before = backbone.logits(batch)  # the model before any adapter existed
    strategy = train_by_hand(backbone, tasks)
    computed = []  # the logits each prediction is made from
    logits = backbone.logits
    backbone.logits = lambda b: computed.append(logits(b)) or computed[-1]
    with torch.inference_mode():
        last_adapter = backbone.logits(batch)
        predicted = strategy.predict(backbone, batch, untrained, scenario)
        with backbone.model.disable_adapter():
            disabled = backbone.logits(batch)
    assert not torch.allclose(last_adapter, logits_before)  # the adapters do change the model
    assert len(computed) == 3 and torch.equal(computed[1], logits_before) and torch.equal(disabled, logits_before)
    allowed = backbone.allowed(batch, untrained)  # class-IL: the classes seen by now
    assert torch.equal(predicted, logits_before.masked_fill(~allowed, -torch.inf).argmax(dim=1))
    assert strategy.report() == {}  # no trained task's example was routed: nothing counted


TINY_T5 = {"name": "hf-seq2seq", "tokenizer": "all-MiniLM-L6-v2", "max_length": 32,
           "model_config": {"model_type": "t5", "vocab_size": 30522, "d_model": 32, "d_ff": 64, "d_kv": 16,
                            "num_layers": 2, "num_heads": 2, "decoder_start_token_id": 0, "pad_token_id": 0,
                            "eos_token_id": 102, "dropout_rate": 0.0}}


def test_prototype_selector_needs_embeddings():
    bench = benchmarks.build(dict(TINY_TEXT_BENCHMARK))
    tasks = bench.tasks(0)
    backbone = backbones.build(dict(TINY_T5), bench, tasks)
    strategy = strategies.build({"name": "adapter-per-task", "selector": "prototype",
                                 "peft": {"peft_type": "LORA", "r": 4, "target_modules": ["q", "v"]}})
    with pytest.raises(ConfigError, match="selector prototype needs embeddings"):
        strategy.before_task(backbone, tasks[0], tasks)


def test_general_tasks_are_answered_by_the_base_model(tmp_path, monkeypatch):
    from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

    size = save_tokenizer(tmp_path / "tok", chat=True)
    lora = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16,
            "target_modules": ["q_proj", "v_proj"]}
    raw = {"name": "tiny-llm-adapters", "seeds": [0],
           "benchmark": {"name": "instruction-tuning", "files": write_instruction_files(tmp_path / "data"),
                         "general_tasks": ["general"]},
           "backbone": tiny_llama_backbone(tmp_path / "tok", size, max_new_tokens=4),
           "strategies": [{"name": "adapter-per-task", "peft": lora}],
           "train": {"epochs": 4, "batch_size": 4, "lr": 0.05, "eval_batch_size": 8, "threads": 1}}
    answers, runs = defaultdict(list), []  # per task name: the texts of each evaluation
    predictor, build = clft.engine.runner.predictor, clft.sweep.run.build_run

    def recording(run):
        predict = predictor(run)
        return lambda backbone, batch, task, scenario: answers[task.name].append(
            predict(backbone, batch, task, scenario)) or answers[task.name][-1]

    monkeypatch.setattr(clft.engine.runner, "predictor", recording)
    monkeypatch.setattr(clft.sweep.run, "build_run", lambda *a, **k: runs.append(build(*a, **k)) or runs[-1])
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    [path] = clft.sweep.run.run_experiment(cfg, tmp_path / "out", progress=False, log=lambda message: None)
    result = json.loads(path.read_text())
    assert result["acc"][0][0] > result["baseline_acc"][0]  # the adapters learned
    [general] = runs[0].general_tasks
    assert general.id == len(runs[0].tasks)  # held-out tasks' ids follow the stream's
    before, *after = answers["general"]  # one batch per evaluation: before training, after each task
    assert after == [before, before]
    backbone = runs[0].backbone  # the last adapter is the active one after the run
    with torch.inference_mode():
        last_adapter = backbone.predict(backbone.collate(backbone.prepare(general.test)[:]), general, "task-il")
    assert last_adapter != before  # so the base model's answers are not the last adapter's


# ---------------------------------------------------------------- text-to-text backbones: perplexity

TINY_GPT2 = {"name": "hf-causal-lm", "tokenizer": "all-MiniLM-L6-v2", "max_length": 32,
             "model_config": {"model_type": "gpt2", "vocab_size": 30522, "n_embd": 32, "n_layer": 2, "n_head": 2,
                              "n_positions": 256, "initializer_range": 0.3}}
GPT2_LORA = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "target_modules": ["c_attn"],
             "fan_in_fan_out": True}


def continuation_log_prob(backbone, prompt: list[int], continuation: list[int]) -> float:
    """Σ_t log p(continuation_t | prompt, continuation_<t) from one plain forward pass of the whole sequence."""
    with torch.inference_mode():
        logits = backbone.model(input_ids=torch.tensor([prompt + continuation])).logits[0].double()
    log_p = logits[len(prompt) - 1 : -1].log_softmax(dim=-1)
    return log_p.gather(1, torch.tensor(continuation)[:, None]).sum().item()


def prompts(batch) -> list[list[int]]:
    return [ids[mask.bool()].tolist() for ids, mask in zip(batch["prompt_ids"], batch["prompt_mask"])]


def test_confidence_picks_per_example_the_adapter_of_lowest_answer_perplexity_on_a_causal_lm():
    bench = benchmarks.build({**TINY_TEXT_BENCHMARK, "n_tasks": 4, "test_per_class": 2})
    tasks = bench.tasks(0)
    torch.manual_seed(5)  # a random model under which the batch is split between adapters (checked below)
    backbone = backbones.build(dict(TINY_GPT2), bench, tasks)
    backbone.label_space = LabelSpace("class-il", len(bench.label_names), {t.id: t.classes for t in tasks})
    strategy = train_by_hand(backbone, tasks, {"name": "adapter-per-task", "peft": GPT2_LORA})
    batch = mixed_batch(backbone, tasks)
    log_perplexity, answers = [], []  # per adapter: [B]
    for t in range(N_TRAINED):
        use_adapter(backbone, t)
        classes = sorted(tasks[t].classes)
        per_example = []
        for prompt in prompts(batch):
            scores = {c: continuation_log_prob(backbone, prompt, backbone.target_ids[c]) for c in classes}
            best = max(classes, key=lambda c: (scores[c], -c))  # rank classification; the lower id on a tie
            per_example.append((-scores[best] / len(backbone.target_ids[best]), best))
        log_perplexity.append(torch.tensor([value for value, _ in per_example]))
        answers.append(torch.tensor([label for _, label in per_example]))
    chosen = torch.stack(log_perplexity).argmin(dim=0)  # exp is increasing: the argmin of the perplexity
    assert len(set(chosen.tolist())) > 1
    with torch.inference_mode():
        predicted = strategy.predict(backbone, batch, tasks[0], "class-il")
    assert torch.equal(predicted, torch.stack(answers).gather(0, chosen[None])[0])
    assert strategy.report()["task_inference_acc"] == pytest.approx((chosen == batch["task"]).double().mean().item())


def test_confidence_picks_per_example_the_adapter_of_lowest_generation_perplexity(tmp_path):
    from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

    size = save_tokenizer(tmp_path / "tok", chat=True)
    bench = benchmarks.build({"name": "instruction-tuning", "files": write_instruction_files(tmp_path / "data"),
                              "scenario": "domain-il"})
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(tiny_llama_backbone(tmp_path / "tok", size, max_new_tokens=4), bench, tasks)
    backbone.label_space = LabelSpace("domain-il", len(bench.label_names), {t.id: t.classes for t in tasks})
    lora = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "target_modules": ["q_proj", "v_proj"]}
    strategy = train_by_hand(backbone, tasks, {"name": "adapter-per-task", "peft": lora}, n=2)
    task = tasks[0]
    batch = backbone.collate(backbone.prepare(task.test)[:])
    log_perplexity, texts = [], []
    for t in range(2):
        use_adapter(backbone, t)
        with torch.inference_mode():
            generated = backbone.generated_ids(batch, task)
            texts.append(backbone.generate_texts(batch, task))
        eos = backbone.tokenizer.eos_token_id
        assert all(eos not in ids[:-1] and 0 < len(ids) <= 4 for ids in generated)  # up to the first EOS
        log_perplexity.append(torch.tensor([-continuation_log_prob(backbone, prompt, ids) / len(ids)
                                            for prompt, ids in zip(prompts(batch), generated)]))
    chosen = torch.stack(log_perplexity).argmin(dim=0)
    assert len(set(chosen.tolist())) > 1 and texts[0] != texts[1]
    with torch.inference_mode():
        predicted = strategy.predict(backbone, batch, task, "domain-il")
    assert predicted == [texts[t][i] for i, t in enumerate(chosen.tolist())]
