"""YAML with a bound on what aliases expand to, and short quotes of values in messages.

``yaml.safe_load`` builds a "billion laughs" document (anchors nested in anchors)
as shared references: cheap in memory until something walks it (a ``repr`` in an
error message, ``copy.deepcopy``, ``json.dumps``), which then needs exponential
time and memory. ``safe_load_bounded`` composes the node graph first and counts
the nodes it expands to (memoised per node, so the count is linear in the graph),
refusing a document above ``MAX_NODES`` or with a recursive alias before anything
is constructed.

A key given twice in one mapping is refused (YAML 1.2 forbids it; PyYAML kept the last one
silently, so a second ``train:`` block replaced the first unseen).

Booleans follow YAML 1.2 (``true``/``false`` only): PyYAML's YAML 1.1 reading of ``yes``, ``no``,
``on`` and ``off`` turned ``train.mixed_precision=no`` (a valid value) into ``False`` and an error
that listed ``'no'`` as valid.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

import yaml

MAX_NODES = 100_000
"""Nodes an expanded experiment document may have (a real experiment has a few hundred)."""


class DuplicateKeyError(ValueError):
    """A mapping that gives one key twice (YAML 1.2 forbids it; PyYAML keeps the last silently)."""


class Yaml12Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose implicit booleans are YAML 1.2's: true/false (any case PyYAML accepts),
    and whose mappings refuse a repeated key (``DuplicateKeyError`` naming the key and both lines;
    keys brought in by a ``<<`` merge may be overridden, as YAML's merge key means)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = self.construct_object(key_node), key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise DuplicateKeyError(f"key {brief(key)} is given twice (lines {first_line[key]} and {line}); "
                                            "keep one")
                first_line[key] = line
            except TypeError:  # an unhashable key: SafeConstructor reports it
                continue
        return super().construct_mapping(node, deep)


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class YAMLBombError(ValueError):
    """A document whose aliases expand beyond ``MAX_NODES`` nodes, or refer to themselves."""


def safe_load_bounded(text: str, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load(text)``, refusing documents that expand to more than ``max_nodes`` nodes."""
    loader = Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, max_nodes)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def expanded_size(node: yaml.Node, limit: int) -> int:
    """Nodes in the tree ``node`` stands for once every alias is expanded: size(n) = 1 + Σ size(child)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(current: yaml.Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YAMLBombError("a recursive alias (an anchor used inside itself)")
        open_nodes.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            total += sum(size(child) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in current.value)
        if total > limit:
            raise YAMLBombError(f"aliases expand to more than {limit} nodes")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(node)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple = 2, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 40, 40, 24
MAX_QUOTE = 80


def brief(value: Any) -> str:
    """A ``repr`` of ``value`` of at most ``MAX_QUOTE`` characters, without walking all of it
    (reprlib stops at a depth and item count, so a huge or self-referring value is cheap)."""
    try:
        text = _SHORT.repr(value)
    except Exception:  # a value whose __repr__ fails: its type is still worth naming
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."
