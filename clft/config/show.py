"""``clft show NAME``: what a strategy, benchmark or backbone is and every option it takes.

For each registry that knows NAME (usually one)::

    strategy replay (distribution clft 0.1.0)

      <the class docstring>

      options (a YAML block: {name: replay, OPTION: VALUE, ...}):
        memory_size: int = 200
            Examples kept in memory ...
        replay_batch_size: int | None = null
            ...

Types are the ones the YAML is checked against; defaults are written as YAML
(``null`` for None); a field without a default is ``required``. The text comes
from the plugin itself (its class docstring and the docstring under each ``Config``
field, which ``clft.testing`` requires), so a third-party plugin is shown alike.
"""

from __future__ import annotations

import inspect
import textwrap
from importlib import metadata

from clft.config.loading import config_fields
from clft.errors import ConfigError
from clft.registry import REGISTRIES, Entry

INDENT = "  "


def show(name: str) -> str:
    """The description of every plugin called ``name``; ConfigError naming the valid names when none is."""
    found = [(kind, entry) for kind, registry in REGISTRIES.items()
             for entry in registry.entries() if entry.name == name]
    if not found:
        names = "; ".join(f"{kind}: {', '.join(registry.names())}" for kind, registry in REGISTRIES.items())
        raise ConfigError(f"no strategy, benchmark or backbone is called {name!r}; {names}")
    return "\n\n".join(describe_entry(REGISTRIES[kind].singular, entry) for kind, entry in found)


def describe_entry(singular: str, entry: Entry) -> str:
    """One plugin: its kind, name and distribution, docstring and options (module docstring)."""
    head = f"{singular} {entry.name} (distribution {distribution_text(entry.distribution)})"
    if entry.cls is None:
        return f"{head}\n{INDENT}unusable: {entry.error}"
    lines = [head, ""]
    doc = inspect.cleandoc(entry.cls.__doc__ or "(no docstring)")
    lines += [textwrap.indent(doc, INDENT), ""]
    fields = config_fields(entry.cls.Config)
    if not fields:
        lines.append(f"{INDENT}options: none")
    else:
        lines.append(f"{INDENT}options (a YAML block: {{name: {entry.name}, OPTION: VALUE, ...}}):")
        for field in fields:
            lines.append(f"{INDENT * 2}{field.name}: {field.type} = {field.default}")
            lines.append(textwrap.indent(inspect.cleandoc(field.doc or "(undocumented)"), INDENT * 4))
    return "\n".join(lines)


def distribution_text(distribution: str) -> str:
    """``clft 0.1.0``; the name alone where no installed distribution has it (a test registration)."""
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except (metadata.PackageNotFoundError, ValueError):
        return distribution
