"""The ``clft`` command: run, table, tune, plot, report, list, presets, show (and ``clft --version``).

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

  clft run quickstart --out /tmp/qs train.epochs=1 seeds=[0] compare.1.lam=50
  clft run experiments/clinc150-lora.yaml scenarios=[task-il] --dry-run

finished runs made by other code (an upgrade, an edited plugin) are stale:
  clft run quickstart --out /tmp/qs --verify-stale 2   # re-run 2 of them; keep all if identical
  clft run quickstart --out /tmp/qs --accept-stale     # keep them as they are (flagged in tables)

output: one line per finished run and a progress bar (stderr); --quiet: errors
and warnings only; -v: also each run's start and the libraries' own output.
"""


def experiment_path(args: argparse.Namespace) -> Path:
    """The experiment file of ``clft run`` (default: the quickstart); ``clft run a.b=1`` is an override."""
    from clft.config.presets import find_experiment

    if args.experiment and "=" in args.experiment and not Path(args.experiment).exists():
        args.overrides, args.experiment = [args.experiment, *args.overrides], None
    return find_experiment(args.experiment or QUICKSTART)


def cmd_run(args: argparse.Namespace) -> int:
    set_verbosity(args)
    from clft.config.experiment import load_experiment
    from clft.config.validation import check_out_folder
    from clft.sweep.executors import run_sweep

    path = experiment_path(args)
    cfg, _ = load_experiment(str(path), args.overrides)
    out = Path(args.out) if args.out else Path("results") / cfg.name  # cfg.name is a plain name (validation.py)
    check_out_folder(out)
    if args.dry_run:
        return dry_run(cfg, out, path.resolve().parent)
    started = time.perf_counter()
    run_sweep(cfg, out, jobs=args.jobs, executor=args.executor, address=args.address, base_dir=path.resolve().parent,
              resume=args.resume, overwrite=args.overwrite, rerun_stale=args.rerun_stale, progress=not args.quiet,
              restart_runs=tuple(args.restart_run or ()), verify_stale=args.verify_stale,
              accept_stale=args.accept_stale)
    if not _is_main_process():
        return 0  # a data-parallel launch: the main process prints the summary
    print(f"finished {cfg.name} in {time.perf_counter() - started:.1f}s\n")
    print(_table(out, "md"))
    if not args.no_plots:
        from clft.storage.atomic import WriteError

        try:
            plots = _plots(out)
            print(f"\nplots: {plots[0].parent if plots else '(none)'}")
        except WriteError as exc:  # a read-only folder of finished runs: the table above is the answer
            print(f"clft: warning: plots not written: {exc}", file=sys.stderr)
    print(f"results: {out}/ (one JSON per run; `clft table {out}` / `clft plot {out}`)")
    return 0


def dry_run(cfg, out: Path, base_dir: Path) -> int:
    """Print every run the experiment would make and whether it is done; train nothing."""
    from clft.sweep.classify import run_status
    from clft.sweep.plan import plan_runs

    plans = plan_runs(cfg)
    print(f"{cfg.name}: {len(plans)} run(s) into {out}/")
    print(f"{'scenario':<10} {'strategies':<24} {'seed':>4}  status")
    for plan in plans:
        status = run_status(cfg, plan, out, base_dir)
        print(f"{status.scenario:<10} {plan.label:<24} {plan.seed:>4}  {status.describe()}")
    return 0


def _is_main_process() -> bool:
    from clft.engine.distributed import Parallel

    return Parallel.current().is_main


def set_verbosity(args: argparse.Namespace) -> None:
    """``--quiet`` / default / ``-v`` for this process and the ones it starts (``clft.console``)."""
    from clft import console

    if args.quiet and args.verbose:
        raise ClftError("--quiet and -v exclude each other; pass one of them")
    console.set_verbosity(console.QUIET if args.quiet else console.VERBOSE if args.verbose else console.NORMAL)


