"""Start-up cost: an MLP run imports neither the HF stack, nor plotting, nor more of torch's compiler
than a plain PyTorch loop does (torch.optim's first ``Optimizer`` imports ``torch._dynamo`` itself)."""

import json
import os
import subprocess
import sys
import textwrap

HEAVY = ("transformers", "peft", "matplotlib")
COMPILER = ("torch._dynamo", "torch._inductor")

RUN = textwrap.dedent("""
    import json, sys
    from clft.cli import main
    code = main(["run", sys.argv[1], "--out", sys.argv[2], "--no-plots", "--quiet"])
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
""")
PLAIN = textwrap.dedent("""
    import json, sys, torch
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    print(json.dumps({"code": 0, "modules": sorted(sys.modules)}))
""")


def imported(script: str, *args: str, env: dict | None = None) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    return set(report["modules"])


def test_mlp_run_imports_no_hf_stack_no_plotting_and_no_extra_compiler_modules(tmp_path):
    experiment = tmp_path / "mlp.yaml"
    experiment.write_text(
        "name: startup\nseeds: [0]\nbenchmark: {name: split-digits, n_tasks: 2}\n"
        "backbone: {name: mlp, hidden: [8]}\ncompare: [finetune, ewc]\n"
        "train: {epochs: 1, max_steps_per_task: 2, threads: 1}\n"
    )
    clft_modules = imported(RUN, str(experiment), str(tmp_path / "out"))
    assert (tmp_path / "out" / "class-il" / "ewc" / "seed0.json").is_file()
    assert sorted(m for m in HEAVY if m in clft_modules) == []
    compiler = {m for m in clft_modules if m.startswith(COMPILER)}
    assert compiler - {m for m in imported(PLAIN) if m.startswith(COMPILER)} == set()


def test_a_run_on_a_cached_stream_imports_no_scikit_learn_and_no_scipy(tmp_path):
    """split-digits is built with scikit-learn (load_digits); once the stream is cached, a run that
    holds nothing out (no ``eval_split: val``) needs no scikit-learn (about 1 s of imports), and a run
    without GEM whose table tests nothing (one seed) needs no scipy (about 0.8 s)."""
    experiment = tmp_path / "mlp.yaml"
    experiment.write_text(
        "name: startup\nseeds: [0]\nbenchmark: {name: split-digits, n_tasks: 2}\n"
        "backbone: {name: mlp, hidden: [8]}\ncompare: [finetune]\n"
        "train: {epochs: 1, max_steps_per_task: 2, threads: 1}\n"
    )
    env = {**os.environ, "CLFT_CACHE_DIR": str(tmp_path / "cache"), "CLFT_STREAM_CACHE": "1"}
    first = imported(RUN, str(experiment), str(tmp_path / "first"), env=env)
    second = imported(RUN, str(experiment), str(tmp_path / "second"), env=env)
    assert "sklearn" in first  # the stream was built, with scikit-learn
    assert "sklearn" not in second
    assert sorted(m for m in second if m == "scipy" or m.startswith("scipy.")) == []
