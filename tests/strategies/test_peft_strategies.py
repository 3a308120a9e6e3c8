"""adapter-per-task, o-lora, progressive-prompts and l2p on a tiny random BERT (hidden 32) with
MiniLM's tokenizer (offline) over the synthetic-text stream, through the real runner."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

import clft.sweep.run
from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig, load_experiment
from clft.errors import ConfigError
from clft.registry import backbones, benchmarks, strategies
from clft.results.metrics import backward_transfer
from clft.strategies._peft import adapter_name, adapter_parameters
from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK
from clft.types import LabelSpace

TRAIN = {"epochs": 2, "batch_size": 8, "lr": 0.02, "max_steps_per_task": 4, "threads": 1}
TINY_T5 = {"name": "hf-seq2seq", "tokenizer": "all-MiniLM-L6-v2", "max_length": 32,
           "model_config": {"model_type": "t5", "vocab_size": 30522, "d_model": 32, "d_ff": 64, "d_kv": 16,
                            "num_layers": 2, "num_heads": 2, "decoder_start_token_id": 0, "pad_token_id": 0,
                            "eos_token_id": 102, "dropout_rate": 0.0}}


def write_experiment(path: Path, strategy, scenario: str, n_tasks: int = 2, backbone=None, **train) -> Path:
    raw = {"name": "peft-strategies", "seeds": [0], "scenarios": [scenario],
           "benchmark": {**TINY_TEXT_BENCHMARK, "n_tasks": n_tasks}, "backbone": backbone or TINY_TEXT_BACKBONE,
           "strategies": [strategy], "train": {**TRAIN, **train}}
    path.write_text(yaml.safe_dump(raw))
    return path


def run_recorded(cfg, out: Path, monkeypatch, on_task_end=None) -> list:
    """[(the Run, its result path)] of every run of ``cfg``, made in process into ``out``;
    ``on_task_end(run, task)`` is called after each task."""
    built, build = [], clft.sweep.run.build_run

    def recording_build(*args, **kwargs):
        result = build(*args, **kwargs)
        if on_task_end is not None:
            result.on_task_end.append(on_task_end)
        built.append(result)
        return result

    monkeypatch.setattr(clft.sweep.run, "build_run", recording_build)
    paths = clft.sweep.run.run_experiment(cfg, out, progress=False, log=lambda message: None)
    return list(zip(built, paths))


def run(tmp_path, monkeypatch, strategy, scenario, n_tasks=2, on_task_end=None, name="exp", **options):
    """(the Run, its result JSON) of one in-process run; ``on_task_end(run, task)`` is called after each task."""
    cfg = load_experiment(str(write_experiment(tmp_path / f"{name}.yaml", strategy, scenario, n_tasks, **options)))[0]
    [(built, path)] = run_recorded(cfg, tmp_path / name, monkeypatch, on_task_end)
    return built, json.loads(path.read_text())


def snapshot(params: dict) -> dict:
    return {n: p.detach().clone() for n, p in params.items()}


def assert_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b) and a
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ---------------------------------------------------------------- adapter-per-task


def test_adapter_per_task_old_adapters_stay_bit_identical_and_task_il_bwt_is_zero(tmp_path, monkeypatch):
    seen: list[dict] = []  # after each task: every adapter's parameters
    record = lambda r, task: seen.append(  # noqa: E731
        {t: snapshot(adapter_parameters(r.backbone, adapter_name(t))) for t in range(task.id + 1)})
    run_, result = run(tmp_path, monkeypatch, "adapter-per-task", "task-il", n_tasks=3, on_task_end=record)
    for t in range(2):
        for later in seen[t + 1 :]:
            assert_equal(later[t], seen[t][t])  # LoRA A/B and the head copy of task t, bit for bit
    assert any(name.endswith("modules_to_save.task0.weight") for name in seen[0][0])
    acc = result["acc"]
    assert all(acc[2][j] == acc[j][j] for j in range(2))
    assert backward_transfer(acc) == 0.0
    untrained = [(i, j) for i in range(3) for j in range(i + 1, 3)]  # task j after task i: no adapter for it yet
    assert all(acc[i][j] == result["baseline_acc"][j] for i, j in untrained)  # the base model, as before training
    trainable = {n for n, p in run_.backbone.model.named_parameters() if p.requires_grad}
    assert trainable and all(".task2." in n for n in trainable)


def test_adapter_per_task_class_il_reports_task_inference_accuracy(tmp_path, monkeypatch):
    _, result = run(tmp_path, monkeypatch, "adapter-per-task", "class-il", n_tasks=3)
    extra = result["extra"]
    by_task = extra["task_inference_acc_by_task"]
    assert len(by_task) == 3 and by_task[0] == 1.0  # one adapter: the task is always right
    assert extra["task_inference_acc"] == by_task[-1] and 0.0 <= by_task[-1] <= 1.0
    assert result["cost"]["extra_state_bytes"] > 0


def test_adapter_per_task_refuses_shared_or_missing_heads(tmp_path, monkeypatch):
    no_head = {"name": "adapter-per-task", "peft": {"peft_type": "LORA", "r": 4, "target_modules": ["query"]}}
    with pytest.raises(ConfigError, match="modules_to_save"):
        run(tmp_path, monkeypatch, no_head, "task-il", name="no-head")
    shared = {**TINY_TEXT_BACKBONE, "peft": {"peft_type": "LORA", "r": 4, "target_modules": ["query"]}}
    with pytest.raises(ConfigError, match="shared by every task"):
        run(tmp_path, monkeypatch, {"name": "adapter-per-task", "peft": None}, "task-il", name="shared",
            backbone=shared)


# ---------------------------------------------------------------- o-lora


def test_o_lora_keeps_old_loras_frozen_and_active_and_lam1_lowers_their_overlap(tmp_path, monkeypatch):
    overlaps = {}
    for lam1 in (0.0, 1.0):
        seen: list[dict] = []
        record = lambda r, task, seen=seen: seen.append(snapshot(adapter_parameters(r.backbone, "task0")))  # noqa: E731
        run_, result = run(tmp_path, monkeypatch, {"name": "o-lora", "lam1": lam1}, "class-il",
                           on_task_end=record, name=f"lam{lam1}")
        assert_equal(seen[1], seen[0])
        assert run_.backbone.model.active_adapters == ["task0", "task1"]
        overlaps[lam1] = (result["extra"]["olora_overlap"]["0-1"], result["extra"]["olora_overlap_cos"]["0-1"])
    print(f"o-lora overlap Σ|A0 A1ᵀ|, rms cos: λ1=0 {overlaps[0.0]}, λ1=1 {overlaps[1.0]}")
    assert overlaps[1.0][0] < 0.5 * overlaps[0.0][0]
    assert overlaps[1.0][1] < overlaps[0.0][1]


def test_o_lora_penalty_is_the_sum_of_absolute_products():
    lora = strategies.build({"name": "o-lora", "lam1": 2.0})
    a_old, a_new = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 1.0], [0.0, -1.0]])
    lora._pairs = [(a_new, [a_old])]
    task = type("T", (), {"id": 1})()
    assert lora.extra_loss(None, {}, None, task).item() == pytest.approx(2.0 * (abs(3 - 2) + abs(0 + 2)))


# ---------------------------------------------------------------- progressive prompts


def test_progressive_prompts_freeze_old_prompts_and_prepend_all_of_them(tmp_path, monkeypatch):
    seen: list[list[torch.Tensor]] = []
    record = lambda r, task: seen.append([p.detach().clone() for p in r.strategies[0].stack.prompts])  # noqa: E731
    run_, result = run(tmp_path, monkeypatch, {"name": "progressive-prompts", "prompt_length": 3}, "task-il",
                       n_tasks=3, on_task_end=record)
    for t in range(2):
        for later in seen[t + 1 :]:
            assert torch.equal(later[t], seen[t][t])
    strategy, backbone = run_.strategies[0], run_.backbone
    assert [p.requires_grad for p in strategy.stack.prompts] == [False, False, True]
    assert backward_transfer(result["acc"]) == 0.0  # shared head: masked rows get no gradient under Adam
    batch = backbone.collate(run_.tasks[0].test[:4])
    for view, length in ((0, 3), (2, 9)):
        strategy.view = view
        hidden = backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        assert hidden.shape[1] == batch["input_ids"].shape[1] + length


def test_prompt_strategies_run_on_an_encoder_decoder(tmp_path, monkeypatch):
    for spec, scenario in (({"name": "progressive-prompts", "prompt_length": 2}, "task-il"),
                           ({"name": "l2p", "pool_size": 4, "top_n": 2, "prompt_length": 2}, "class-il")):
        run_, result = run(tmp_path, monkeypatch, spec, scenario, backbone=TINY_T5, name=spec["name"],
                           max_steps_per_task=2)
        assert len(result["acc"]) == 2
        batch = run_.backbone.collate(run_.tasks[0].test[:2])
        encoder = run_.backbone.base_model.get_encoder()
        out = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        assert out.shape[1] == batch["input_ids"].shape[1] + run_.strategies[0].hook.length()


# ---------------------------------------------------------------- l2p


def tiny_backbone(scenario: str = "class-il"):
    bench = benchmarks.build({**TINY_TEXT_BENCHMARK, "scenario": scenario})
    tasks = bench.tasks(0)
    torch.manual_seed(0)
    backbone = backbones.build(dict(TINY_TEXT_BACKBONE), bench, tasks)
    backbone.label_space = LabelSpace(scenario, len(bench.label_names), {t.id: t.classes for t in tasks})
    return backbone, tasks


def test_l2p_selects_the_prompts_whose_keys_match_the_query_and_trains_them():
    backbone, tasks = tiny_backbone()
    l2p = strategies.build({"name": "l2p", "pool_size": 4, "top_n": 1, "prompt_length": 2, "lam": 1.0})
    backbone.label_space.mark_seen(tasks[0])
    l2p.before_task(backbone, tasks[0], tasks)
    assert not any(p.requires_grad for n, p in backbone.model.named_parameters() if n.startswith("encoder."))
    batch = backbone.collate(tasks[0].train[:2])
    query = l2p.query(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():  # key 2 is query 0, key 3 is query 1, the others point away from both
        l2p.pool.keys.copy_(torch.stack([-query[0] - query[1], -query[0] - query[1], query[0], query[1]]))
    prefix = l2p.prefix(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(prefix[0], l2p.pool.prompts[2]) and torch.equal(prefix[1], l2p.pool.prompts[3])
    before = copy.deepcopy(l2p.pool.state_dict())
    optimizer = torch.optim.SGD(backbone.trainable_parameters(), lr=0.1)
    outputs = backbone.forward(batch, tasks[0])  # the step's one forward pass records the chosen keys
    loss, surrogate = outputs.main_loss(), l2p.extra_loss(backbone, batch, outputs, tasks[0])
    assert surrogate.item() == pytest.approx(0.0, abs=1e-5)  # chosen keys equal their queries: cos = 1
    (loss + surrogate).backward()
    optimizer.step()
    changed = (l2p.pool.prompts - before["prompts"]).abs().sum(dim=(1, 2)) > 0
    assert changed.tolist() == [False, False, True, True]
    assert l2p.use == [0, 0, 2, 2]  # the direct call above and the one inside the loss


def test_l2p_runs_in_class_il_and_reports_prompt_use(tmp_path, monkeypatch):
    seen = []
    record = lambda r, task: seen.append(copy.deepcopy(r.strategies[0].pool.state_dict()))  # noqa: E731
    _, result = run(tmp_path, monkeypatch, {"name": "l2p", "pool_size": 4, "top_n": 2, "prompt_length": 2},
                    "class-il", on_task_end=record)
    use = result["extra"]["l2p_prompt_use"]
    assert sum(use) == 2 * TRAIN["max_steps_per_task"] * TRAIN["batch_size"] * 2  # tasks x steps x batch x top_n
    assert not torch.equal(seen[0]["keys"], seen[1]["keys"])  # keys train on every task
    assert not torch.equal(seen[0]["prompts"], seen[1]["prompts"])


@pytest.mark.parametrize("spec", [
    {"name": "adapter-per-task", "peft": {"r": 8}}, {"name": "adapter-per-task", "batch_size": 0},
    {"name": "adapter-per-task", "peft": {"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4}},
    {"name": "o-lora", "lam1": -1.0}, {"name": "o-lora", "r": 0}, {"name": "o-lora", "target_modules": []},
    {"name": "progressive-prompts", "prompt_length": 0}, {"name": "progressive-prompts", "mlp_bottleneck": 0},
    {"name": "l2p", "top_n": 11}, {"name": "l2p", "lam": -0.1}, {"name": "l2p", "pool_size": 0},
])
def test_invalid_options(spec):
    with pytest.raises(ConfigError):
        strategies.build(spec)


# ---------------------------------------------------------------- resume through the command line

RESUME_CASES = [("adapter-per-task", "class-il"), ("o-lora", "class-il"), ("progressive-prompts", "task-il"),
                ("l2p", "class-il"), ({"name": "progressive-prompts", "residual_mlp": True}, "task-il"),
                ({"name": "l2p", "frequency_penalty": True}, "class-il")]


@pytest.mark.slow
@pytest.mark.parametrize("name, scenario", RESUME_CASES)
def test_killed_in_task_one_then_resumed_gives_the_same_matrix(name, scenario, tmp_path, monkeypatch, cli):
    _, straight = run(tmp_path, monkeypatch, name, scenario, name="straight")
    path = write_experiment(tmp_path / "cli.yaml", name, scenario)
    out = tmp_path / "cli"
    killed = cli("run", str(path), "--out", str(out), "--quiet", "--no-plots",
                     env={"CLFT_KILL_AT": "train:task1:step1"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = cli("run", str(path), "--out", str(out), "--quiet", "--no-plots", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    [result_path] = out.glob("*/*/seed0.json")
    result = json.loads(result_path.read_text())
    assert result["acc"] == straight["acc"]
    assert result["extra"] == straight["extra"]


def test_o_lora_freezes_the_head_rows_of_earlier_classes_in_class_il(tmp_path, monkeypatch):
    heads: list[torch.Tensor] = []
    record = lambda r, task: heads.append(r.backbone.base_model.classifier.weight.detach().clone())  # noqa: E731
    run_, _ = run(tmp_path, monkeypatch, {"name": "o-lora", "protect_head": True}, "class-il", n_tasks=3,
                  on_task_end=record)
    tasks = run_.tasks
    for t in (1, 2):
        old = sorted(c for task in tasks[:t] for c in task.classes)
        new = list(tasks[t].classes)
        assert torch.equal(heads[t][old], heads[t - 1][old]), t
        assert not torch.equal(heads[t][new], heads[t - 1][new]), t
    free_heads: list[torch.Tensor] = []
    record = lambda r, task: free_heads.append(r.backbone.base_model.classifier.weight.detach().clone())  # noqa: E731
    free, _ = run(tmp_path, monkeypatch, {"name": "o-lora"}, "class-il", n_tasks=2,  # protect_head off by default
                  on_task_end=record, name="free")
    old = list(free.tasks[0].classes)
    assert not torch.equal(free_heads[-1][old], free_heads[0][old])  # unprotected, the old rows move


def test_o_lora_runs_text_to_text_without_a_head(tmp_path, monkeypatch):
    seen: list[dict] = []
    record = lambda r, task: seen.append(snapshot(adapter_parameters(r.backbone, "task0")))  # noqa: E731
    spec = {"name": "o-lora", "target_modules": ["q", "v"]}
    run_, result = run(tmp_path, monkeypatch, spec, "class-il", backbone=TINY_T5, on_task_end=record)
    assert len(result["acc"]) == 2 and run_.backbone.model.active_adapters == ["task0", "task1"]
    assert_equal(seen[1], seen[0])
    assert result["extra"]["olora_overlap"]["0-1"] > 0


def test_l2p_trains_only_the_current_tasks_classes_in_class_il():
    backbone, tasks = tiny_backbone()
    backbone.model.eval()  # no dropout: the hand-computed loss below sees the same logits
    l2p = strategies.build({"name": "l2p", "pool_size": 4, "top_n": 1, "prompt_length": 2, "lam": 0.0})
    for task in tasks[:2]:
        backbone.label_space.mark_seen(task)
        l2p.before_task(backbone, task, tasks)
    backbone.model.eval()
    batch = backbone.collate(tasks[1].train[:8])
    outputs = backbone.forward(batch, tasks[1])
    loss = l2p.loss(backbone, batch, outputs, tasks[1])  # replaces the main loss; no forward of its own
    head = backbone.base_model.classifier
    head.zero_grad()
    loss.backward()
    old, new = list(tasks[0].classes), list(tasks[1].classes)
    assert head.weight.grad[old].abs().sum() == 0 and head.bias.grad[old].abs().sum() == 0
    assert head.weight.grad[new].abs().sum() > 0
    with torch.no_grad():
        logits = backbone.logits(batch)
    by_hand = torch.nn.functional.cross_entropy(logits[:, new], batch["label"] - min(new))
    torch.testing.assert_close(loss.detach(), by_hand)
    assert sum(l2p.use) == 8  # top_n 1 x 8 examples: one forward pass, the step's own


def test_prompt_strategies_run_on_a_decoder_only_llm(tmp_path):
    from llm_helpers import save_tokenizer, tiny_llama_backbone, write_instruction_files

    size = save_tokenizer(tmp_path / "tok", chat=True)
    specs = [{"name": "progressive-prompts", "prompt_length": 3},
             {"name": "l2p", "pool_size": 4, "top_n": 2, "prompt_length": 2}]
    raw = {"name": "tiny-llm-prompts", "seeds": [0],
           "benchmark": {"name": "instruction-tuning", "files": write_instruction_files(tmp_path / "data"),
                         "general_tasks": ["general"]},
           "backbone": tiny_llama_backbone(tmp_path / "tok", size, max_new_tokens=4), "compare": specs,
           "train": {"epochs": 4, "batch_size": 4, "lr": 0.3, "eval_batch_size": 8, "threads": 1}}
    cfg = make_dataclass_instance(ExperimentConfig, raw, where="experiment")
    built, build = [], clft.sweep.run.build_run
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clft.sweep.run, "build_run", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
        paths = clft.sweep.run.run_experiment(cfg, tmp_path / "out", progress=False, log=lambda message: None)
    progressive, l2p = (json.loads(path.read_text()) for path in paths)
    assert progressive["acc"][0][0] > progressive["baseline_acc"][0]  # the first prompt alone learned task 1
    assert progressive["acc"][1][0] == progressive["acc"][0][0]  # task 1's prefix and the frozen LM are unchanged
    assert len(l2p["acc"]) == 2 and len(l2p["general"]["scores"]) == 3
    for run_ in built:
        backbone, strategy = run_.backbone, run_.strategies[0]
        batch = backbone.collate(run_.tasks[0].test[:3])
        plain = backbone.base_model.get_input_embeddings()  # logits stay aligned with the tokens
        logits = backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert logits.shape[1] == batch["input_ids"].shape[1] and plain.weight.shape[0] == logits.shape[2]
        prompts = batch["prompt_ids"]
        generated = backbone.model.generate(input_ids=prompts, attention_mask=batch["prompt_mask"],
                                            max_new_tokens=2, do_sample=False)
        assert torch.equal(generated[:, : prompts.shape[1]], prompts) and generated.shape[1] == prompts.shape[1] + 2
        with strategy.hook.paused():
            unprompted = backbone.model.generate(input_ids=prompts, attention_mask=batch["prompt_mask"],
                                                 max_new_tokens=2, do_sample=False)
        assert unprompted.shape == generated.shape
