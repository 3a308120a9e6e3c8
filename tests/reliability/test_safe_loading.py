"""Safe loading: no pickles, no remote code unless asked (and recorded), plugins only from where the user says.

- The package never unpickles: checkpoints are safetensors + JSON (``clft.storage.state_io``);
  a grep of the source rejects ``torch.load(`` without ``weights_only=True`` and any
  ``pickle``/``dill``/``joblib`` load.
- ``trust_remote_code`` is False unless the experiment sets it; transformers receives
  exactly that value, and the run JSON's resolved config records it.
- Plugins come from each registry's built-in package (a constant clft module name,
  imported lazily) and from installed entry points (``tests/test_registry.py``): no
  directory scanning, no ``sys.path`` or ``chdir`` tricks; a plugin-looking file in the
  working, experiment or results folder is never imported.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from reliability_helpers import experiment, write_yaml

import clft
from clft.cli import main
from clft.config import make_dataclass_instance
from clft.registry import REGISTRIES, Registry, backbones
from clft.sweep.build import resolved_config
from clft.sweep.plan import RunPlan

PACKAGE = Path(clft.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
HF_BACKBONES = [name for name in backbones.names() if name.startswith("hf-")]


def code_lines():
    for path in SOURCES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if code.strip() and not code.lstrip().startswith(('"', "'")):
                yield f"{path.relative_to(PACKAGE.parent)}:{number}", code


def test_nothing_is_unpickled():
    unsafe = [where for where, code in code_lines()
              if ("torch.load(" in code and "weights_only=True" not in code)
              or re.search(r"\b(pickle|cPickle|dill|joblib)\.loads?\(", code)
              or re.search(r"allow_pickle\s*=\s*True", code)]
    assert not unsafe, unsafe


def test_no_directory_scanning_or_import_path_tricks():
    patterns = [r"sys\.path", r"os\.chdir", r"\bpkgutil\b", r"import_module\((?!self\.builtins\))",
                r"spec_from_file_location", r"\brunpy\b", r"\bexec\(", r"__import__\((?!\"collections\.abc\"\))"]
    found = [f"{where}: {code.strip()}" for where, code in code_lines() for p in patterns if re.search(p, code)]
    assert not found, found
    # the one dynamic import: each registry's own built-in package, a constant clft module name
    assert {r.builtins for r in REGISTRIES.values()} == {"clft.strategies", "clft.benchmarks", "clft.backbones"}
    with pytest.raises(ValueError, match="not one of clft's own"):
        Registry("strategies", "evil")
    plugins = "".join((PACKAGE / kind / "__init__.py").read_text() for kind in ("strategies", "benchmarks",
                                                                                "backbones"))
    assert "import" in plugins and not re.search(r"glob|listdir|iterdir|scandir|walk", plugins)


def test_plugin_looking_files_near_the_run_are_never_imported(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported"
    payload = f"open({str(marker)!r}, 'w').write('x')\n"
    for relative in ("evil.py", "clft_evil.py", "strategies/evil.py", "plugins/evil/__init__.py",
                     "out/evil.py", "clft/strategies/evil.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(payload)
    monkeypatch.chdir(tmp_path)
    exp = write_yaml(tmp_path / "exp.yaml", strategies=["evil"])
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet", "--no-plots"]) == 2
    assert "unknown strategy 'evil'" in capsys.readouterr().err
    assert main(["list"]) == 0 and " evil " not in capsys.readouterr().out
    assert all("evil" not in registry.names() for registry in REGISTRIES.values())
    assert not marker.exists()


@pytest.mark.parametrize("name", HF_BACKBONES)
def test_trust_remote_code_is_off_by_default(name):
    config = make_dataclass_instance(backbones.get(name).Config, {}, name)
    assert config.trust_remote_code is False


def stub_run(backbone_name: str, options: dict):
    """What ``resolved_config`` reads of a built run, with a real (validated) backbone config."""
    config = make_dataclass_instance(backbones.get(backbone_name).Config, options, backbone_name)
    bench = SimpleNamespace(name="split-digits", config={"scenario": "class-il"})
    return SimpleNamespace(scenario="class-il", benchmark=bench, strategies=[],
                           backbone=SimpleNamespace(name=backbone_name, config=config))


@pytest.mark.parametrize("options, expected", [({}, False), ({"trust_remote_code": True}, True)])
def test_the_run_json_records_trust_remote_code(options, expected):
    cfg = experiment(backbone={"name": "hf-classifier", **options})
    run = stub_run("hf-classifier", options)
    resolved = resolved_config(cfg, RunPlan([{"name": "finetune"}], None, 0), run)  # result_document's "config"
    assert resolved["backbone"]["trust_remote_code"] is expected


@pytest.mark.parametrize("value", [False, True])
def test_transformers_receives_exactly_the_configured_value(value, monkeypatch):
    import transformers

    from clft.backbones import hf_common

    seen = []

    class Auto:
        @staticmethod
        def from_pretrained(source, **kwargs):
            seen.append(kwargs["trust_remote_code"])
            return SimpleNamespace(pad_token_id=0)

    monkeypatch.setattr(transformers, "AutoTokenizer", Auto)
    monkeypatch.setattr(transformers, "AutoModelForSequenceClassification", Auto)
    monkeypatch.setattr(hf_common, "check_source", lambda source, what: None)  # "some/model" is no real hub id
    config = dataclasses.replace(stub_run("hf-classifier", {"model": "some/model"}).backbone.config,
                                 trust_remote_code=value)
    hf_common.load_tokenizer(config)
    hf_common.load_model("AutoModelForSequenceClassification", config)
    assert seen == [value, value]
