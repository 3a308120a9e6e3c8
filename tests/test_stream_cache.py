"""Built streams cached on disk, keyed by config, seed, code and input files (issue 10)."""

import os
import shutil

import pytest

import clft.benchmarks  # noqa: F401  (registers the built-ins)
from clft.data import stream_cache
from clft.registry import benchmarks


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLFT_STREAM_CACHE", "1")
    monkeypatch.setenv("CLFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CLFT_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file.txt").write_text("v1")
    return tmp_path


def counting(spec: dict):
    bench = benchmarks.build(spec)
    calls = []
    build = bench.tasks
    bench.tasks = lambda seed: calls.append(seed) or build(seed)
    return bench, calls


def test_second_build_reads_the_cache_and_returns_the_same_stream(cache):
    first, calls = counting({"name": "split-digits", "n_tasks": 2})
    built = stream_cache.cached_tasks(first, 3)
    again, again_calls = counting({"name": "split-digits", "n_tasks": 2})
    loaded = stream_cache.cached_tasks(again, 3)
    assert calls == [3] and again_calls == []
    assert [(t.id, t.name, t.classes) for t in loaded] == [(t.id, t.name, t.classes) for t in built]
    for a, b in zip(built, loaded):
        assert a.train.to_dict() == b.train.to_dict() and a.test.to_dict() == b.test.to_dict()
        assert b.train.cache_files  # memory-mapped from the cache folder


def test_key_follows_config_seed_code_and_data_files(cache, monkeypatch):
    bench = benchmarks.build({"name": "split-digits", "n_tasks": 2})
    key = stream_cache.stream_key(bench, 0)
    assert stream_cache.stream_key(bench, 0) == key
    assert stream_cache.stream_key(bench, 1) != key
    assert stream_cache.stream_key(benchmarks.build({"name": "split-digits", "n_tasks": 5}), 0) != key
    data_file = cache / "data" / "file.txt"
    data_file.write_text("v2, longer")
    os.utime(data_file, ns=(1, 1))
    changed_data = stream_cache.stream_key(bench, 0)
    assert changed_data != key
    source = cache / "builder.py"
    source.write_text("A = 1\n")
    monkeypatch.setattr(stream_cache, "BUILDER_SOURCES", (*stream_cache.BUILDER_SOURCES, source))
    with_source = stream_cache.stream_key(bench, 0)
    source.write_text("A = 2\n")
    stream_cache.file_hash.cache_clear()
    assert stream_cache.stream_key(bench, 0) != with_source


def test_cache_off_builds_every_time(cache, monkeypatch):
    monkeypatch.setenv("CLFT_STREAM_CACHE", "0")
    bench, calls = counting({"name": "split-digits", "n_tasks": 2})
    stream_cache.cached_tasks(bench, 0)
    stream_cache.cached_tasks(bench, 0)
    assert calls == [0, 0] and not (cache / "cache").exists()


def test_tokenised_splits_of_a_cached_stream_are_written_once_and_read_back(cache):
    import clft.backbones  # noqa: F401
    from clft.backbones.hf_common import clear_prepared_cache
    from clft.registry import backbones
    from clft.strategies._text import TINY_TEXT_BACKBONE, TINY_TEXT_BENCHMARK

    bench = benchmarks.build(TINY_TEXT_BENCHMARK)
    tasks = stream_cache.cached_tasks(bench, 0)
    backbone = backbones.build(dict(TINY_TEXT_BACKBONE), bench, tasks)
    calls = []
    tokenize = backbone._tokenize
    backbone._tokenize = lambda columns: calls.append(len(columns["text"])) or tokenize(columns)
    first = backbone.prepare(tasks[0].train)
    assert sum(calls) == len(tasks[0].train)
    assert len(list((cache / "cache").rglob("prepared-*.arrow"))) == 1
    clear_prepared_cache()
    again = backbone.prepare(stream_cache.cached_tasks(bench, 0)[0].train)  # as a second process would
    assert sum(calls) == len(tasks[0].train)  # read from disk, not tokenised again
    assert again["input_ids"][:] == first["input_ids"][:]


def test_a_cached_generation_stream_keeps_each_tasks_metric_and_generation_cap(cache):
    from llm_helpers import write_instruction_files

    spec = {"name": "instruction-tuning", "files": write_instruction_files(cache / "files"), "max_new_tokens": 7}
    built = stream_cache.cached_tasks(benchmarks.build(spec), 0)
    bench, calls = counting(spec)
    loaded = stream_cache.cached_tasks(bench, 0)
    assert calls == []  # read back from the cache, not rebuilt
    assert [(t.metric, t.max_new_tokens) for t in loaded] == [(t.metric, t.max_new_tokens) for t in built]
    assert all(t.generative and t.max_new_tokens == 7 for t in loaded)


