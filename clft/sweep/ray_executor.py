"""The Ray executor: one Ray task per run (``clft run EXP --executor ray [--address ADDR]``).

``ray`` is an optional extra (``pip install 'clft[ray]'``). Each task asks for the
experiment's ``resources`` (``{cpus: 1, gpus: 0}`` by default; Ray then sets
``CUDA_VISIBLE_DEVICES``) and uses ``cpus`` torch threads unless ``train.threads`` is
set. With ``--address`` the sweep joins that cluster (every node needs clft
installed and the results folder on a shared file system), after checking within
``CONNECT_TIMEOUT`` seconds that the address accepts a connection and with Ray's own
retries bounded (``BOUNDED_CONNECT_ENV``): ``ray.init`` alone retried an unreachable
address for minutes; now it is one line within seconds. Without it a local Ray
is started for the sweep (the driver's clft source on the workers' ``PYTHONPATH``)
and stopped after it. Tasks run with ``max_retries=0``: ``clft.sweep.executors.Driver``
resubmits a task whose worker died, resuming from the run's checkpoint.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from clft.config.experiment import ExperimentConfig
from clft.errors import ConfigError

SOURCE_ROOT = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT = 10.0
"""Seconds ``--address`` is given to accept a connection before the sweep gives up (one line, exit 2)."""
BOUNDED_CONNECT_ENV = {"RAY_NUM_REDIS_GET_RETRIES": "5", "RAY_py_gcs_connect_timeout_s": "15",
                       "RAY_gcs_rpc_server_connect_timeout_s": "5"}
"""Ray's own connection retries, bounded (unless set already) when joining a cluster: an address that accepts
connections but answers no Ray GCS then fails in about half a minute instead of several."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'clft[ray]' (or pip install ray)") from None
    return ray


@contextmanager
def ray_backend(cfg: ExperimentConfig, out_dir: Path, address: str | None):
    """Yields ``(submit, is_worker_death)`` for ``clft.sweep.executors.Driver``; connects to (or starts) Ray
    (``prepare_ray`` has checked the address)."""
    ray = _import_ray()
    from clft.console import ray_init_options
    from clft.sweep.worker import RunOptions, run_plan

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


def prepare_ray(address: str | None) -> None:
    """Before the sweep writes anything: Ray is installed (else one line) and ``address``, when given,
    accepts a connection (``check_reachable``), with Ray's own retries bounded (``BOUNDED_CONNECT_ENV``)."""
    if address is not None:
        check_reachable(address)
        for key, value in BOUNDED_CONNECT_ENV.items():  # read when ray is imported and initialised
            os.environ.setdefault(key, value)
    _import_ray()


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """ConfigError when the cluster at ``address`` (``host:port`` or ``ray://host:port``) does not accept a
    TCP connection within ``timeout`` seconds: ``ray.init`` itself retries for minutes. ``auto`` and
    ``local`` (Ray finds the cluster itself) are left to Ray."""
    if address in ("auto", "local"):
        return
    target = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = target.hostname, target.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise ConfigError(f"--address {address!r} is not host:port (e.g. 10.0.0.1:6379) or ray://host:port")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {reason} (waited at most {timeout:g}s); "
                          "check the address, or drop --address to start a local Ray") from None


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
