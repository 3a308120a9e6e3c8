"""Compatibility: the experiment schema now lives in ``clft.config.experiment``; this path keeps working
(``from clft.experiment import load_experiment``, as plugin packages' tests write it)."""

from clft.config.experiment import ExperimentConfig, TrainConfig, load_experiment, resolve_spec

__all__ = ["ExperimentConfig", "TrainConfig", "load_experiment", "resolve_spec"]
