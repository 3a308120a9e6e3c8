"""Rank classification of the text-to-text backbones (``decode: rank``) on tiny random models.

Every score is checked against a hand computation: one full forward pass of the unpadded
prompt + target through the model (no cache, no batching), log-probabilities summed by hand.
"""

from __future__ import annotations

import datasets
import pytest
import torch

import clft.backbones  # noqa: F401  (registers the backbones)
from clft.backbones.hf_common import clear_prepared_cache
from clft.data import with_task_column
from clft.registry import backbones
from clft.types import Benchmark, LabelSpace, Task

LABELS = ["good", "bad", "sports", "world news today"]  # targets of 2, 2, 2 and 4 tokens (EOS included)
SENTENCES = {
    0: ["i love it", "a really great and wonderful day out with friends"],
    1: ["awful", "i hate this terrible film so much"],
    2: ["the team won the match last night", "a goal"],
    3: ["the president spoke", "elections in the country this year after a long campaign"],
}
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0..3, as the model configs below expect
MODELS = {
    "llama": ("hf-causal-lm", {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
                               "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
                               "max_position_embeddings": 256, "bos_token_id": 3, "eos_token_id": 1,
                               "pad_token_id": 0, "tie_word_embeddings": False, "initializer_range": 0.3}),
    "gpt2": ("hf-causal-lm", {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 256,
                              "bos_token_id": 3, "eos_token_id": 1, "pad_token_id": 0, "resid_pdrop": 0.0,
                              "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.3}),
    "t5": ("hf-seq2seq", {"model_type": "t5", "d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 2, "num_heads": 2,
                          "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, "dropout_rate": 0.0,
                          "initializer_factor": 3.0}),
}
PROMPT_TUNING = {"hf-causal-lm": "CAUSAL_LM", "hf-seq2seq": "SEQ_2_SEQ_LM"}


class TinyBenchmark(Benchmark):
    name = "tiny-rank"

    def __init__(self, scenario: str, label_texts: list[str] | None = None) -> None:
        self.scenario, self.label_names = scenario, list(LABELS)
        if label_texts is not None:
            self.label_texts = label_texts


def make_stream() -> list[Task]:
    def split(classes, task_id):
        rows = [(text, label) for label in classes for text in SENTENCES[label]]
        data = datasets.Dataset.from_dict({"text": [r[0] for r in rows], "label": [r[1] for r in rows]})
        return with_task_column(data, task_id)

    return [Task(i, name, classes, split(classes, i), split(classes, i))
            for i, (name, classes) in enumerate([("sentiment", (0, 1)), ("topic", (2, 3))])]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[str, str]:
    """{"causal": dir, "seq2seq": dir}: WordLevel tokenizers (BOS in front / EOS behind a text)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    paths = {}
    for kind, template in (("causal", "<s> $A"), ("seq2seq", "$A </s>")):
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        corpus = [s for texts in SENTENCES.values() for s in texts] + LABELS + ["Options: Input: Answer: yes , ."]
        tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIALS))
        special = ("<s>", 3) if kind == "causal" else ("</s>", 1)
        tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[special])
        tok.decoder = decoders.WordPiece()
        path = tmp_path_factory.mktemp(kind)
        PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                bos_token="<s>").save_pretrained(path)
        paths[kind] = str(path)
    return paths


def build(tokenizers, model: str, scenario: str = "class-il", label_texts=None, **options):
    name, config = MODELS[model]
    clear_prepared_cache()
    torch.manual_seed(0)
    tokenizer = tokenizers["causal" if name == "hf-causal-lm" else "seq2seq"]
    import transformers

    vocab = len(transformers.AutoTokenizer.from_pretrained(tokenizer))
    spec = {"name": name, "model_config": {**config, "vocab_size": vocab}, "tokenizer": tokenizer, **options}
    stream = make_stream()
    backbone = backbones.build(spec, TinyBenchmark(scenario, label_texts), stream)
    backbone.label_space = LabelSpace(scenario, len(LABELS), {t.id: t.classes for t in stream})
    backbone.model.eval()
    return backbone, stream


def mixed_batch(backbone, stream, indices=(0, 2, 5, 7)):
    """Examples of both tasks with prompts of different lengths (so the batch is padded)."""
    data = datasets.concatenate_datasets([backbone.prepare(task.test) for task in stream])
    examples = data[list(indices)]
    return backbone.collate(examples), examples


def hand_log_prob(backbone, prompt: list[int], target: list[int]) -> float:
    """Σ_t log p(target_t | prompt, target_<t) from one full forward pass without a cache."""
    if backbone.kind == "causal":
        logits = backbone.model(input_ids=torch.tensor([prompt + target])).logits[0]
        logits = logits[logits.shape[0] - len(prompt) - len(target):]  # virtual tokens of prompt tuning dropped
        log_probs = logits.float().log_softmax(-1)
        return sum(log_probs[len(prompt) - 1 + j, token].item() for j, token in enumerate(target))
    logits = backbone.model(input_ids=torch.tensor([prompt]), labels=torch.tensor([target])).logits[0]
    log_probs = logits.float().log_softmax(-1)
    return sum(log_probs[j, token].item() for j, token in enumerate(target))


def prompts_of(backbone, examples) -> list[list[int]]:
    rows = zip(examples["instruction_ids"], examples["text_ids"], examples["task"])
    return [backbone.prompt_ids(instruction, text, int(task)) for instruction, text, task in rows]


def hand_scores(backbone, examples) -> torch.Tensor:
    """[B, C]: the hand computation for every allowed label, -inf elsewhere."""
    prompts = prompts_of(backbone, examples)
    scores = torch.full((len(prompts), len(LABELS)), float("-inf"))
    for b, (prompt, task) in enumerate(zip(prompts, examples["task"])):
        for c in backbone.label_space.allowed(int(task)):
            scores[b, c] = hand_log_prob(backbone, prompt, backbone.target_ids[c])
    return scores


# --- the scores ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
@torch.inference_mode()
def test_rank_scores_equal_full_forward_passes_by_hand(tokenizers, model):
    backbone, stream = build(tokenizers, model)
    assert backbone.config.decode == "rank"  # the default
    batch, examples = mixed_batch(backbone, stream)
    lengths = [len(p) for p in prompts_of(backbone, examples)]
    assert len(set(lengths)) == len(lengths)  # prompts of different lengths: a padded batch
    assert len(set(backbone.target_lengths)) > 1 and backbone.target_lengths == [2, 2, 2, 4]
    expected = hand_scores(backbone, examples)
    scores = backbone.label_scores(batch)
    assert scores.dtype == torch.float32 and scores.shape == (4, len(LABELS))
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-5)
    predicted = backbone.predict(batch, stream[0], "class-il")
    assert predicted.tolist() == expected.argmax(dim=1).tolist()
    assert len(set(scores.argmax(dim=1).tolist())) > 1 or (scores[:, 0] - scores[:, 1]).abs().min() > 1e-3
    chunked, _ = build(tokenizers, model, rank_batch_size=3)  # 16 pairs in 6 passes
    torch.testing.assert_close(chunked.label_scores(batch), scores, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["llama", "t5"])
@torch.inference_mode()
def test_continuation_nll_is_the_mean_token_nll_by_hand(tokenizers, model):
    backbone, stream = build(tokenizers, model)
    batch, examples = mixed_batch(backbone, stream)
    continuations = [[5, 1], [7, 8, 9, 1], [1], [6, 6, 6]]
    prompts = prompts_of(backbone, examples)
    expected = [-hand_log_prob(backbone, p, c) / len(c) for p, c in zip(prompts, continuations)]
    torch.testing.assert_close(backbone.continuation_nll(batch, continuations), torch.tensor(expected),
                               atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="continuation 1 is empty"):
        backbone.continuation_nll(batch, [[5], [], [1], [1]])
    with pytest.raises(ValueError, match="3 continuations for a batch of 4"):
        backbone.continuation_nll(batch, continuations[:3])


@pytest.mark.parametrize("model", ["llama", "gpt2", "t5"])
@torch.inference_mode()
def test_rank_under_peft_prompt_tuning_equals_the_peft_model_by_hand(tokenizers, model):
    """peft prepends virtual tokens to the prompt pass only: the candidates must not get them again."""
    name = MODELS[model][0]
    block = {"peft_type": "PROMPT_TUNING", "task_type": PROMPT_TUNING[name], "num_virtual_tokens": 3}
    backbone, stream = build(tokenizers, model, peft=block)
    with torch.no_grad():
        for param in backbone.trainable_parameters():
            param.normal_(0, 1.0)  # prompts that change the scores
    batch, examples = mixed_batch(backbone, stream)
    torch.testing.assert_close(backbone.label_scores(batch), hand_scores(backbone, examples), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("model", ["llama", "t5"])
@torch.inference_mode()
def test_rank_under_a_soft_prompt_hook_equals_the_hooked_model_by_hand(tokenizers, model):
    """progressive-prompts / l2p prepend a prefix with a forward pre-hook (clft.strategies._prompts)."""
    from clft.strategies._prompts import PrefixHook

    backbone, stream = build(tokenizers, model)
    prefix = torch.randn(1, 2, 32, generator=torch.Generator().manual_seed(1))
    PrefixHook(backbone, lambda ids, mask: prefix.expand(len(ids), -1, -1), lambda: 2)
    batch, examples = mixed_batch(backbone, stream)
    expected = hand_scores(backbone, examples)
    torch.testing.assert_close(backbone.label_scores(batch), expected, atol=1e-4, rtol=1e-5)
    plain, _ = build(tokenizers, model)
    assert (plain.label_scores(batch) - expected).abs().max() > 1e-2  # the prefix counted


# --- what is allowed, ties, what runs ------------------------------------------------------------


def favour(backbone, word: str, amount: float = 30.0):
    """Make ``word``'s token likely everywhere (a hook on the LM head)."""
    token = backbone.tokenizer(word, add_special_tokens=False)["input_ids"][0]

    def hook(module, inputs, logits):
        logits[..., token] += amount
        return logits

    return backbone.base_model.get_output_embeddings().register_forward_hook(hook)


@pytest.mark.parametrize("model", ["llama", "t5"])
@pytest.mark.parametrize("scenario", ["task-il", "class-il", "domain-il"])
@torch.inference_mode()
def test_rank_never_predicts_a_label_the_scenario_does_not_allow(tokenizers, model, scenario):
    backbone, stream = build(tokenizers, model, scenario=scenario)
    favour(backbone, "sports")  # label 2 (task 1) would win wherever it is allowed
    backbone.label_space.mark_seen(stream[0])  # class-IL has seen labels 0 and 1 only
    batch, examples = mixed_batch(backbone, stream)  # two examples of task 0, two of task 1
    scores = backbone.label_scores(batch)
    allowed = {"task-il": [{0, 1}, {0, 1}, {2, 3}, {2, 3}], "class-il": [{0, 1}] * 4,
               "domain-il": [{0, 1, 2, 3}] * 4}[scenario]
    for row, labels in zip(scores, allowed):
        assert {c for c in range(len(LABELS)) if torch.isfinite(row[c])} == labels
    predicted = backbone.predict(batch, stream[0], scenario).tolist()
    assert all(p in labels for p, labels in zip(predicted, allowed))
    assert predicted == [2 if 2 in labels else p for p, labels in zip(predicted, allowed)]
    assert predicted == hand_scores(backbone, examples).argmax(dim=1).tolist()
    if scenario == "class-il":
        backbone.label_space.mark_seen(stream[1])  # the seen set grows: now the favoured label wins
        assert backbone.predict(batch, stream[1], scenario).tolist() == [2, 2, 2, 2]


@pytest.mark.parametrize("model", ["llama", "t5"])
@torch.inference_mode()
def test_rank_ties_go_to_the_lowest_label_id(tokenizers, model):
    """Two labels with one word (AG News' and Yahoo's "sports" in class-IL) score exactly alike."""
    backbone, stream = build(tokenizers, model, label_texts=["good", "sports", "sports", "bad"])
    favour(backbone, "sports")
    batch, _ = mixed_batch(backbone, stream)
    scores = backbone.label_scores(batch)
    assert torch.equal(scores[:, 1], scores[:, 2]) and (scores[:, 1] > scores[:, 0]).all()
    assert backbone.predict(batch, stream[0], "class-il").tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("model", ["llama", "t5"])
@torch.inference_mode()
def test_decode_option_picks_rank_or_generation(tokenizers, model, monkeypatch):
    ranking, stream = build(tokenizers, model)
    generating, _ = build(tokenizers, model, decode="generate", max_new_tokens=3)
    batch, _ = mixed_batch(ranking, stream)

    def refuse(*args, **kwargs):
        raise AssertionError("not this path")

    monkeypatch.setattr(ranking, "_generate", refuse)
    assert set(ranking.predict(batch, stream[0], "class-il").tolist()) <= {0, 1, 2, 3}
    monkeypatch.setattr(generating, "label_scores", refuse)
    texts = generating.tokenizer.batch_decode(generating._generate(batch), skip_special_tokens=True)
    expected = generating.match(texts, batch["task"].tolist())
    assert generating.predict(batch, stream[0], "class-il").tolist() == expected
    assert -1 in expected  # a random model's text is rarely a label word: generate mode says so
    with pytest.raises(Exception, match="decode"):
        build(tokenizers, model, decode="beam")


@pytest.mark.parametrize("model", ["llama", "t5"])
@torch.inference_mode()
def test_the_prompt_is_encoded_once_per_batch(tokenizers, model):
    """Tokens reaching the embedding layer: each prompt once, then only candidates' tokens."""
    backbone, stream = build(tokenizers, model)
    widths: list[tuple[int, int]] = []
    vocab = backbone.base_model.get_input_embeddings().num_embeddings
    for module in backbone.base_model.modules():  # T5: the encoder's and the decoder's token embeddings
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings == vocab:
            module.register_forward_pre_hook(lambda module, args: widths.append(tuple(args[0].shape)))
    batch, examples = mixed_batch(backbone, stream)
    backbone.label_scores(batch)
    longest_target = max(backbone.target_lengths)
    prompt_passes = [shape for shape in widths if shape[1] > longest_target]
    assert prompt_passes == [(4, max(len(p) for p in prompts_of(backbone, examples)) - (model != "t5"))]
    pairs = sum(rows for rows, width in widths if width <= longest_target and width > 1)
    assert pairs == 4 * len(LABELS)  # class-IL before training: every label for every example, once


@torch.inference_mode()
def test_the_yaml_verbalizer_override_is_what_the_backbone_trains_on_and_scores(tokenizers, tmp_path):
    import transformers

    from clft.registry import benchmarks

    rows = [("pos", "i love it"), ("neg", "awful"), ("pos", "a goal"), ("neg", "a long campaign")]
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"{text},{label}\n" for label, text in rows))
    bench = benchmarks.build({"name": "text-classification", "files": {"train": str(tmp_path / "train.csv"),
                                                                       "test": str(tmp_path / "train.csv")},
                              "label_texts": {"pos": "world news today"}})
    stream = bench.tasks(0)
    name, config = MODELS["llama"]
    vocab = len(transformers.AutoTokenizer.from_pretrained(tokenizers["causal"]))
    backbone = backbones.build({"name": name, "model_config": {**config, "vocab_size": vocab},
                                "tokenizer": tokenizers["causal"], "chat_template": False}, bench, stream)
    encode = lambda text: backbone.tokenizer(" " + text, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert bench.label_names == ["neg", "pos"]
    assert backbone.target_ids == [encode("neg") + [1], encode("world news today") + [1]]
    assert backbone.target_lengths == [2, 4]
    batch = backbone.collate(backbone.prepare(stream[0].train)[:2])
    trained = batch["lm_labels"][0][batch["lm_labels"][0] != -100].tolist()
    assert trained == backbone.target_ids[batch["label"][0]]  # the target of training is the override
    assert "world news today" in backbone.tokenizer.decode(batch["prompt_ids"][0])  # and the option listed


@torch.inference_mode()
def test_text_to_text_evaluation_batches_are_length_sorted(tokenizers, monkeypatch):
    """The runner's evaluation reads the backbone's token counts: longest prompts first, so
    each batch pads little (clft.data.sampling.eval_batches)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from clft.engine.distributed import Parallel
    from clft.engine.runner import evaluate_task, predictor

    backbone, stream = build(tokenizers, "llama", scenario="task-il")
    task = Task(0, "both", (0, 1, 2, 3), stream[0].test, datasets.concatenate_datasets([t.test for t in stream]))
    widths, collate = [], backbone.collate
    monkeypatch.setattr(backbone, "collate", lambda examples: widths.append(
        [len(ids) + len(ins) for ids, ins in zip(examples["text_ids"], examples["instruction_ids"])])
        or collate(examples))
    run = SimpleNamespace(backbone=backbone, train=SimpleNamespace(eval_batch_size=3), parallel=Parallel(),
                          devices=SimpleNamespace(autocast=nullcontext), scenario="task-il", strategies=[])
    evaluate_task(run, task, predictor(run))
    flat = [n for batch in widths for n in batch]
    assert len(flat) == len(task.test) and flat == sorted(flat, reverse=True) and len(set(flat)) > 2