def results_folder(args: argparse.Namespace) -> Path:
    """``clft table/plot/report``'s folder: the one given, else the quickstart's (``results/quickstart``);
    without either, a one-line ConfigError listing the folders under ``results/``."""
    from clft.errors import ConfigError

    if args.directory:
        return Path(args.directory)
    default, root = Path("results") / QUICKSTART, Path("results")
    if default.is_dir():
        return default
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if found:
        raise ConfigError(f"no folder given and {default} does not exist; folders under {root}/: {', '.join(found)} "
                          f"(e.g. `clft {args.command} {root / found[0]}`)")
    raise ConfigError(f"no folder given and {default} does not exist; run `clft run` first, or name a folder")


def _table(directory: Path, fmt: str, ci: bool = False) -> str:
    from clft.results.tables import TableOptions, render_table

    return render_table(directory, fmt, TableOptions(ci=ci))


def _plots(directory: Path, out: Path | None = None) -> list[Path]:
    from clft.results.plots import write_plots

    return write_plots(directory, out)


def table_text(args: argparse.Namespace) -> str:
    """What ``clft table`` prints for parsed ``args`` (``--output`` writes it plus a newline)."""
    if args.reference:
        from clft.config.presets import find_experiment
        from clft.results.reference import render_reference

        experiment = None if args.reference is True else find_experiment(args.reference)
        return render_reference(results_folder(args), args.format, experiment)
    return _table(results_folder(args), args.format, args.ci)


