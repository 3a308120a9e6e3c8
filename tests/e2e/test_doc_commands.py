"""Every `clft` example of the README and of `clft --help` runs, as written.

Commands come from the README's ```bash blocks, its inline `clft ...` spans and the examples in each
command's --help (the epilog's lines, and every ``e.g.`` of an option's help). They run in a scratch
folder holding what they name: ``exp.yaml`` (a tiny experiment: EXP.yaml, my-exp.yaml, NAME),
``results/quickstart`` and ``results/hsu2018-split-mnist`` (copies of the committed folders). A
placeholder is replaced by a concrete value (:data:`PLACEHOLDERS`), ``a|b|c`` runs each choice. The
full-size presets (the quickstart without a training override, clinc150-lora) run with
``--dry-run`` (plan, configs, overrides and the stream, no training): they take minutes to train.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from clft.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXPERIMENT = {"name": "tiny-doc", "seeds": [0], "scenarios": ["class-il"], "benchmark": {"name": "split-digits"},
              "backbone": {"name": "mlp", "hidden": [16]}, "compare": ["finetune", {"name": "ewc", "lam": 10.0}],
              "train": {"epochs": 1, "batch_size": 64, "lr": 0.01}}
#: Placeholder -> the value the test runs (words matched whole).
PLACEHOLDERS = {"EXP.yaml": "exp.yaml", "my-exp.yaml": "exp.yaml", "EXP": "exp.yaml", "NAME": "exp",
                "DIR": "results/hsu2018-split-mnist", "K": "compare.1.lam", "a,b,c": "1,10,100", "N": "2"}
#: Minutes of training as written: planned and checked with --dry-run instead.
FULL_SIZE = ("clinc150-lora",)


def readme_commands() -> list[str]:
    """Every `clft` command of the README: lines of ```bash blocks (comments cut) and inline spans."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [re.split(r"\s#\s", line)[0].strip() for block in blocks for line in block.splitlines()]
    inline = [" ".join(span.split()) for span in re.findall(r"`(clft(?:\s[^`]*)?)`", README)]
    return list(dict.fromkeys([line for line in lines if line.startswith("clft")] + inline))


def help_commands() -> list[str]:
    """The examples of every command's --help: epilog lines starting with `clft`, and each ``e.g.``."""
    parser = build_parser()
    commands = []
    for name, sub in parser.commands.items():
        text = sub.format_help()
        commands += [line.split("#")[0].strip() for line in text.splitlines() if line.strip().startswith("clft ")]
        for action in sub._actions:
            for example in re.findall(r"e\.g\. (.+?)(?:\)| \(|$)", action.help or ""):
                commands.append(as_command(name, action, example.strip()))
    return list(dict.fromkeys(commands))


def as_command(name: str, action, example: str) -> str:
    """A runnable command for an option's ``e.g.`` (on the quickstart for `run`, on exp.yaml for `tune`)."""
    if name == "run":
        option = action.option_strings[0] if action.option_strings else ""
        small = f"--out eg-{action.dest} train.epochs=1 seeds=[0] scenarios=[class-il]"
        return f"clft run quickstart {small} {option} {example}".replace("  ", " ")
    if name == "tune":
        return f"clft tune exp.yaml --out tuned --key {example} --values 1,10"
    return f"clft {name} {example}"


def expand(command: str, scratch: Path) -> list[list[str]]:
    """The argument lists a documented command stands for (placeholders replaced, choices expanded)."""
    command = command.replace("/tmp/", f"{scratch}/tmp/")
    for placeholder, value in PLACEHOLDERS.items():
        command = re.sub(rf"(?<![\w./-]){re.escape(placeholder)}(?![\w-])", value, command)
    optional = re.search(r"\[([a-z]+(?:\|[a-z]+)+)\]", command)
    if optional:
        return [arg for choice in ["", *optional[1].split("|")]
                for arg in expand(command.replace(optional[0], choice).strip(), scratch)]
    choices = re.search(r"\b(\w+(?:\|\w+)+)\b", command)
    if choices:
        return [arg for choice in choices[1].split("|") for arg in expand(command.replace(choices[1], choice), scratch)]
    words = shlex.split(command)[1:] or ["run"]  # `clft` alone runs the quickstart
    if words[0] == "run" and (is_full_size(words) or "--help" in words):
        words += [] if "--help" in words else ["--dry-run"]
    return [words]


def is_full_size(words: list[str]) -> bool:
    """A preset run that would train for minutes: the quickstart with no training override, clinc150-lora."""
    named = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    preset = named[0] if named else "quickstart"
    return preset in FULL_SIZE or (preset == "quickstart" and not any(w.startswith("train.epochs=") for w in words))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "exp.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    for name, source in (("quickstart", "quickstart-reference"), ("hsu2018-split-mnist", "hsu2018-split-mnist")):
        shutil.copytree(ROOT / "results" / source, folder / "results" / name)
    (folder / "tmp").mkdir()
    return folder


def test_the_examples_are_found():
    readme, helps = readme_commands(), help_commands()
    assert {"clft run", "clft show replay", "clft --version", "clft table"} <= set(readme)
    assert "clft run quickstart --out /tmp/qs train.epochs=1 seeds=[0] compare.1.lam=50" in helps
    assert any("--restart-run class-il/replay/seed0" in c for c in helps)
    assert any(c.startswith("clft run EXP.yaml --verify-stale") for c in readme)


def run_in_process(args: list[str]) -> int:
    """``clft ARGS`` through ``clft.cli.main`` (``--help``/``--version`` exit through SystemExit)."""
    from clft.cli import main

    try:
        return main(args)
    except SystemExit as stop:
        return int(stop.code or 0)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["help", "readme"])
def test_every_documented_command_runs(source, scratch, monkeypatch, capsys):
    if not os.environ.get("CLFT_DATA_DIR"):
        pytest.skip("CLFT_DATA_DIR is not set (clinc150-lora's stream needs the public datasets)")
    # the commands run in a scratch folder: a relative CLFT_DATA_DIR (the Makefile's ../shared/data) is the caller's
    monkeypatch.setenv("CLFT_DATA_DIR", str(Path(os.environ["CLFT_DATA_DIR"]).resolve()))
    monkeypatch.chdir(scratch)
    failures = []
    for command in help_commands() if source == "help" else readme_commands():
        for args in expand(command, scratch):
            status = run_in_process(args)
            err = capsys.readouterr().err
            if status != 0:
                failures.append(f"{command!r} as {args}: exit {status}: {err.strip()[-300:]}")
    assert not failures, "\n".join(failures)
