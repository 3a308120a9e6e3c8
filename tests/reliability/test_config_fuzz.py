"""Bad configs never crash: random YAML, overrides and plugin options give a config or a one-line ClftError.

Hypothesis feeds the loader (``parse_yaml`` + ``apply_overrides`` +
``make_dataclass_instance``, and ``load_experiment`` on files that may not be
UTF-8) and every registered plugin's ``build`` with random option dicts. Any
exception other than ``ClftError`` (or a message spanning several lines, or an
example running for seconds: a hang) fails the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import tempfile
import types
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clft.config import apply_overrides, make_dataclass_instance, parse_yaml
from clft.config.experiment import ExperimentConfig, TrainConfig, load_experiment
from clft.errors import ClftError
from clft.registry import REGISTRIES, backbones, benchmarks, strategies

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
TOP_KEYS = [f.name for f in dataclasses.fields(ExperimentConfig)]
TRAIN_KEYS = [f.name for f in dataclasses.fields(TrainConfig)]
PLUGIN_NAMES = sorted({n for r in REGISTRIES.values() for n in r.names()})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(),
    st.text(max_size=12), st.sampled_from(PLUGIN_NAMES + TOP_KEYS + ["class-il", "task-il", "1e-3", "nan"]),
)
keys = st.one_of(st.sampled_from(TOP_KEYS + TRAIN_KEYS + ["name", "file"]), st.text(max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=10)
documents = st.one_of(
    st.dictionaries(st.sampled_from(TOP_KEYS + ["epochz"]), values, max_size=6),
    st.fixed_dictionaries({"seeds": st.lists(st.integers(0, 3), max_size=2), "compare": st.lists(values, max_size=2),
                           "train": st.dictionaries(st.sampled_from(TRAIN_KEYS), values, max_size=3)}),
)
ROOTS = ["seeds", "strategies", "compare", "train", "benchmark", "backbone", "scenarios", "published", "name"]
SEGMENTS = ["0", "1", "9", "²", "١", "-1", "", "name", "lam", "epochs", "lr", "hidden"]
dotted = st.tuples(st.one_of(st.sampled_from(ROOTS), keys), st.lists(st.one_of(keys, st.sampled_from(SEGMENTS)),
                                                                   max_size=2)).map(lambda t: ".".join([t[0], *t[1]]))
VALUE_TEXTS = ["2020-13-45", "[" * 400, "&a [*a]", ".nan", "-.inf", "1e400", "!!binary x", "{a: 1", "'", "\x00", "~"]
overrides = st.lists(st.one_of(
    st.tuples(dotted, st.one_of(st.text(max_size=12), st.sampled_from(VALUE_TEXTS))).map("=".join),
    st.tuples(dotted, values).map(lambda kv: f"{kv[0]}={yaml.safe_dump(kv[1], default_flow_style=True).strip()}"),
    st.text(max_size=12)), max_size=3)
YAML_SNIPPETS = ["a: 2020-13-45", "a: !!binary ===", "a: !!python/object:os.system x", "a: &x [*x]",
                 "a: [[[[[[", "\x00", "? [a]\n: 1", "a: !!int 0x", "train: {epochs: 1e400}", "- 1\n- 2",
                 "train: {lr: .nan}", "seeds: [1, 2, 3]\nseeds: 4", "a: 1000-01-01 99:99:99", "%YAML 9.9\n---\na: 1",
                 "a: " + "[" * 300 + "]" * 300, "a: " + "{b: " * 300 + "1" + "}" * 300]
texts = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=60),
    st.tuples(st.sampled_from(YAML_SNIPPETS), documents.map(yaml.safe_dump)).map("\n".join),
)


@contextlib.contextmanager
def no_hang(seconds: float = 10.0):
    """Fail (TimeoutError) instead of hanging when one example runs for ``seconds``."""

    def alarm(*_):
        raise TimeoutError(f"config handling ran for over {seconds}s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def config_or_one_line_error(load):
    """Call ``load()``; a ClftError must be one non-empty line. Anything else propagates (a failure)."""
    with no_hang():
        try:
            return load()
        except ClftError as exc:
            message = str(exc)
            assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
            return exc


def load_text(text: str, items: list[str]) -> ExperimentConfig:
    raw = apply_overrides(parse_yaml(text, "fuzz.yaml"), items)
    config = make_dataclass_instance(ExperimentConfig, raw, "experiment")
    config.strategy_groups()
    return config


@SETTINGS
@given(texts, overrides)
def test_random_yaml_and_overrides_give_a_config_or_a_one_line_error(text, items):
    result = config_or_one_line_error(lambda: load_text(text, items))
    assert isinstance(result, (ExperimentConfig, ClftError))


VALID = {"name": "fuzz", "seeds": [0, 1], "benchmark": {"name": "split-digits"}, "backbone": {"name": "mlp"},
         "compare": ["finetune", {"name": "ewc", "lam": 1.0}, ["replay", "ewc"]], "train": {"epochs": 1}}
realistic = st.lists(st.tuples(
    st.tuples(st.sampled_from(ROOTS), st.lists(st.sampled_from(SEGMENTS), max_size=3)).map(
        lambda t: ".".join([t[0], *t[1]])),
    st.one_of(st.sampled_from(VALUE_TEXTS), st.text(max_size=8), values.map(lambda v: yaml.safe_dump(v).strip())),
).map("=".join), min_size=1, max_size=4)


@SETTINGS
@given(realistic)
def test_random_overrides_of_a_valid_experiment(items):
    text = yaml.safe_dump(VALID)
    result = config_or_one_line_error(lambda: load_text(text, items))
    assert isinstance(result, (ExperimentConfig, ClftError))


@SETTINGS
@given(st.one_of(st.binary(max_size=40), texts.map(lambda t: t.encode("utf-8", "surrogatepass"))), overrides)
def test_random_files_through_load_experiment(data, items):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exp.yaml"
        path.write_bytes(data)
        result = config_or_one_line_error(lambda: load_experiment(str(path), items))
    assert isinstance(result, (tuple, ClftError))


def typed(tp) -> st.SearchStrategy:
    """Values of (roughly) type ``tp``, boundaries included: what passes the type check reaches __post_init__."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([typed(a) for a in args])
    if origin in (list, tuple):
        return st.lists(typed(args[0]) if args else values, max_size=4)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.fixed_dictionaries({}, optional={f.name: typed(hints[f.name]) for f in dataclasses.fields(tp)})
    simple = {int: st.integers(-2, 12), float: st.floats(), bool: st.booleans(), str: st.text(max_size=8),
              type(None): st.none()}
    return simple.get(tp, values)


