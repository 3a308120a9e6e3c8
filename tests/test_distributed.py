"""One run on two processes (torchrun, gloo on the CPU) gives the single-process matrix (clft/engine/distributed.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clft.engine.distributed import Parallel

STRATEGIES = ["finetune", [{"name": "replay", "memory_size": 40}, {"name": "ewc", "lam": 50.0, "fisher_samples": 32}],
              {"name": "si"}, {"name": "der", "memory_size": 40}, {"name": "agem", "memory_size": 40}, {"name": "lwf"}]


@pytest.mark.parametrize(("indices", "world", "expected"), [
    (list(range(15)), 2, [list(range(8)), list(range(8, 15))]),
    ([4, 9, 1], 2, [[4, 9], [1]]),
    ([7], 2, [[7], []]),
])
def test_each_process_takes_a_contiguous_slice_of_the_global_batch(indices, world, expected):
    assert [Parallel(world, rank).shard(indices) for rank in range(world)] == expected


def test_eval_batches_are_dealt_round_robin():
    assert [Parallel(3, rank).mine(list("abcdefg")) for rank in range(3)] == [list("adg"), list("be"), list("cf")]


def test_one_process_is_a_no_op():
    one = Parallel()
    assert not one.active and one.is_main and one.sum(3) == 3 and one.broadcast("x") == "x"


def test_close_tears_the_process_group_down(tmp_path):
    # a leftover gloo group can abort the process at exit (pytorch/pytorch#190489)
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    Parallel().close()
    assert not dist.is_initialized()
    Parallel().close()  # without a group: nothing to do


def matrices(root) -> dict:
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("seed*.json"))}


@pytest.mark.slow
def test_two_gloo_processes_give_the_single_process_matrix(write_experiment, tmp_path):
    # batch 15: every global batch splits 8 + 7, so the n_local / N weighting is exercised
    exp = write_experiment(compare=STRATEGIES, strategies=None, backbone={"name": "mlp", "hidden": [32]},
                           train={"epochs": 1, "batch_size": 15, "lr": 0.01, "max_steps_per_task": 8, "threads": 1})
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["run", str(exp), "-v", "--no-plots", "--out"]  # -v: each run's start ("on 2 processes")
    subprocess.run([sys.executable, "-m", "clft", *common, str(one)], check=True, capture_output=True, timeout=600)
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "clft",
                               *common, str(two)], capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "terminate called" not in launched.stderr and "destroyed" not in launched.stderr
    assert launched.stderr.count("on 2 processes") == len(STRATEGIES)  # really two processes, main logging once
    single, parallel = matrices(one), matrices(two)
    assert sorted(single) == sorted(parallel) and len(single) == len(STRATEGIES)
    for name, result in single.items():
        for key in ("acc", "baseline_acc"):
            diff = np.abs(np.array(result[key]) - np.array(parallel[name][key])).max()
            assert diff <= 1e-4, f"{name} {key} differs by {diff}"
        assert result["extra"] == parallel[name]["extra"]
    assert not [p for p in two.rglob("*") if p.is_file() and (p.suffix == ".lock" or ".checkpoints" in p.parts)]
