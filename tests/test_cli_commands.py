"""`clft --version`, `clft show NAME`, and `clft table/plot/report` without a folder."""

from __future__ import annotations

import inspect
import shutil

import pytest
from test_tables import write_run

from clft.cli import main
from clft.config import config_fields
from clft.registry import REGISTRIES, strategies
from clft.results.provenance import code_identity


def test_version_names_the_release_and_the_code(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("clft 0.1.0 (code ") and code_identity()["source_sha256"][:8] in text


def test_show_replay_explains_every_option(capsys):
    assert main(["show", "replay"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("strategy replay (distribution clft ")
    assert inspect.cleandoc(strategies.get("replay").__doc__).splitlines()[0] in text
    assert "    replay_batch_size: int | None = null\n        Examples replayed per step;" in text
    assert "    memory_size: int = 200\n" in text


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_show_lists_each_field_of_every_plugin_with_type_default_and_doc(kind):
    from clft.config.show import show

    for name in REGISTRIES[kind].names():
        text = show(name)
        assert f"{REGISTRIES[kind].singular} {name} (distribution " in text
        for field in config_fields(REGISTRIES[kind].get(name).Config):
            assert f"{field.name}: {field.type} = {field.default}\n" in text + "\n", (name, field)
            assert field.doc and inspect.cleandoc(field.doc).splitlines()[0] in text, (name, field.name)


def test_show_of_an_unknown_name_is_one_line(capsys):
    assert main(["show", "replayy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no strategy, benchmark or backbone is called 'replayy'" in err
    assert "replay" in err and "split-digits" in err and "mlp" in err


def test_table_plot_report_default_to_the_quickstart_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for command in ("table", "plot", "report"):
        assert main([command]) == 2
        assert "no folder given and results/quickstart does not exist; run `clft run` first" in capsys.readouterr().err
    write_run(tmp_path / "results" / "split-mnist", "finetune", 0, [[0.9, 0.1], [0.2, 0.8]])
    (tmp_path / "results" / "other").mkdir()
    assert main(["table"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "folders under results/: other, split-mnist" in err
    shutil.move(tmp_path / "results" / "split-mnist", tmp_path / "results" / "quickstart")
    assert main(["table"]) == 0 and "| finetune |" in capsys.readouterr().out
    assert main(["plot"]) == 0 and (tmp_path / "results" / "quickstart" / "plots").is_dir()
    assert main(["report"]) == 0 and (tmp_path / "results" / "quickstart" / "report.html").is_file()
