"""Experiment configuration: YAML + dotted overrides -> typed dataclasses.

Each plugin's ``Config`` dataclass is its schema. ``make_dataclass_instance``
checks every key and value against the dataclass field types, so an unknown
key or a wrong type fails with one line naming the key and the valid choices.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from clft.config.yaml_safe import DuplicateKeyError, YAMLBombError, brief, safe_load_bounded
from clft.errors import ConfigError

_NONE = type(None)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` as type ``tp`` or raise ConfigError naming ``where``.

    Accepted conversions: int -> float, list -> tuple; everything else must
    already have the right type (YAML parses numbers and booleans for us).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in args and type(value) is type(args[args.index(value)]):
            return value
        raise ConfigError(f"{where}: {brief(value)} is not valid; valid: {', '.join(map(repr, args))}")
    if origin in (Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        options = [a for a in args if a is not _NONE]
        if len(options) == 1:  # Optional[X]: X's own message is the useful one
            return coerce(value, options[0], where)
        for arg in options:
            try:
                return coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {brief(value)}")
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {brief(value)}")
        item = args[0] if args else Any
        items = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {brief(value)}")
        key_tp, val_tp = args or (Any, Any)
        return {coerce(k, key_tp, where): coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {brief(value)}")
        return make_dataclass_instance(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return _finite(float(value) if abs(value) < 2**1000 else math.inf, where)
    if tp is float and isinstance(value, (str, float)):
        return _finite(_float_from_text(value, where) if isinstance(value, str) else value, where)
    if tp is int and isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT <= value <= MAX_INT:
        raise ConfigError(f"{where}: {brief(value)} is out of range; integers must lie in [-2^63, 2^63]")
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {brief(value)}")
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {tp.__name__}, got boolean {brief(value)}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {brief(value)}")
    return value


MAX_INT = 2**63


def _finite(value: float, where: str) -> float:
    """Every float option is a finite number: NaN or ±inf is never a meaningful hyper-parameter."""
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value}")
    return value


def _float_from_text(text: str, where: str) -> float:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; accept such numeric strings for floats."""
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where}: expected float, got str {brief(text)}") from None


def make_dataclass_instance(cls: type, options: dict, where: str) -> Any:
    """``cls(**options)`` with unknown keys and wrong types reported as ConfigError."""
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(options).__name__} {brief(options)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in options:
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(f"{where}: unknown key {brief(key)}; valid keys: {valid}")
    missing = [n for n, f in fields.items() if n not in options and _is_required(f)]
    if missing:
        raise ConfigError(f"{where}: missing required key(s): {', '.join(missing)}")
    values = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in options.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:  # __post_init__ validation
        raise ConfigError(f"{where}: {exc}") from None


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One option of a plugin's ``Config``: what ``clft show`` prints."""

    name: str
    type: str
    """The type as the YAML is checked against it (``int | None``)."""
    default: str
    """The default as YAML would write it (``200``, ``null``, ``[16]``), or ``required``."""
    doc: str
    """The field's docstring (the string right after it), empty when it has none."""


def config_fields(config: type) -> list[FieldDoc]:
    """Every init field of the dataclass ``config`` with its type, default and docstring, in order."""
    hints = typing.get_type_hints(config)
    docs = field_docs(config)
    found = []
    for f in dataclasses.fields(config):
        if not f.init:
            continue
        if _is_required(f):
            default = "required"
        else:
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = yaml.safe_dump(to_plain(value), default_flow_style=True, width=10_000).strip()
            default = default.removesuffix("\n...").strip()
        kind = _type_name(hints.get(f.name, f.type)).replace("NoneType", "None")
        found.append(FieldDoc(f.name, kind, default, docs.get(f.name, "").strip()))
    return found


def field_docs(config: type) -> dict[str, str]:
    """Attribute docstrings (a string right after the field) of ``config`` and its dataclass bases."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(config.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                docs[node.target.id] = after.value.value
    return docs


def to_plain(obj: Any) -> Any:
    """Dataclasses/tuples -> plain dicts/lists, for JSON and YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def load_yaml(path: str | Path) -> dict:
    """Read an experiment file; missing/unparseable/non-mapping files raise ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> dict:
    try:
        data = safe_load_bounded(text)
    except YAMLBombError as exc:
        raise ConfigError(f"{where}: refused: {exc}") from None
    except DuplicateKeyError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML{_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a constructor's error, e.g. a date 2020-13-45
        raise ConfigError(f"{where}: invalid YAML value: {_one_line(exc)}") from None
    if data is None:
        raise ConfigError(f"{where}: the file is empty; an experiment needs at least a benchmark and a backbone")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: an experiment must be a mapping, got {type(data).__name__}")
    return data


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`` at line N: problem`` of a YAML error, on one line (reader errors carry a position, not a line)."""
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).partition("\n")[0]
    return f"{at}: {_one_line(problem)}"


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.0.c=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    import copy

    try:
        data = copy.deepcopy(raw)
    except RecursionError:
        raise ConfigError("the experiment is nested too deeply") from None
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {brief(item)} must look like key.path=value (e.g. train.epochs=2)")
        try:
            value = safe_load_bounded(text) if text else ""
        except YAMLBombError as exc:
            raise ConfigError(f"override {brief(key)}: refused: {exc}") from None
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
            value = text  # not YAML (or a value YAML cannot build, e.g. 2020-13-45): keep the text
        _set_dotted(data, key.split("."), value, item)
    return data


def _set_dotted(node: Any, parts: list[str], value: Any, item: str) -> None:
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not (part.isascii() and part.isdigit()) or int(part) >= len(node):
                raise ConfigError(f"override {brief(item)}: {brief(part)} is not an index below {len(node)}")
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if not last and index not in node:
                node[index] = {}
        else:
            raise ConfigError(f"override {brief(item)}: cannot index into {type(node).__name__} with {brief(part)}")
        if last:
            node[index] = value
        else:
            node = node[index]
