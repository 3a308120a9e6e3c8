"""l2p and progressive-prompts as their papers define them: l2p's head reads the prompt positions and its
optional frequency penalty (Wang et al. 2022, Eq. 4); progressive-prompts' residual MLP reparameterisation
(Razdaibiedina et al. 2023). Tiny random BERT / T5 with MiniLM's tokenizer on the synthetic-text stream."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from test_peft_strategies import TINY_T5, run, tiny_backbone

from clft.registry import backbones, benchmarks, strategies
from clft.strategies._text import TINY_TEXT_BENCHMARK

# ---------------------------------------------------------------- l2p


def test_l2p_head_reads_the_mean_of_the_prompt_positions_last_hidden_states():
    backbone, tasks = tiny_backbone()
    l2p = strategies.build({"name": "l2p", "pool_size": 4, "top_n": 2, "prompt_length": 3})
    backbone.label_space.mark_seen(tasks[0])
    l2p.before_task(backbone, tasks[0], tasks)
    backbone.model.eval()  # no dropout: the hand computation sees the same states
    batch = backbone.collate(tasks[0].train[:4])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        prefix = l2p.prefix(ids, mask)
        n = prefix.shape[1]  # top_n x prompt_length = 6 prompt positions
        embeds = torch.cat([prefix, backbone.base_model.get_input_embeddings()(ids)], dim=1)
        full_mask = torch.cat([mask.new_ones(len(ids), n), mask], dim=1)
        with l2p.hook.paused():
            hidden = backbone.base_model(inputs_embeds=embeds, attention_mask=full_mask)[0]
        by_hand = hidden[:, :n].mean(dim=1)
        every_token = (hidden * full_mask[..., None]).sum(dim=1) / full_mask.sum(dim=1, keepdim=True)
        assert not torch.allclose(by_hand, every_token, atol=1e-3)  # the check below can tell them apart
        torch.testing.assert_close(backbone.embed(batch), by_hand)
        head = backbone.base_model.classifier
        torch.testing.assert_close(backbone.logits(batch), head(by_hand))  # prediction's scores
    outputs = backbone.forward(batch, tasks[0])  # a training step's forward: the same prompts (Eq. 3)
    torch.testing.assert_close(outputs.logits.detach(), head(by_hand))


def keys_at(query: torch.Tensor, cosines: list[float]) -> torch.Tensor:
    """Keys whose cosine similarity to the unit vector ``query`` is each of ``cosines``."""
    other = torch.randn_like(query)
    other = F.normalize(other - (other @ query) * query, dim=0)
    c = torch.tensor(cosines)[:, None]
    return c * query + (1 - c**2).sqrt() * other


def test_l2p_frequency_penalty_selects_the_smallest_distance_times_earlier_use():
    backbone, tasks = tiny_backbone()
    spec = {"name": "l2p", "pool_size": 4, "top_n": 1, "prompt_length": 2, "frequency_penalty": True}
    l2p = strategies.build(spec)
    backbone.label_space.mark_seen(tasks[0])
    l2p.before_task(backbone, tasks[0], tasks)
    assert l2p.frequency is None  # task 0: nothing chosen before, Eq. 3
    batch = backbone.collate(tasks[0].train[:4])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        l2p.pool.keys.copy_(keys_at(l2p.query(ids, mask)[0], [0.9, 0.8, 0.1, -0.5]))
    l2p.use = [12, 2, 3, 3]  # as if chosen so while training task 0
    l2p.after_task(backbone, tasks[0])
    backbone.label_space.mark_seen(tasks[1])
    l2p.before_task(backbone, tasks[1], tasks)
    h = torch.tensor([12, 2, 3, 3]) / 20
    similarity = l2p.query(ids, mask) @ F.normalize(l2p.pool.keys.detach(), dim=-1).T
    by_hand = ((1 - similarity) * h).argmin(dim=1)  # N = 1: argmin of γ·h, γ = 1 - cos
    assert by_hand[0] == 1 and similarity[0].argmax() == 0  # γ·h = .06, .02, .135, .225: the penalty decides
    prompts = l2p.pool.prompts.detach()
    trained = l2p.prefix(ids, mask)  # grad enabled, as in a training step: Eq. 4
    assert all(torch.equal(trained[i], prompts[by_hand[i]]) for i in range(len(ids)))
    with torch.no_grad():  # prediction: Eq. 3
        predicted = l2p.prefix(ids, mask)
    assert all(torch.equal(predicted[i], prompts[similarity[i].argmax()]) for i in range(len(ids)))


# ---------------------------------------------------------------- progressive prompts


def mlp_by_hand(mlp, prompt: torch.Tensor, layer_norm: bool = True) -> torch.Tensor:
    """P + LayerNorm(W_up ReLU(W_down P + b_down) + b_up), or without the LayerNorm."""
    inner = F.linear(F.relu(F.linear(prompt, mlp.down.weight, mlp.down.bias)), mlp.up.weight, mlp.up.bias)
    if not layer_norm:
        return prompt + inner
    return prompt + F.layer_norm(inner, (prompt.shape[1],), mlp.norm.weight, mlp.norm.bias)


def test_progressive_prompts_train_p_plus_mlp_of_p_and_keep_it_after_the_task():
    backbone, tasks = tiny_backbone("task-il")
    pp = strategies.build({"name": "progressive-prompts", "prompt_length": 3, "mlp_bottleneck": 8})
    pp.before_task(backbone, tasks[0], tasks)  # hf-classifier: the residual MLP by default (the paper's BERT)
    mlp, prompt = pp.stack.mlp, pp.stack.prompts[0]
    batch = backbone.collate(tasks[0].train[:4])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    torch.testing.assert_close(pp.prefix(ids, mask)[3], mlp_by_hand(mlp, prompt))
    trainable = {n for n, p in backbone.model.named_parameters() if p.requires_grad}
    assert {"clft_progressive_prompts.prompts.0", "clft_progressive_prompts.mlp.down.weight",
            "clft_progressive_prompts.mlp.norm.weight"} <= trainable
    before = mlp.down.weight.detach().clone()
    optimizer = torch.optim.Adam(backbone.trainable_parameters(), lr=0.05)
    backbone.forward(batch, tasks[0]).main_loss().backward()
    optimizer.step()
    assert not torch.equal(mlp.down.weight, before)  # the MLP trains with the prompt
    with torch.no_grad():
        effective = mlp_by_hand(mlp, prompt)
    pp.after_task(backbone, tasks[0])
    assert pp.stack.mlp is None and not any(".mlp." in n for n, _ in backbone.model.named_parameters())
    torch.testing.assert_close(pp.stack.prompts[0].detach(), effective)  # P' is what is kept
    assert torch.equal(pp.prefix(ids, mask)[0], pp.stack.prompts[0])


def test_progressive_prompts_mlp_without_layer_norm_as_the_reference_bert_code():
    backbone, tasks = tiny_backbone("task-il")
    pp = strategies.build({"name": "progressive-prompts", "prompt_length": 3, "mlp_bottleneck": 8,
                           "mlp_layer_norm": False})
    pp.before_task(backbone, tasks[0], tasks)
    batch = backbone.collate(tasks[0].train[:2])
    prefix = pp.prefix(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(prefix[0], mlp_by_hand(pp.stack.mlp, pp.stack.prompts[0], layer_norm=False))


def test_progressive_prompts_residual_mlp_default_follows_the_papers_models():
    backbone, tasks = tiny_backbone("task-il")
    bench = benchmarks.build({**TINY_TEXT_BENCHMARK, "scenario": "task-il"})
    t5 = backbones.build(dict(TINY_T5), bench, bench.tasks(0))
    default = strategies.build({"name": "progressive-prompts"})
    assert default.uses_mlp(backbone) and not default.uses_mlp(t5)  # BERT-like head: on; text-to-text: off
    forced_off = strategies.build({"name": "progressive-prompts", "residual_mlp": False})
    forced_off.before_task(backbone, tasks[0], tasks)
    assert forced_off.stack.mlp is None
    forced_on = strategies.build({"name": "progressive-prompts", "residual_mlp": True})
    assert forced_on.uses_mlp(t5)


def test_progressive_prompts_earlier_effective_prompts_stay_bit_identical(tmp_path, monkeypatch):
    seen: list[list[torch.Tensor]] = []
    record = lambda r, task: seen.append([p.detach().clone() for p in r.strategies[0].stack.prompts])  # noqa: E731
    spec = {"name": "progressive-prompts", "prompt_length": 3, "residual_mlp": True, "mlp_bottleneck": 16}
    run_, _ = run(tmp_path, monkeypatch, spec, "task-il", n_tasks=3, on_task_end=record)
    for t in range(2):
        for later in seen[t + 1 :]:
            assert torch.equal(later[t], seen[t][t])
    assert run_.strategies[0].stack.mlp is None  # dropped after the last task too
    assert [p.requires_grad for p in run_.strategies[0].stack.prompts] == [False, False, True]
