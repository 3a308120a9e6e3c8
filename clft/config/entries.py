"""Compare entries: what one row of a comparison runs, under which label, with which training options.

An entry of ``compare:`` is one of::

    finetune                                   # a strategy name
    {name: ewc, lam: 100}                      # a strategy mapping
    [replay, ewc]                              # a list: strategies composed in one run
    {label: ewc-online, strategies: {name: ewc, mode: online}, train: {lr: 0.01}}

The last form is the labelled entry: ``strategies`` is any of the three forms
above, ``label`` (optional) names the run's folder and the table row, and
``train`` (optional) is a partial ``train:`` block merged over the
experiment's. Without a label the entry's label is its strategies' label parts
joined by ``+`` (``replay+ewc``): each part is the strategy's
``default_label(config)`` (``clft.types.Strategy``) for its spec resolved against
its ``Config``, which is its name unless the config switches on a component the
method's paper does not have (``{name: o-lora, protect_head: true}`` ->
``o-lora+frozen-head``). A spec that does not resolve (an unknown name, a bad
option) keeps its name here; the preflight check reports it before any run. An
explicit label is a plain lower-kebab name (``[a-z0-9]+`` joined by ``-``) and
is used as given; labels are unique within an experiment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from clft.config.yaml_safe import brief
from clft.errors import ConfigError
from clft.registry import strategies

LABEL_PATTERN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
LABEL_PART_PATTERN = re.compile(r"[a-z0-9]+([-+][a-z0-9]+)*")
ENTRY_KEYS = ("label", "strategies", "train")


@dataclass(frozen=True)
class Entry:
    """One compare entry: the strategy specs composed in its runs, its label and its ``train`` overrides."""

    strategies: list[dict]
    label: str
    train: dict = field(default_factory=dict)


def group_label(group: list[dict]) -> str:
    """``[replay, ewc]`` -> ``replay+ewc`` (the default label of an entry): the label parts joined by ``+``."""
    return "+".join(label_part(spec) for spec in group)


def label_part(spec: dict) -> str:
    """A strategy spec's part of a default label: ``cls.default_label(config)`` of the spec resolved
    through the strategies registry, or its name when it does not resolve (preflight reports why)."""
    try:
        cls, config = strategies.resolve(spec)
    except ConfigError:
        return str(spec["name"])
    part = cls.default_label(config)
    if not (isinstance(part, str) and LABEL_PART_PATTERN.fullmatch(part)):
        raise ConfigError(f"strategy {cls.name!r}: default_label returned {brief(part)}, not lower-case "
                          "words joined by - or +")
    return part


def as_group(entry: Any, where: str) -> list[dict]:
    """A strategy name, mapping or list of those -> a list of strategy specs (mappings with 'name')."""
    items = entry if isinstance(entry, list) else [entry]
    if not items:
        raise ConfigError(f"{where}: an empty strategy list")
    specs = []
    for item in items:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where}: a strategy must be a name or a mapping with 'name', got {brief(item)}")
        specs.append(dict(item))
    return specs


def parse_entry(entry: Any, where: str) -> Entry:
    """One compare entry (any form of the module docstring) -> :class:`Entry`."""
    if not (isinstance(entry, dict) and "strategies" in entry):
        group = as_group(entry, where)
        return Entry(group, group_label(group))
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {brief(unknown[0])}; a labelled entry takes {', '.join(ENTRY_KEYS)}")
    group = as_group(entry["strategies"], f"{where}.strategies")
    label = entry.get("label", group_label(group))
    if "label" in entry and not (isinstance(label, str) and LABEL_PATTERN.fullmatch(label)):
        raise ConfigError(f"{where}.label: {brief(label)} is not a lower-kebab name (e.g. ewc-online: a-z, 0-9 and -)")
    train = entry.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"{where}.train: expected a mapping of train options, got {brief(train)}")
    return Entry(group, label, dict(train))


def parse_entries(compare: list[Any]) -> list[Entry]:
    """Every compare entry, checked for unique labels."""
    entries, seen = [], {}
    for index, raw in enumerate(compare):
        entry = parse_entry(raw, f"compare[{index}]")
        if entry.label in seen:
            raise ConfigError(f"compare[{index}]: label {entry.label!r} is already used by "
                              f"compare[{seen[entry.label]}]; give one of them another label "
                              "(a labelled entry: {label: x, strategies: ...})")
        seen[entry.label] = index
        entries.append(entry)
    return entries
