"""Configuration: an experiment is a YAML file; each plugin's ``Config`` dataclass is its schema.

- ``loading``: YAML + dotted overrides -> typed dataclasses (``make_dataclass_instance``, ``load_yaml``,
  ``apply_overrides``, ``to_plain``); re-exported here, where plugins and scripts import them.
- ``yaml_safe``: YAML with a bound on what aliases expand to; short quotes of values in messages.
- ``experiment``: the experiment schema (``ExperimentConfig``, ``TrainConfig``) and ``load_experiment``.
- ``entries``: compare entries (one table row each); ``validation``: range and name checks at load time.
- ``published``: a paper's numbers, cell by cell; ``presets``: the experiments and streams shipped with clft.
- ``show``: ``clft show NAME``, a plugin's options documented from its ``Config``.

Imports only the plugin API (``clft.types``, ``clft.registry``, ``clft.errors``) and ``clft.results.metrics``
(the metric names a published block may use).
"""

_EXPORTS = {  # name -> the module that defines it
    "FieldDoc": "clft.config.loading",
    "apply_overrides": "clft.config.loading",
    "coerce": "clft.config.loading",
    "config_fields": "clft.config.loading",
    "field_docs": "clft.config.loading",
    "load_yaml": "clft.config.loading",
    "make_dataclass_instance": "clft.config.loading",
    "parse_yaml": "clft.config.loading",
    "to_plain": "clft.config.loading",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The re-exported names, imported on first use: importing one module of this package imports no other."""
    if _EXPORTS.get(name) == "clft.config.loading":
        from clft.config import loading as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
