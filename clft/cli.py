"""The ``clft`` command: run, table, plot, list.

Every user error (unknown experiment file, plugin, key, wrong type, missing
data) is one line on stderr and exit status 2; no traceback. Other failures are
one line too, with their own status: 3 a diverged (NaN/inf) loss, 74 a file that
cannot be written (e.g. a full disk).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from clft.errors import ClftError, ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = "experiments/quickstart.yaml"


def default_experiment() -> Path:
    """``experiments/quickstart.yaml`` of the current folder, else of the clft source tree."""
    for root in (Path.cwd(), PROJECT_ROOT):
        if (root / QUICKSTART).is_file():
            return root / QUICKSTART
    raise ConfigError(f"no experiment given and {QUICKSTART} not found in {Path.cwd()} or {PROJECT_ROOT}")


def cmd_run(args: argparse.Namespace) -> int:
    quiet_libraries(args.quiet)
    import clft.plugins  # noqa: F401  (registers the built-ins)
    from clft.executors import run_sweep
    from clft.experiment import load_experiment

    if args.experiment and "=" in args.experiment and not Path(args.experiment).exists():
        args.overrides, args.experiment = [args.experiment, *args.overrides], None  # `clft run a.b=1`
    path = Path(args.experiment) if args.experiment else default_experiment()
    cfg, _ = load_experiment(str(path), args.overrides)
    out = Path(args.out) if args.out else Path("results") / cfg.name
    started = time.perf_counter()
    run_sweep(cfg, out, jobs=args.jobs, executor=args.executor, address=args.address, base_dir=path.resolve().parent,
              resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if not _is_main_process():
        return 0  # a data-parallel launch: the main process prints the summary
    print(f"finished {cfg.name} in {time.perf_counter() - started:.1f}s\n")
    print(_table(out, "md"))
    if not args.no_plots:
        plots = _plots(out)
        print(f"\nplots: {plots[0].parent if plots else '(none)'}")
    print(f"results: {out}/ (one JSON per run; `clft table {out}` / `clft plot {out}`)")
    return 0


def _is_main_process() -> bool:
    from clft.distributed import Parallel

    return Parallel.current().is_main


def quiet_libraries(quiet: bool) -> None:
    """No per-dataset ``Map`` bars from datasets (tokenising is quick; our tqdm shows progress);
    with ``--quiet`` or output that is not a terminal, no weight-loading bars from transformers either."""
    import warnings

    if quiet or not sys.stderr.isatty():  # read by huggingface_hub (and transformers) when first imported
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import datasets

    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _table(directory: Path, fmt: str) -> str:
    from clft.tables import render_table

    return render_table(directory, fmt)


def _plots(directory: Path, out: Path | None = None) -> list[Path]:
    from clft.plots import write_plots

    return write_plots(directory, out)


def cmd_table(args: argparse.Namespace) -> int:
    text = _table(Path(args.directory), args.format)
    if args.output:
        from clft.results import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    paths = _plots(Path(args.directory), Path(args.out) if args.out else None)
    for path in paths:
        print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import clft.plugins  # noqa: F401
    from clft.registry import REGISTRIES

    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        print(f"{kind}:")
        for entry in REGISTRIES[kind].entries():
            print(f"  {entry.name:<24} {entry.distribution}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clft", description="Continual learning for fine-tuning pretrained models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run an experiment (default: experiments/quickstart.yaml)")
    run.add_argument("experiment", nargs="?", help="experiment YAML file")
    run.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.epochs=2 strategies.0.lam=50")
    run.add_argument("--out", help="results folder (default results/<experiment name>/)")
    run.add_argument("--resume", action="store_true", help="continue killed runs from their last finished task")
    run.add_argument("--overwrite", action="store_true", help="rerun runs whose results exist with another config")
    run.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--jobs", type=int, default=1, help="runs at a time in separate processes (local executor)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local processes, or one Ray task per run (pip install 'clft[ray]')")
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray for the sweep)")
    run.set_defaults(func=cmd_run)
    table = sub.add_parser("table", help="aggregate run JSONs into a table")
    table.add_argument("directory")
    table.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    table.add_argument("--output", help="also write the table to this file")
    table.set_defaults(func=cmd_table)
    plot = sub.add_parser("plot", help="write accuracy-matrix heatmaps and accuracy curves (PNG)")
    plot.add_argument("directory")
    plot.add_argument("--out", help="folder for the PNGs (default DIRECTORY/plots)")
    plot.set_defaults(func=cmd_plot)
    lister = sub.add_parser("list", help="registered strategies, benchmarks and backbones")
    lister.add_argument("kind", nargs="?", choices=["strategies", "benchmarks", "backbones"])
    lister.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:  # `clft` alone: run the quickstart
        args = build_parser().parse_args(["run", *(argv or [])])
    try:
        return args.func(args)
    except ClftError as exc:
        print(f"clft: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk, a missing permission: the system's one-line reason
        print(f"clft: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 74
    except KeyboardInterrupt:
        print("clft: interrupted; finished tasks are checkpointed (rerun with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
