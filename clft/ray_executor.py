"""The Ray executor: one Ray task per run (``clft run EXP --executor ray [--address ADDR]``).

``ray`` is an optional extra (``pip install 'clft[ray]'``). Each task asks for the
experiment's ``resources`` (``{cpus: 1, gpus: 0}`` by default; Ray then sets
``CUDA_VISIBLE_DEVICES``) and uses ``cpus`` torch threads unless ``train.threads`` is
set. With ``--address`` the sweep joins that cluster (every node needs clft
installed and the results folder on a shared file system); without it a local Ray
is started for the sweep (the driver's clft source on the workers' ``PYTHONPATH``)
and stopped after it. Tasks run with ``max_retries=0``: ``clft.executors.Driver``
resubmits a task whose worker died, resuming from the run's checkpoint.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from clft.errors import ConfigError
from clft.experiment import ExperimentConfig

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'clft[ray]' (or pip install ray)") from None
    return ray


@contextmanager
def ray_backend(cfg: ExperimentConfig, out_dir: Path, address: str | None):
    """Yields ``(submit, is_worker_death)`` for ``clft.executors.Driver``; connects to (or starts) Ray."""
    ray = _import_ray()
    from clft.console import ray_init_options
    from clft.executors import RunOptions, run_plan

    quiet = ray_init_options()  # clft.console: no worker output or INFO lines below -v
    if address is None:
        ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(SOURCE_ROOT)}}, **quiet)
    else:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {' '.join(str(exc).split())}") from None
    try:
        needs = cfg.resources
        _check_cluster(ray, needs)
        remote = ray.remote(run_plan).options(num_cpus=needs.cpus, num_gpus=needs.gpus, max_retries=0)
        threads = max(1, int(needs.cpus))

        def submit(plan, options: RunOptions, wait_if_locked: bool):
            options = replace(options, threads=threads)
            return remote.remote(cfg, plan, out_dir, options, wait_if_locked).future()

        yield submit, _is_worker_death
    finally:
        ray.shutdown()


def _check_cluster(ray, needs) -> None:
    """A run that asks for more CPUs/GPUs than the whole cluster has would wait forever: refuse it."""
    total = ray.cluster_resources()
    for key, wanted in (("CPU", needs.cpus), ("GPU", needs.gpus)):
        if wanted > total.get(key, 0):
            raise ConfigError(f"resources ask for {wanted:g} {key}(s) per run but the Ray cluster has "
                              f"{total.get(key, 0):g}; lower resources.{key.lower()}s")


def _is_worker_death(exc: BaseException) -> bool:
    from ray import exceptions

    deaths = (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.OutOfMemoryError)
    return isinstance(exc, deaths)