def plugin_options(registry):
    """(name, options): the plugin's own keys with typed or random values, sometimes a random key."""
    def for_name(name):
        config = registry.get(name).Config
        hints = typing.get_type_hints(config)
        own = {f.name: st.one_of(typed(hints[f.name]), typed(hints[f.name]), values)
               for f in dataclasses.fields(config)}
        options = st.fixed_dictionaries({}, optional=own)
        extra = st.dictionaries(keys, values, max_size=1)
        return st.tuples(options, st.one_of(st.just({}), st.just({}), extra)).map(lambda o: (name, {**o[0], **o[1]}))

    return st.sampled_from(registry.names()).flatmap(for_name)


@pytest.mark.parametrize("registry", [strategies, benchmarks], ids=["strategies", "benchmarks"])
@SETTINGS
@given(data=st.data())
def test_random_plugin_options_build_or_fail_in_one_line(registry, data):
    name, options = data.draw(plugin_options(registry))
    result = config_or_one_line_error(lambda: registry.build({"name": name, **options}))
    assert isinstance(result, (registry.get(name), ClftError))


@SETTINGS
@given(plugin_options(backbones))
def test_random_backbone_options_resolve_or_fail_in_one_line(name_options):
    """Backbone configs only (building an hf backbone loads a model; the mlp is built in full below)."""
    name, options = name_options
    cls = backbones.get(name)
    result = config_or_one_line_error(lambda: make_dataclass_instance(cls.Config, options, f"backbone {name!r}"))
    assert isinstance(result, (cls.Config, ClftError))


@pytest.fixture(scope="module")
def digits_stream():
    bench = benchmarks.build({"name": "split-digits"})
    return bench, bench.tasks(0)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["hidden", "dropout", "activation"]), values, max_size=3))
def test_random_mlp_options_build_or_fail_in_one_line(digits_stream, options):
    bench, tasks = digits_stream
    result = config_or_one_line_error(lambda: backbones.build({"name": "mlp", **options}, bench, tasks))
    assert isinstance(result, (backbones.get("mlp"), ClftError))
