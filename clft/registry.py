"""One ``Registry`` class, three instances: strategies, benchmarks, backbones.

Built-ins register by explicit import (``clft/strategies/__init__.py`` etc.).
Third-party packages register through the entry-point groups
``clft.strategies``, ``clft.benchmarks`` and ``clft.backbones``, loaded lazily
on the first lookup; each name records the distribution that supplied it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TypeVar

from clft.errors import ConfigError
from clft.yaml_safe import brief

T = TypeVar("T", bound=type)
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:[-+][a-z0-9]+)*$")


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    distribution: str


class Registry:
    """Names (lower-kebab strings) to plugin classes, plus lazy entry-point discovery."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.singular = {"strategies": "strategy"}.get(kind, kind.rstrip("s"))
        self.group = f"clft.{kind}"
        self._entries: dict[str, Entry] = {}
        self._entry_points_loaded = False

    def register(self, name: str | None = None, distribution: str = "clft") -> Callable[[T], T]:
        """Class decorator: ``@strategies.register()`` uses ``cls.name``."""

        def decorate(cls: T) -> T:
            self.add(name or cls.name, cls, distribution)
            return cls

        return decorate

    def add(self, name: str, cls: type, distribution: str = "clft") -> None:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"{self.kind} name {name!r} is not lower-kebab (e.g. 'my-method')")
        if name in self._entries:
            other = self._entries[name].distribution
            raise ValueError(f"duplicate {self.kind} name {name!r} (already registered by {other})")
        cls.name = name
        self._entries[name] = Entry(name, cls, distribution)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        import clft.plugins  # noqa: F401  (built-ins first: they win name clashes)
        for point in metadata.entry_points(group=self.group):
            dist = point.dist.name if point.dist is not None else "unknown"
            if point.name in self._entries:
                continue  # a built-in or an already-loaded duplicate wins; `clft list` shows which
            try:
                cls = point.load()
            except Exception as exc:  # a broken plugin must not break the others
                raise ConfigError(f"{self.kind} plugin {point.name!r} from {dist} failed to load: {exc}") from None
            self.add(point.name, cls, dist)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._load_entry_points()
        return [self._entries[n] for n in sorted(self._entries)]

    def get(self, name: Any) -> type:
        self._load_entry_points()
        if not isinstance(name, str) or name not in self._entries:
            valid = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.singular} {brief(name)}; valid: {valid}")
        return self._entries[name].cls

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._entries

    def resolve(self, spec: dict) -> tuple[type, Any]:
        """``{name: x, **options}`` -> ``(cls, cls.Config(**options))``, type-checked, nothing built."""
        from clft.config import make_dataclass_instance

        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"a {self.singular} must be a mapping with a 'name'; got {brief(spec)}")
        options = dict(spec)
        cls = self.get(options.pop("name"))
        return cls, make_dataclass_instance(cls.Config, options, where=f"{self.singular} {cls.name!r}")

    def build(self, spec: dict, *args: Any) -> Any:
        """``{name: x, **options}`` -> ``cls(cls.Config(**options), *args)``, type-checked."""
        cls, config = self.resolve(spec)
        return cls(config, *args)


strategies = Registry("strategies")
benchmarks = Registry("benchmarks")
backbones = Registry("backbones")
REGISTRIES = {"strategies": strategies, "benchmarks": benchmarks, "backbones": backbones}
