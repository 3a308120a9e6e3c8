"""One ``Registry`` class, three instances: strategies, benchmarks, backbones.

One registration path, run lazily on the first lookup of a registry:

1. its built-in package (``clft.strategies``, ``clft.benchmarks``, ``clft.backbones``;
   a constant module name, not a scan) is imported, and its modules' ``@register()``
   decorators add the built-ins, supplied by ``clft``;
2. the entry points of its group (``clft.strategies``, ...) are loaded, each name
   recording the distribution that supplied it (pluggy's ``load_setuptools_entrypoints``
   idea). clft declares no entry points of its own, so stale metadata of an editable
   install cannot matter.

This module imports no plugin package (so ``registry -> strategies -> registry`` is
no cycle). A name claimed by two distributions (a plugin named like a built-in, or
two plugins) is listed as a conflict and using it is a one-line ``ConfigError``
naming both. An entry point that fails to import is reported once (a
``PluginWarning``) and listed as broken with its error; using it is a one-line
``ConfigError``; the rest of clft keeps working. A third-party class that is both
decorated with ``@register()`` and named by its distribution's entry point is one
registration (the entry point supplies the distribution name).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, is_dataclass
from importlib import import_module, metadata
from typing import Any, TypeVar

from clft.config.yaml_safe import brief
from clft.errors import ClftWarning, ConfigError

T = TypeVar("T", bound=type)
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:[-+][a-z0-9]+)*$")
BUILTIN_DISTRIBUTION = "clft"


@dataclass(frozen=True)
class NoOptions:
    """The config of a plugin that declares no ``Config`` class: it takes no options."""


class PluginWarning(ClftWarning):
    """A third-party plugin could not be loaded (it is skipped; ``clft list`` shows why)."""


@dataclass(frozen=True)
class Entry:
    """One registered name. ``cls`` is None when the name is unusable: then ``error`` says why
    (a plugin that failed to import, or a name claimed by several distributions)."""

    name: str
    cls: type | None
    distribution: str
    error: str | None = None
    status: str = "ok"
    """``ok``, ``broken`` (failed to import) or ``conflict`` (claimed by several distributions)."""


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _owner(cls: type) -> str:
    """The distribution a decorated class belongs to, until an entry point names it."""
    top = cls.__module__.split(".")[0]
    return BUILTIN_DISTRIBUTION if top == "clft" else top


class Registry:
    """Names (lower-kebab strings) to plugin classes: the built-in package, then entry points."""

    def __init__(self, kind: str, builtins: str) -> None:
        self.kind = kind
        self.singular = {"strategies": "strategy"}.get(kind, kind.rstrip("s"))
        self.group = f"clft.{kind}"
        self.builtins = builtins
        if not builtins.startswith("clft."):
            raise ValueError(f"built-in package {builtins!r} is not one of clft's own")
        self._entries: dict[str, Entry] = {}
        self._guessed: set[str] = set()  # names whose distribution was guessed from the module
        self._loaded = False

    def register(self, name: str | None = None, distribution: str | None = None) -> Callable[[T], T]:
        """Class decorator: ``@strategies.register()`` uses ``cls.name``."""

        def decorate(cls: T) -> T:
            self.add(name or cls.name, cls, distribution)
            return cls

        return decorate

    def add(self, name: str, cls: type, distribution: str | None = None) -> None:
        """Register ``cls`` as ``name``. Without ``distribution`` (the decorator) the owner is
        guessed from the module until an entry point names it. Another claimant of the name
        makes it a conflict (see the module docstring)."""
        if not NAME_PATTERN.match(name):
            raise ValueError(f"{self.kind} name {name!r} is not lower-kebab (e.g. 'my-method')")
        guessed = distribution is None
        distribution = distribution or _owner(cls)
        existing = self._entries.get(name)
        if existing is None:
            cls.name = name
            self._entries[name] = Entry(name, cls, distribution)
            (self._guessed.add if guessed else self._guessed.discard)(name)
        elif existing.cls is cls and existing.distribution == distribution:
            return  # the same registration again
        elif existing.cls is cls and name in self._guessed and existing.distribution != BUILTIN_DISTRIBUTION:
            self._entries[name] = Entry(name, cls, distribution)  # the decorator ran, now its entry point
            self._guessed.discard(name)
        else:
            self._conflict(name, existing.distribution, distribution)

    def _conflict(self, name: str, first: str, second: str) -> None:
        claimants = " and ".join(dict.fromkeys([*first.split(" and "), second]))
        error = f"{self.singular} name {name!r} is claimed by {claimants}; uninstall one of them"
        self._entries[name] = Entry(name, None, claimants, error, "conflict")

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests; ``clft.testing``'s temporary registrations)."""
        self._entries.pop(name, None)
        self._guessed.discard(name)

    @contextmanager
    def registered(self, cls: type, name: str | None = None, distribution: str = "tests") -> Iterator[str]:
        """Within the block ``cls`` is registered (as ``name`` or ``cls.name``); yields the name."""
        self._load()
        name = name or cls.name
        self.add(name, cls, distribution)
        try:
            yield name
        finally:
            self.remove(name)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        import_module(self.builtins)  # a constant clft package: its decorators register the built-ins
        for point in metadata.entry_points(group=self.group):
            dist = point.dist.name if point.dist is not None else "unknown"
            self._load_point(point, dist)

    def _load_point(self, point: metadata.EntryPoint, dist: str) -> None:
        existing = self._entries.get(point.name)
        if existing is not None and existing.distribution == dist == BUILTIN_DISTRIBUTION:
            return  # clft's own (stale) metadata: the built-in package registered it already
        try:
            cls = point.load()
        except Exception as exc:  # a broken plugin must not break the others
            self._broken(point.name, dist, _one_line(exc))
            return
        if not isinstance(cls, type):
            self._broken(point.name, dist, f"entry point {point.value!r} is a {type(cls).__name__}, not a class")
            return
        self.add(point.name, cls, dist)

    def _broken(self, name: str, dist: str, error: str) -> None:
        message = f"{self.singular} plugin {name!r} from {dist} failed to load ({error})"
        warnings.warn(f"{message}; skipped", PluginWarning, stacklevel=2)
        if name in self._entries:  # a second claimant that is also broken: still a conflict
            self._conflict(name, self._entries[name].distribution, dist)
        else:
            self._entries[name] = Entry(name, None, dist, message, "broken")

    def names(self) -> list[str]:
        """The usable names (not broken, not in conflict), sorted."""
        self._load()
        return sorted(name for name, entry in self._entries.items() if entry.cls is not None)

    def entries(self) -> list[Entry]:
        """Every name, usable or not, with its distribution (``clft list``)."""
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]

    def get(self, name: Any) -> type:
        self._load()
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise ConfigError(f"unknown {self.singular} {brief(name)}; valid: {', '.join(self.names())}")
        if entry.cls is None:
            raise ConfigError(entry.error)
        return entry.cls

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries and self._entries[name].cls is not None

    def resolve(self, spec: dict) -> tuple[type, Any]:
        """``{name: x, **options}`` -> ``(cls, cls.Config(**options))``, type-checked, nothing built."""
        from clft.config.loading import make_dataclass_instance

        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"a {self.singular} must be a mapping with a 'name'; got {brief(spec)}")
        options = dict(spec)
        cls = self.get(options.pop("name"))
        return cls, make_dataclass_instance(self.config_class(cls), options, where=f"{self.singular} {cls.name!r}")

    def config_class(self, cls: type) -> type:
        """``cls.Config``; a plugin without one takes no options (an empty config); a Config that is
        not a dataclass is a one-line ConfigError naming the plugin."""
        config = getattr(cls, "Config", None)
        if config is None:
            return NoOptions
        if not (isinstance(config, type) and is_dataclass(config)):
            raise ConfigError(f"{self.singular} plugin {cls.name!r} ({cls.__module__}.{cls.__qualname__}): its Config "
                              "is not a dataclass; declare its options with @dataclass")
        return config

    def build(self, spec: dict, *args: Any) -> Any:
        """``{name: x, **options}`` -> ``cls(cls.Config(**options), *args)``, type-checked."""
        cls, config = self.resolve(spec)
        return cls(config, *args)


strategies = Registry("strategies", "clft.strategies")
benchmarks = Registry("benchmarks", "clft.benchmarks")
backbones = Registry("backbones", "clft.backbones")
REGISTRIES = {"strategies": strategies, "benchmarks": benchmarks, "backbones": backbones}
