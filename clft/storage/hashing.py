"""File digests: ``file_sha256(path)`` is the SHA-256 hex digest of the file's bytes, read in 1 MiB blocks.

Uncached on purpose: a checkpoint is re-hashed at every load, since a rewrite within the file system's mtime
granularity would pass a (size, mtime) cache. Callers hashing a large file that does not change between
reads (the packaged GGUF, ``clft.backbones.packaged_llm``) cache the result themselves.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
