"""Sweep: an experiment's runs, from the plan to the recorded results (docs/architecture.md, "The path of
``clft run``").

1. ``plan``: ``plan_runs(cfg)``, one ``RunPlan`` per (compare entry, scenario, seed).
2. ``preflight``: every run's configs and plugin pairing checked before anything trains.
3. ``classify``: ``classify_runs``, each run's config resolved once, its status: done / stale / to do.
4. ``run``: ``run_one`` (``build``: the stream and the model; ``clft.engine.runner.execute``), ``run_experiment``.
5. ``record``: ``write_result``, the result JSON.

Beside them: ``executors`` (``--jobs``, ``--executor ray``: ``worker``, ``process_pool``,
``ray_executor``), ``parallel_run`` (one run on several processes), ``locks`` and ``claims`` (folders
shared between sweeps), ``stale_runs`` (verify or keep stale results), ``progress``, ``tune``.

``from clft.sweep import run_experiment`` (and the other names below) is the stable import for scripts;
patch a name where it is used (``clft.sweep.run.build_run``), not here.
"""

_EXPORTS = {  # name -> the module that defines it
    "PlannedRun": "clft.sweep.classify",
    "RunPlan": "clft.sweep.plan",
    "build_run": "clft.sweep.build",
    "classify_runs": "clft.sweep.classify",
    "plan_runs": "clft.sweep.plan",
    "resolved_config": "clft.sweep.build",
    "run_experiment": "clft.sweep.run",
    "run_one": "clft.sweep.run",
    "run_status": "clft.sweep.classify",
    "setup_run": "clft.sweep.build",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The re-exported names, imported on first use: importing one module of this package imports no other."""
    if _EXPORTS.get(name) == "clft.sweep.build":
        from clft.sweep import build as module
    elif _EXPORTS.get(name) == "clft.sweep.classify":
        from clft.sweep import classify as module
    elif _EXPORTS.get(name) == "clft.sweep.plan":
        from clft.sweep import plan as module
    elif _EXPORTS.get(name) == "clft.sweep.run":
        from clft.sweep import run as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
