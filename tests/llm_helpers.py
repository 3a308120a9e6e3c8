"""A tiny random Llama (hidden size 32, two layers) with a WordLevel tokenizer, and a tiny
instruction-tuning stream as JSONL files: the offline setup of the LLM tests."""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0..3, as the Llama config below expects
CHAT_TEMPLATE = ("{% for m in messages %}<s> user : {{ m['content'] }} </s>{% endfor %}"
                 "{% if add_generation_prompt %}<s> bot :{% endif %}")
INSTRUCTIONS = {"colours": "name the colour of the thing", "animals": "say which animal makes the sound",
                "general": "repeat the word"}
EXAMPLES = {
    "colours": [("sky", "blue"), ("fresh grass", "green"), ("snow", "white"), ("a lump of coal", "black"),
                ("blood", "red"), ("the sun at noon", "yellow"), ("sea", "blue"), ("a leaf in spring", "green")],
    "animals": [("woof", "a dog barks"), ("meow", "a cat purrs"), ("moo", "a cow eats"), ("quack", "a duck swims"),
                ("oink", "a pig eats"), ("baa", "a sheep runs"), ("neigh", "a horse runs"), ("hiss", "a cat purrs")],
    "general": [("one", "one"), ("two", "two"), ("three", "three"), ("four", "four")],
}
PROMPT_WORDS = "definition : now complete the following example - input output options answer yes , . user bot"


def tiny_llama_config(vocab_size: int) -> dict:
    return {"model_type": "llama", "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 256, "bos_token_id": 3, "eos_token_id": 1, "pad_token_id": 0,
            "tie_word_embeddings": False, "initializer_range": 0.3}


def save_tokenizer(path: Path, chat: bool = False, words: str = "") -> int:
    """A lower-casing WordLevel tokenizer over the helper's words and ``words`` (BOS prepended); returns its size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    corpus = [PROMPT_WORDS, words, *INSTRUCTIONS.values()] + [f"{a} {b}" for rows in EXAMPLES.values() for a, b in rows]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 3)])
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return len(fast)


def tiny_llama_backbone(tokenizer_dir: Path, vocab_size: int, **options) -> dict:
    """A backbone block: hf-causal-lm on a random tiny Llama."""
    return {"name": "hf-causal-lm", "model_config": tiny_llama_config(vocab_size), "tokenizer": str(tokenizer_dir),
            **options}


def write_instruction_files(folder: Path) -> dict[str, str]:
    """train/test JSONL files of the helper's tasks (instruction, input, output, task)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"instruction": INSTRUCTIONS[task], "input": a, "output": b, "task": task}
            for task, pairs in EXAMPLES.items() for a, b in pairs]
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"train": str(folder / "train.jsonl"), "test": str(folder / "test.jsonl")}