def fake_entry(root, name: str, size: int, used_ns: int):
    folder = root / name
    (folder / "task000").mkdir(parents=True)
    (folder / "task000" / "data.arrow").write_bytes(b"x" * size)
    (folder / "tasks.json").write_text("[]")
    os.utime(folder / "tasks.json", ns=(used_ns, used_ns))
    return folder


def test_prune_removes_least_recently_used_entries_until_under_the_limit(tmp_path):
    oldest = fake_entry(tmp_path, "a", 1000, 10**18)
    middle = fake_entry(tmp_path, "b", 1000, 2 * 10**18)
    newest = fake_entry(tmp_path, "c", 1000, 3 * 10**18)
    writing = tmp_path / ".d.tmp"  # another writer's temporary folder: no tasks.json yet
    writing.mkdir()
    removed = stream_cache.prune(newest, limit=2100)
    assert removed == [oldest]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.tmp", "b", "c"]
    assert stream_cache.prune(oldest.parent / "b", limit=0) == [newest]  # the kept entry survives even over
    assert middle.is_dir() and writing.is_dir()


def test_a_new_entry_evicts_old_ones_past_the_size_limit_and_reads_refresh_recency(cache, monkeypatch):
    root = cache / "cache" / "streams"
    first = benchmarks.build({"name": "split-digits", "n_tasks": 2})
    stream_cache.cached_tasks(first, 0)
    stream_cache.cached_tasks(first, 1)
    keys = {seed: stream_cache.stream_key(first, seed) for seed in (0, 1)}
    assert sorted(p.name for p in root.iterdir()) == sorted(keys.values())
    os.utime(root / keys[0] / "tasks.json", ns=(1, 1))
    os.utime(root / keys[1] / "tasks.json", ns=(2, 2))
    stream_cache.cached_tasks(first, 0)  # a read: seed 0 becomes the most recently used
    one_entry = max(stream_cache._entry(root / k)[1] for k in keys.values())
    monkeypatch.setenv("CLFT_CACHE_MAX_GB", str(2.5 * one_entry / 1e9))
    stream_cache.cached_tasks(first, 2)
    assert sorted(p.name for p in root.iterdir()) == sorted([keys[0], stream_cache.stream_key(first, 2)])


@pytest.mark.parametrize("value", ["ten", "-1", "nan"])
def test_a_bad_cache_limit_is_a_one_line_error_naming_the_variable(value, monkeypatch):
    monkeypatch.setenv("CLFT_CACHE_MAX_GB", value)
    with pytest.raises(stream_cache.ConfigError, match=r"CLFT_CACHE_MAX_GB=.*number of gigabytes >= 0"):
        stream_cache.max_bytes()


def test_a_vanished_or_unfinished_folder_is_not_an_entry(tmp_path):
    (tmp_path / ".writing").mkdir()
    assert stream_cache._entry(tmp_path / "pruned-by-another-process") is None
    assert stream_cache._entry(tmp_path / ".writing") is None
    assert stream_cache._entry(fake_entry(tmp_path, "a", 100, 5)) == (5, 102)  # 100 bytes + "[]"



def test_a_key_whose_entry_was_pruned_under_a_reader_is_cached_again(cache):
    """A reader's tokenised copy can recreate a pruned entry's folder without tasks.json; the next build
    of that key must replace the leftovers and cache the stream again (not build it afresh forever)."""
    bench = benchmarks.build({"name": "split-digits", "n_tasks": 2})
    folder = cache / "cache" / "streams" / stream_cache.stream_key(bench, 0)
    stream_cache.cached_tasks(bench, 0)
    shutil.rmtree(folder)  # pruned by another process ...
    (folder / "task000" / "train").mkdir(parents=True)  # ... then a reader's tokenised copy landed
    (folder / "task000" / "train" / "prepared-0123.arrow").write_bytes(b"tokens")
    again, calls = counting({"name": "split-digits", "n_tasks": 2})
    loaded = stream_cache.cached_tasks(again, 0)
    assert calls == [0] and (folder / "tasks.json").is_file()  # rebuilt once, and cached
    assert not (folder / "task000" / "train" / "prepared-0123.arrow").exists()
    assert loaded[0].train.cache_files  # read back from the new entry
    later, later_calls = counting({"name": "split-digits", "n_tasks": 2})
    assert len(stream_cache.cached_tasks(later, 0)) == 2 and later_calls == []  # the next run reads it

def test_a_read_only_cache_is_still_read_not_rebuilt(cache, monkeypatch):
    stream_cache.cached_tasks(benchmarks.build({"name": "split-digits", "n_tasks": 2}), 0)

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(stream_cache.os, "utime", read_only)
    again, calls = counting({"name": "split-digits", "n_tasks": 2})
    loaded = stream_cache.cached_tasks(again, 0)
    assert calls == [] and loaded[0].train.cache_files
