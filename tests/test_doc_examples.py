"""The experiment YAML blocks of README.md and docs/architecture.md are valid experiments."""

import re
from pathlib import Path

import pytest
import yaml

import clft.plugins  # noqa: F401  (registers the built-ins)
from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.registry import strategies
from clft.sweep.plan import plan_runs

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = [(doc, block) for doc in ("README.md", "docs/architecture.md")
          for block in re.findall(r"```yaml\n(.*?)```", (ROOT / doc).read_text(encoding="utf-8"), re.S)]
EXPERIMENTS = [(doc, yaml.safe_load(block)) for doc, block in BLOCKS if "\nname:" in "\n" + block]


@pytest.mark.parametrize("doc, raw", EXPERIMENTS, ids=[f"{doc}:{raw['name']}" for doc, raw in EXPERIMENTS])
def test_documented_experiment_is_valid(doc, raw):
    cfg = make_dataclass_instance(ExperimentConfig, raw, where=doc)
    for plan in plan_runs(cfg):
        for spec in plan.group:
            strategies.resolve(spec)  # every strategy block is valid for its plugin


def test_the_labelled_example_is_documented():
    labelled = next(raw for _, raw in EXPERIMENTS if raw["name"] == "labelled-entries")
    plans = plan_runs(make_dataclass_instance(ExperimentConfig, labelled, where="README"))
    assert [p.label for p in plans[::2]] == ["adam", "sgd", "ewc", "ewc-online"]
    assert plans[2].train.optimizer == "sgd" and plans[0].train.optimizer == "adam"


def test_the_readme_says_why_class_il_ewc_equals_finetune_in_the_quickstart():
    """The README's sentence cites the literature and quotes the committed reference table's class-IL rows."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    table = (ROOT / "results" / "quickstart-reference" / "table.md").read_text(encoding="utf-8")
    acc = {cells[1]: cells[3] for cells in (line.split(" | ") for line in table.splitlines())
           if len(cells) > 4 and cells[0] == "| class-il"}
    assert f"EWC scores like finetune in class-IL (ACC {acc['ewc']} vs {acc['finetune']}" in readme
    assert "Hsu et al. 2018" in readme and "Re-evaluating Continual Learning Scenarios" in readme
