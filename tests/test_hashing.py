"""The two file digests: storage's uncached one (checkpoints) and packaged_llm's (size, mtime)-cached one."""

import hashlib
import os

from clft.backbones.packaged_llm import gguf_sha256
from clft.storage.hashing import BLOCK_BYTES, file_sha256


def test_file_sha256_hashes_every_block(tmp_path):
    path = tmp_path / "blob.bin"
    data = os.urandom(2 * BLOCK_BYTES + 123)  # two whole blocks and a partial one
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_a_rewrite_that_keeps_size_and_mtime_is_seen_by_the_checkpoint_hash_only(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"a" * 1000)
    first = gguf_sha256(path)
    stat = path.stat()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert gguf_sha256(path) == first  # cached by (path, size, mtime): the GGUF is read-only package data
    assert file_sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest() != first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert gguf_sha256(path) == file_sha256(path)  # a new mtime is hashed again
