"""Where a model or tokenizer will come from, checked before transformers is asked to load it.

``from_pretrained`` of a hub id that is neither a local folder nor in the HuggingFace cache
goes to the network; without one, huggingface_hub retries for about a minute and then raises
a several-line error. ``check_source`` answers first, in one line (a ``ConfigError``):

- a local folder is used as it is; for a tokenizer it must hold tokenizer files;
- a hub id in the cache (``$HF_HUB_CACHE/models--org--name``) is left to transformers;
- otherwise, with ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set, or when the hub's
  endpoint (``HF_ENDPOINT``) does not accept a TCP connection within ``CONNECT_TIMEOUT``
  seconds, the model cannot be fetched: say so, naming it. (Behind an HTTP proxy the
  endpoint is not probed.)
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from clft.errors import ConfigError

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for the hub's endpoint to accept a connection."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model", "merges.txt")
"""Any one of these makes a folder a tokenizer's (fast, WordPiece, BPE and SentencePiece tokenizers)."""
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def check_source(source: str, what: str) -> None:
    """ConfigError naming ``what`` (``model``, ``tokenizer``) and ``source`` when it cannot be loaded:
    a local folder without tokenizer files, or a hub id neither cached nor reachable (module docstring)."""
    path = Path(source).expanduser()
    if path.exists():
        if what == "tokenizer" and path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise ConfigError(f"tokenizer: the folder {source} holds no tokenizer files "
                              f"({', '.join(TOKENIZER_FILES)}); add them, or set the backbone's 'tokenizer' option "
                              "to a tokenizer's name or folder")
        return
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ConfigError(f"cannot load {what} {source!r}: no such folder")
    if _cached(source):
        return
    why = "HF_HUB_OFFLINE is set" if _offline() else _unreachable()
    if why:
        raise ConfigError(f"{what} {source!r} is neither a local folder nor in the HuggingFace cache, and {why}; "
                          "download it where there is a network, or give a local folder")


def _cached(repo_id: str) -> bool:
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir()


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("TRANSFORMERS_OFFLINE", "").upper() in ("1", "ON", "YES",
                                                                                                     "TRUE")


def _unreachable() -> str | None:
    """Why the hub's endpoint cannot be reached (None: it can, or a proxy stands between)."""
    from huggingface_hub import constants

    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"{constants.ENDPOINT} cannot be reached ({reason})"
    return None
