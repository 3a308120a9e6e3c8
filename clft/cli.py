"""The ``clft`` command: run, table, tune, plot, report, list, presets.

Options and ``key=value`` overrides may come in any order
(``clft run EXP --out DIR train.epochs=2``): each command's arguments are read
with ``parse_intermixed_args``.

Every user error (unknown experiment file, plugin, key, wrong type, value out of
range, missing data, a damaged checkpoint or result file) is one line on stderr
and exit status 2; no traceback. Other failures are one line too, with their own
status: 1 a run whose worker died three times (``--jobs``, Ray), 3 a diverged (NaN/inf)
loss, 74 a file that cannot be written (e.g. a full disk), 75 a run held by another
process that could not be waited for, 130 an interrupt (docs/reliability.md lists them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from clft.errors import ClftError

QUICKSTART = "quickstart"
RUN_EPILOG = """\
EXPERIMENT is a YAML file or a preset name (`clft presets`); your own file wins
over a preset of the same name (./NAME.yaml, ./experiments/NAME.yaml).

overrides: dotted KEY=VALUE pairs, values parsed as YAML and type-checked;
list items by index. Options and overrides may come in any order, e.g.

  clft run quickstart --out /tmp/qs train.epochs=1 seeds=[0] strategies.0.lam=50
  clft run experiments/clinc150-lora.yaml scenarios=[task-il] --dry-run
"""


def experiment_path(args: argparse.Namespace) -> Path:
    """The experiment file of ``clft run`` (default: the quickstart); ``clft run a.b=1`` is an override."""
    from clft.presets import find_experiment

    if args.experiment and "=" in args.experiment and not Path(args.experiment).exists():
        args.overrides, args.experiment = [args.experiment, *args.overrides], None
    return find_experiment(args.experiment or QUICKSTART)


def cmd_run(args: argparse.Namespace) -> int:
    quiet_libraries(args.quiet)
    from clft.executors import run_sweep
    from clft.experiment import load_experiment
    from clft.validation import check_out_folder

    path = experiment_path(args)
    cfg, _ = load_experiment(str(path), args.overrides)
    out = Path(args.out) if args.out else Path("results") / cfg.name  # cfg.name is a plain name (validation.py)
    check_out_folder(out)
    if args.dry_run:
        return dry_run(cfg, out, path.resolve().parent)
    started = time.perf_counter()
    run_sweep(cfg, out, jobs=args.jobs, executor=args.executor, address=args.address, base_dir=path.resolve().parent,
              resume=args.resume, overwrite=args.overwrite, rerun_stale=args.rerun_stale, progress=not args.quiet,
              restart_runs=tuple(args.restart_run or ()))
    if not _is_main_process():
        return 0  # a data-parallel launch: the main process prints the summary
    print(f"finished {cfg.name} in {time.perf_counter() - started:.1f}s\n")
    print(_table(out, "md"))
    if not args.no_plots:
        from clft.results import WriteError

        try:
            plots = _plots(out)
            print(f"\nplots: {plots[0].parent if plots else '(none)'}")
        except WriteError as exc:  # a read-only folder of finished runs: the table above is the answer
            print(f"clft: warning: plots not written: {exc}", file=sys.stderr)
    print(f"results: {out}/ (one JSON per run; `clft table {out}` / `clft plot {out}`)")
    return 0


def dry_run(cfg, out: Path, base_dir: Path) -> int:
    """Print every run the experiment would make and whether it is done; train nothing."""
    from clft.sweep import plan_runs, run_status

    plans = plan_runs(cfg)
    print(f"{cfg.name}: {len(plans)} run(s) into {out}/")
    print(f"{'scenario':<10} {'strategies':<24} {'seed':>4}  status")
    for plan in plans:
        status = run_status(cfg, plan, out, base_dir)
        print(f"{status.scenario:<10} {plan.label:<24} {plan.seed:>4}  {status.describe()}")
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


def _table(directory: Path, fmt: str, ci: bool = False) -> str:
    from clft.tables import TableOptions, render_table

    return render_table(directory, fmt, TableOptions(ci=ci))


def _plots(directory: Path, out: Path | None = None) -> list[Path]:
    from clft.plots import write_plots

    return write_plots(directory, out)


def table_text(args: argparse.Namespace) -> str:
    """What ``clft table`` prints for parsed ``args`` (``--output`` writes it plus a newline)."""
    if args.reference:
        from clft.presets import find_experiment
        from clft.reference import render_reference

        experiment = None if args.reference is True else find_experiment(args.reference)
        return render_reference(Path(args.directory), args.format, experiment)
    return _table(Path(args.directory), args.format, args.ci)


def cmd_table(args: argparse.Namespace) -> int:
    text = table_text(args)
    if args.format == "csv":  # the notes (provenance warnings) stay out of the machine-readable text
        from clft.results import load_results
        from clft.table_notes import provenance_warnings

        for line in provenance_warnings(load_results(args.directory)):
            print(line, file=sys.stderr)
    if args.output:
        from clft.results import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    quiet_libraries(args.quiet)
    import clft.plugins  # noqa: F401
    from clft.config import load_yaml
    from clft.presets import find_experiment
    from clft.tune import render, split_values, tune

    path = find_experiment(args.experiment)  # a file or a preset name, as `clft run` takes
    name = load_yaml(path).get("name", path.stem)
    out = Path(args.out) if args.out else Path("results") / f"{name}-tune"
    result = tune(path, args.key, split_values(args.values), out, args.overrides, rerun_stale=args.rerun_stale,
                  progress=not args.quiet, log=lambda m: print(m, file=sys.stderr))
    print(render(result))
    print(f"scores: {out / 'tune.json'}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    paths = _plots(Path(args.directory), Path(args.out) if args.out else None)
    for path in paths:
        print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Every registered name with the distribution that supplied it; broken and conflicting
    plugins are listed with their error (and do not change the exit status)."""
    from clft.registry import REGISTRIES

    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        print(f"{kind}:")
        for entry in REGISTRIES[kind].entries():
            problem = f"  [{entry.status}: {entry.error}]" if entry.error else ""
            print(f"  {entry.name:<24} {entry.distribution}{problem}")
    return 0


