"""Compatibility: load every registry's built-ins now (they also load lazily on first lookup).

The registries import their own built-in packages (``clft.registry``); this module only
triggers that eagerly for code written before, e.g. ``import clft.plugins``.
"""

from clft.registry import REGISTRIES

for _registry in REGISTRIES.values():
    _registry.names()