def cmd_table(args: argparse.Namespace) -> int:
    text = table_text(args)
    if args.format == "csv":  # the notes (provenance warnings) stay out of the machine-readable text
        from clft.results.files import load_results
        from clft.results.table_notes import provenance_warnings

        for line in provenance_warnings(load_results(results_folder(args))):
            print(line, file=sys.stderr)
    if args.output:
        from clft.storage.atomic import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    set_verbosity(args)
    import clft.plugins  # noqa: F401
    from clft.config.loading import load_yaml
    from clft.config.presets import find_experiment
    from clft.sweep.tune import render, split_values, tune

    path = find_experiment(args.experiment)  # a file or a preset name, as `clft run` takes
    name = load_yaml(path).get("name", path.stem)
    out = Path(args.out) if args.out else Path("results") / f"{name}-tune"
    result = tune(path, args.key, split_values(args.values), out, args.overrides, jobs=args.jobs,
                  resume=args.resume, rerun_stale=args.rerun_stale, progress=not args.quiet,
                  log=lambda m: print(m, file=sys.stderr))
    print(render(result))
    print(f"scores: {out / 'tune.json'}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    paths = _plots(results_folder(args), Path(args.out) if args.out else None)
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
    from clft.config.presets import KINDS, presets

    for kind in [args.kind] if args.kind else KINDS:
        print(f"{kind}:")
        for preset in presets(kind):
            print(f"  {preset.name:<32} {preset.description}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from clft.results.report import write_report

    print(write_report(results_folder(args), Path(args.output) if args.output else None))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from clft.config.show import show

    print(show(args.name))
    return 0


class VersionAction(argparse.Action):
    """``clft --version``: clft's version and the code identity results record (``clft.results.provenance``)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print clft's version and code identity, then exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from clft import __version__
        from clft.results.provenance import code_identity, describe

        print(f"clft {__version__} (code {describe(code_identity())})")
        parser.exit()


DIRECTORY_HELP = "results folder (default: results/quickstart; without it, the folders under results/ are listed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clft", description="Continual learning for fine-tuning pretrained models.")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run an experiment (default: the quickstart preset)", epilog=RUN_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("experiment", nargs="?", help="experiment YAML file or preset name (default: quickstart)")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="dotted overrides, e.g. train.epochs=2 compare.1.lam=50")
    run.add_argument("--out", help="results folder (default results/<experiment name>/)")
    run.add_argument("--resume", action="store_true", help="continue killed runs from their last finished task")
    run.add_argument("--overwrite", action="store_true", help="rerun runs whose results exist with another config")
    run.add_argument("--rerun-stale", action="store_true",
                     help="re-run finished runs whose results were made by other code (see `clft run` output)")
    run.add_argument("--verify-stale", nargs="?", type=int, const=2, metavar="K",
                     help="re-run K sampled stale runs (default 2) per code that made them; if each gives its stored "
                          "matrix bit for bit, keep all those runs as made by this code (recorded in each result)")
    run.add_argument("--accept-stale", action="store_true",
                     help="keep stale runs as they are: recorded in each result and flagged under tables")
    run.add_argument("--restart-run", action="append", metavar="RUN",
                     help="discard RUN's checkpoint (e.g. class-il/replay/seed0) and train it from scratch")
    run.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    add_verbosity(run)
    run.add_argument("--dry-run", action="store_true", help="print the runs (and which are done) without training")
    run.add_argument("--jobs", type=int, default=1, help="runs at a time in separate processes (local executor)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local processes, or one Ray task per run (pip install 'clft[ray]')")
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray for the sweep)")
    run.set_defaults(func=cmd_run)
    table = sub.add_parser("table", help="aggregate run JSONs into a table")
    table.add_argument("directory", nargs="?", help=DIRECTORY_HELP)
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
    tuner.add_argument("--jobs", type=int, default=1,
                       help="(value, seed) runs at a time, each in a worker process (cores // N threads each)")
    tuner.add_argument("--resume", action="store_true", help="continue killed grid runs from their last finished task")
    tuner.add_argument("--rerun-stale", action="store_true", help="re-run grid runs made by other code")
    add_verbosity(tuner)
    tuner.set_defaults(func=cmd_tune)
    plot = sub.add_parser("plot", help="write accuracy-matrix heatmaps and accuracy curves (PNG)")
    plot.add_argument("directory", nargs="?", help=DIRECTORY_HELP)
    plot.add_argument("--out", help="folder for the PNGs (default DIRECTORY/plots)")
    plot.set_defaults(func=cmd_plot)
    lister = sub.add_parser("list", help="registered strategies, benchmarks and backbones")
    lister.add_argument("kind", nargs="?", choices=["strategies", "benchmarks", "backbones"])
    lister.set_defaults(func=cmd_list)
    presets = sub.add_parser("presets", help="built-in experiments and benchmark streams, with descriptions")
    presets.add_argument("kind", nargs="?", choices=["experiments", "benchmarks"])
    presets.set_defaults(func=cmd_presets)
    report = sub.add_parser("report", help="write one self-contained HTML page of an experiment's results")
    report.add_argument("directory", nargs="?", help=DIRECTORY_HELP)
    report.add_argument("--output", help="the HTML file (default DIRECTORY/report.html)")
    report.set_defaults(func=cmd_report)
    shower = sub.add_parser("show", help="a strategy, benchmark or backbone: its docstring and every option "
                                         "(type, default, doc) and the distribution it comes from")
    shower.add_argument("name", help="a registered name (`clft list`), e.g. replay")
    shower.set_defaults(func=cmd_show)
    parser.commands = sub.choices  # name -> the command's parser (read by parse_args)
    return parser


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="errors and warnings only: no progress bar, "
                        "no per-run lines (the table still goes to stdout)")
    parser.add_argument("--verbose", "-v", action="store_true", help="also each run's start and what the libraries "
                        "print (download bars, wandb, Ray workers)")


def optional_count(argv: list[str], option: str, default: int) -> list[str]:
    """``OPTION`` not followed by an integer becomes ``OPTION=default``, so that ``--verify-stale
    train.epochs=1`` leaves the override alone (argparse would read it as K)."""
    fixed = []
    for i, arg in enumerate(argv):
        following = argv[i + 1] if i + 1 < len(argv) else ""
        fixed.append(f"{option}={default}" if arg == option and not following.lstrip("-").isdigit() else arg)
    return fixed


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
    args = commands[argv[0]].parse_intermixed_args(optional_count(argv[1:], "--verify-stale", 2))
    args.command = argv[0]
    return args


def main(argv: list[str] | None = None) -> int:
    from clft.console import keep_verbosity

    one_line_plugin_warnings()
    args = parse_args(argv)
    try:
        with keep_verbosity():  # a command's --quiet / -v ends with it (main called in-process)
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