def one_line_plugin_warnings() -> None:
    """Show a ``ClftWarning`` (a third-party plugin that failed to load, a skipped file) as one line."""
    import warnings

    from clft.errors import ClftWarning

    default = warnings.formatwarning

    def formatted(message, category, filename, lineno, line=None):
        if issubclass(category, ClftWarning):
            return f"clft: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatted


def cmd_presets(args: argparse.Namespace) -> int:
    from clft.presets import KINDS, presets

    for kind in [args.kind] if args.kind else KINDS:
        print(f"{kind}:")
        for preset in presets(kind):
            print(f"  {preset.name:<32} {preset.description}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from clft.report import write_report

    print(write_report(Path(args.directory), Path(args.output) if args.output else None))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clft", description="Continual learning for fine-tuning pretrained models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run an experiment (default: the quickstart preset)", epilog=RUN_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("experiment", nargs="?", help="experiment YAML file or preset name (default: quickstart)")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="dotted overrides, e.g. train.epochs=2 strategies.0.lam=50")
    run.add_argument("--out", help="results folder (default results/<experiment name>/)")
    run.add_argument("--resume", action="store_true", help="continue killed runs from their last finished task")
    run.add_argument("--overwrite", action="store_true", help="rerun runs whose results exist with another config")
    run.add_argument("--rerun-stale", action="store_true",
                     help="re-run finished runs whose results were made by other code (see `clft run` output)")
    run.add_argument("--restart-run", action="append", metavar="RUN",
                     help="discard RUN's checkpoint (e.g. class-il/replay+ewc/seed0) and train it from scratch")
    run.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--dry-run", action="store_true", help="print the runs (and which are done) without training")
    run.add_argument("--jobs", type=int, default=1, help="runs at a time in separate processes (local executor)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local processes, or one Ray task per run (pip install 'clft[ray]')")
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray for the sweep)")
    run.set_defaults(func=cmd_run)
    table = sub.add_parser("table", help="aggregate run JSONs into a table")
    table.add_argument("directory")
    table.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    table.add_argument("--output", help="also write the table to this file")
    table.add_argument("--ci", action="store_true",
                       help="95%% t confidence intervals over seeds and † where a row differs from finetune "
                            "(Welch's t-test, p < 0.05)")
    table.add_argument("--reference", nargs="?", const=True, default=None, metavar="EXP.yaml",
                       help="ours beside the published numbers (the `published:` block the runs recorded, or "
                            "EXP.yaml's): ours, paper, difference, and a flag outside max(2 std, 1 point)")
    table.set_defaults(func=cmd_table)
    tuner = sub.add_parser("tune", help="choose one hyper-parameter by validation ACC (a grid over one key)")
    tuner.add_argument("experiment", help="experiment YAML file or preset name")
    tuner.add_argument("overrides", nargs="*", help="dotted overrides applied to every grid point")
    tuner.add_argument("--key", required=True, help="dotted key to tune, e.g. compare.1.lam (runs only that entry)")
    tuner.add_argument("--values", required=True, help="comma-separated values, each parsed as YAML: 10,100,1000")
    tuner.add_argument("--out", help="folder (default results/<experiment name>-tune/)")
    tuner.add_argument("--rerun-stale", action="store_true", help="re-run grid runs made by other code")
    tuner.add_argument("--quiet", action="store_true", help="no progress bars")
    tuner.set_defaults(func=cmd_tune)
    plot = sub.add_parser("plot", help="write accuracy-matrix heatmaps and accuracy curves (PNG)")
    plot.add_argument("directory")
    plot.add_argument("--out", help="folder for the PNGs (default DIRECTORY/plots)")
    plot.set_defaults(func=cmd_plot)
    lister = sub.add_parser("list", help="registered strategies, benchmarks and backbones")
    lister.add_argument("kind", nargs="?", choices=["strategies", "benchmarks", "backbones"])
    lister.set_defaults(func=cmd_list)
    presets = sub.add_parser("presets", help="built-in experiments and benchmark streams, with descriptions")
    presets.add_argument("kind", nargs="?", choices=["experiments", "benchmarks"])
    presets.set_defaults(func=cmd_presets)
    report = sub.add_parser("report", help="write one self-contained HTML page of an experiment's results")
    report.add_argument("directory")
    report.add_argument("--output", help="the HTML file (default DIRECTORY/report.html)")
    report.set_defaults(func=cmd_report)
    parser.commands = sub.choices  # name -> the command's parser (read by parse_args)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The top-level parser picks the command; the command's own parser reads options and
    positionals in any order (``parse_intermixed_args``). ``clft`` alone runs the quickstart."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = parser.commands
    if not argv:
        argv = ["run"]
    if argv[0] not in commands:
        return parser.parse_args(argv)  # --help, or a one-line error naming the valid commands
    args = commands[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]
    return args


def main(argv: list[str] | None = None) -> int:
    one_line_plugin_warnings()
    args = parse_args(argv)
    try:
        return args.func(args)
    except ClftError as exc:
        print(f"clft: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk, a missing permission: the system's one-line reason, and the file
        print(f"clft: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 74
    except RecursionError:  # a pathologically nested value that slipped past the loaders
        print("clft: error: input nested too deeply", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clft: interrupted; finished tasks are checkpointed (rerun with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
