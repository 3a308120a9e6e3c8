"""Which committed results would move at HEAD: re-run one seed of every run group and compare.

    python results/moved.py                       # every folder under results/ holding run JSONs
    python results/moved.py strategies-clinc150 quickstart-reference --jobs 2
    python results/moved.py --list                # the runs it would make, nothing trained

A run group is one committed run configuration less its seed (a folder's scenario x row, and for
a tuning folder also the grid point). For each group the run of the lowest seed is made again
here from the resolved config its JSON records (``config``, less its ``published`` numbers, which name
every row of the experiment where the recorded config has one), in a temporary folder, and its
accuracy matrix, zero-shot row and general-ability rows are compared bit for bit with the
stored ones. A recorded config that the current code no longer accepts counts as moved (the
folder must be regenerated with today's options). Prints one line per group and, last, the
folders that moved; exits 1 when any did.

Needs what the folders' presets need (``CLFT_DATA_DIR`` for the real-data ones, ``make llm``
for SmolLM2). Cost: one run per group, e.g. about 20 min for strategies-clinc150 on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent
COMPARED = ("acc", "baseline_acc", "general")


def committed_folders(root: Path = RESULTS) -> list[Path]:
    """Every direct subfolder of ``root`` holding at least one run JSON."""
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.rglob("seed*.json")))


def group_key(run: dict, folder: Path) -> str:
    """The run's path under ``folder`` without its seed file: ``[grid point/]scenario/label``."""
    return Path(run["_path"]).parent.relative_to(folder).as_posix()


def representatives(folder: Path) -> list[dict]:
    """The lowest-seed run of every group in ``folder`` (verified by ``clft.results.load_results``)."""
    from clft.results import load_results

    chosen: dict[str, dict] = {}
    for run in load_results(folder):
        key = group_key(run, folder)
        if key not in chosen or run["seed"] < chosen[key]["seed"]:
            chosen[key] = run
    return [chosen[key] for key in sorted(chosen)]


def rerun(run: dict) -> dict:
    """The run made again from its recorded config: {compared key: value}, or {"error": text}."""
    from clft.config import make_dataclass_instance
    from clft.errors import ClftError
    from clft.experiment import ExperimentConfig
    from clft.sweep import run_experiment

    recorded = {key: value for key, value in run["config"].items() if key != "published"}
    try:  # the published numbers name every row of the experiment, the recorded config one
        cfg = make_dataclass_instance(ExperimentConfig, recorded, where="recorded config")
        with tempfile.TemporaryDirectory() as out:
            (path,) = run_experiment(cfg, Path(out), progress=False, log=lambda message: None)
            again = json.loads(path.read_text(encoding="utf-8"))
    except (ClftError, ValueError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {key: again.get(key) for key in COMPARED}


def verdict(stored: dict, again: dict) -> str:
    """``same``, or what moved: the error, or the largest change of a matrix cell and the final ACC."""
    if "error" in again:
        return f"moved (config no longer runs: {again['error']})"
    if all(stored.get(key) == again.get(key) for key in COMPARED):
        return "same"
    before, after = stored["acc"], again["acc"]
    cells = [abs(a - b) for row_a, row_b in zip(before, after) for a, b in zip(row_a, row_b)
             if a is not None and b is not None]
    acc = lambda rows: sum(rows[-1]) / len(rows[-1])  # noqa: E731
    return f"moved (max |Δ| {max(cells, default=0.0):.4f}; final ACC {acc(before):.4f} -> {acc(after):.4f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", help="folder names under results/ (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--list", action="store_true", help="print the runs it would make and stop")
    args = parser.parse_args(argv)
    folders = [RESULTS / name for name in args.folders] or committed_folders()
    missing = [f.name for f in folders if not f.is_dir()]
    if missing:
        parser.error(f"no results folder {', '.join(missing)}; valid: {', '.join(f.name for f in committed_folders())}")
    work = [(folder, run) for folder in folders for run in representatives(folder)]
    if args.list:
        for folder, run in work:
            print(f"{folder.name}/{group_key(run, folder)} seed {run['seed']}")
        return 0
    runs = [run for _, run in work]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            outcomes = list(pool.map(rerun, runs))
    else:
        outcomes = [rerun(run) for run in runs]
    moved = set()
    for (folder, run), again in zip(work, outcomes):
        line = verdict(run, again)
        moved.update([folder.name] if line != "same" else [])
        commit = run.get("code", {}).get("git_commit", "?")[:7]
        print(f"{folder.name}/{group_key(run, folder)} seed {run['seed']} (made at {commit}): {line}", flush=True)
    print(f"moved: {', '.join(sorted(moved)) or 'none'}")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
