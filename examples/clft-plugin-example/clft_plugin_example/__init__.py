"""An example clft plugin package (see clft's docs/writing-plugins.md).

Its three plugins are registered by the entry points in ``pyproject.toml`` only;
importing this package registers nothing.
"""
