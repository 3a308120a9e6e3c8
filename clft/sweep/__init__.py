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

from clft.sweep.build import build_run, resolved_config, setup_run
from clft.sweep.classify import PlannedRun, classify_runs, run_status
from clft.sweep.plan import RunPlan, plan_runs
from clft.sweep.run import run_experiment, run_one

__all__ = ["PlannedRun", "RunPlan", "build_run", "classify_runs", "plan_runs", "resolved_config", "run_experiment",
           "run_one", "run_status", "setup_run"]
