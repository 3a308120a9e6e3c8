"""Classifying a planned run against the result on disk."""

from clft.results.staleness import DONE, OTHER_CONFIG, STALE, TODO, config_hash, plan_summary, stale_error, status_of

CONFIG = {"name": "x", "train": {"lr": 0.1}, "published": {}, "description": "a"}
ME = {"source_sha256": "aaaa", "git_commit": None, "git_dirty": None}


def result(config=CONFIG, source="aaaa"):
    doc = {"config": config}
    if source is not None:
        doc["code"] = {"source_sha256": source, "git_commit": "1234567abc", "git_dirty": False}
    return doc


def test_status_of_each_case():
    digest = config_hash(CONFIG)
    assert status_of(None, digest, ME) == TODO
    assert status_of(result(), digest, ME) == DONE
    assert status_of(result(source="bbbb"), digest, ME) == STALE
    assert status_of(result(source=None), digest, ME) == STALE  # written before code identities
    assert status_of(result(config={**CONFIG, "train": {"lr": 0.2}}), digest, ME) == OTHER_CONFIG


def test_hash_ignores_published_and_description_only():
    base = config_hash(CONFIG)
    assert config_hash({**CONFIG, "published": {"cells": {}}, "description": "b"}) == base
    assert config_hash({**CONFIG, "name": "y"}) != base


def test_stale_error_is_one_line_with_the_codes_and_the_flag(tmp_path):
    error = stale_error([result(source="bbbbbbbbbb"), result(source=None)], 5, tmp_path, ME)
    text = str(error)
    assert "\n" not in text and error.exit_code == 2
    assert text.startswith(f"2 of 5 runs in {tmp_path} were made by other code (")
    assert "bbbbbbbb (commit 1234567): 1 run" in text and "no code identity: 1 run" in text
    assert "pass --rerun-stale" in text


def test_plan_summary():
    assert plan_summary([DONE, STALE, TODO, TODO]) == "4 planned run(s): 1 done, 1 stale, 2 to do"
