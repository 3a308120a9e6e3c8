"""The published: block schema and clft table --reference."""

import json

import pytest

from clft.config import make_dataclass_instance
from clft.config.experiment import ExperimentConfig
from clft.errors import ConfigError, DataError
from clft.results.reference import render_reference

BLOCK = {"source": "Hsu et al. 2018", "table": "Table 2",
         "cells": {"task-il": {"finetune": {"mean": 93.46, "std": 2.01}, "ewc": {"mean": 97.70, "std": 0.81}},
                   "class-il": {"ewc": {"mean": 19.80, "std": 0.05, "table": "Table 3"}}}}


def experiment(published, **more):
    raw = {"compare": ["finetune", "ewc"], "scenarios": ["task-il", "class-il"], "published": published, **more}
    return make_dataclass_instance(ExperimentConfig, raw, where="experiment")


def test_a_valid_block_is_accepted():
    assert experiment(BLOCK).published["cells"]["task-il"]["ewc"]["mean"] == 97.70


@pytest.mark.parametrize("change, message", [
    ({"cells": {"task-il": {"lwf": {"mean": 1.0}}}}, "'lwf' is not an entry label; labels: finetune, ewc"),
    ({"cells": {"domain-il": {"ewc": {"mean": 1.0}}}}, "scenario 'domain-il' is not run"),
    ({"cells": {"task-li": {"ewc": {"mean": 1.0}}}}, "unknown scenario 'task-li'"),
    ({"source": None}, "cells.task-il.finetune: needs a source and a table"),
    ({"unit": "percentage"}, "published.unit: 'percentage' is not valid"),
    ({"metric": "accuracy"}, "metric 'accuracy' is not one of acc, bwt"),
    ({"cells": {"task-il": {"ewc": {"mean": 1.0, "sd": 2}}}}, "unknown key 'sd'"),
    ({"o-lora": 75.8}, "published: unknown key 'o-lora'"),
])
def test_bad_blocks_fail_in_one_line(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        experiment({**BLOCK, **change})


def write(directory, label, scenario, seed, final, published=BLOCK):
    run = {"schema_version": 1, "experiment": "e", "run": f"{label}/seed{seed}", "label": label, "strategy": label,
           "seed": seed, "scenario": scenario, "tasks": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}],
           "acc": [[0.9, 0.0], final], "baseline_acc": [0.0, 0.0], "config": {"published": published},
           "finished_at": f"2026-01-0{seed + 1}"}
    path = directory / scenario / label / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run))


def test_reference_table_by_hand(tmp_path):
    write(tmp_path, "finetune", "task-il", 0, [0.90, 0.96])  # ACC 93.0 and 94.0 -> 93.50 ± 0.71
    write(tmp_path, "finetune", "task-il", 1, [0.92, 0.96])
    write(tmp_path, "ewc", "task-il", 0, [0.94, 0.98])  # ACC 96.00: Δ −1.70 > max(2·0.81, 1) = 1.62 -> flag
    write(tmp_path, "ewc", "class-il", 0, [0.0, 0.40])  # ACC 20.00: Δ +0.20 ≤ max(0.10, 1 point)
    lines = render_reference(tmp_path, "md").splitlines()
    assert lines[2] == "| task-il | finetune | 93.50 ± 0.71 | 2 | 93.46 ± 2.01 | +0.04 |  | Hsu et al. 2018, Table 2 |"
    assert lines[3] == "| task-il | ewc | 96.00 | 1 | 97.70 ± 0.81 | -1.70 | ✗ | Hsu et al. 2018, Table 2 |"
    assert lines[4] == "| class-il | ewc | 20.00 | 1 | 19.80 ± 0.05 | +0.20 |  | Hsu et al. 2018, Table 3 |"
    assert "(1 of 3 cells)" in lines[6]
    rows = render_reference(tmp_path, "csv").splitlines()
    assert rows[2].split(",")[7:9] == [repr(96.0 - 97.70), "1"]
    assert rows[2].split(",")[3:5] == ["", "1"] and rows[1].split(",")[3] != ""  # one seed: no std; two: a std


def test_reference_without_a_block_is_a_one_line_error(cli, tmp_path):
    write(tmp_path, "ewc", "task-il", 0, [0.9, 0.9], published={})
    done = cli("table", str(tmp_path), "--reference")
    assert done.returncode == 2 and done.stderr.startswith("clft: error: no run here records a published block")


def test_blocks_of_several_presets_are_merged(tmp_path):
    # one preset per scenario (as the Hsu folder): each run records only its own scenario's cells
    task_block = {"source": "Hsu et al. 2018", "table": "Table 2", "cells": {"task-il": BLOCK["cells"]["task-il"]}}
    class_block = {"source": "Other 2020", "table": "Table 9", "cells": {"class-il": BLOCK["cells"]["class-il"]}}
    write(tmp_path, "finetune", "task-il", 0, [0.90, 0.96], published=task_block)
    write(tmp_path, "ewc", "task-il", 0, [0.94, 0.98], published=task_block)
    write(tmp_path, "ewc", "class-il", 1, [0.0, 0.40], published=class_block)  # the latest run
    lines = render_reference(tmp_path, "md").splitlines()
    assert [line.split(" | ")[:2] for line in lines[2:5]] == [["| task-il", "finetune"], ["| task-il", "ewc"],
                                                              ["| class-il", "ewc"]]
    assert lines[2].endswith("| Hsu et al. 2018, Table 2 |") and lines[4].endswith("| Other 2020, Table 3 |")


def test_blocks_in_different_units_are_not_merged(tmp_path):
    write(tmp_path, "ewc", "task-il", 0, [0.9, 0.9])
    write(tmp_path, "ewc", "class-il", 1, [0.9, 0.9], published={**BLOCK, "unit": "fraction"})
    with pytest.raises(DataError, match="published blocks disagree: metric 'acc' in fraction vs 'acc' in percent"):
        render_reference(tmp_path, "md")
