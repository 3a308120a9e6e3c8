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

from clft.config.loading import (
    FieldDoc,
    apply_overrides,
    coerce,
    config_fields,
    field_docs,
    load_yaml,
    make_dataclass_instance,
    parse_yaml,
    to_plain,
)

__all__ = ["FieldDoc", "apply_overrides", "coerce", "config_fields", "field_docs", "load_yaml",
           "make_dataclass_instance", "parse_yaml", "to_plain"]
