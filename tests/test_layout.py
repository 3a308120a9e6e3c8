"""The package's structure (docs/architecture.md, "Packages"): read with ``ast`` only, nothing executed.

- no import cycle between clft's modules (a package's ``__init__`` re-exporting its own modules is no cycle);
- no module imports a private (``_name``) from another module;
- the paths plugins and scripts import keep working where names moved (re-exports);
- the top level of ``clft/`` holds the packages and the plugin API, little else.
"""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clft"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``package`` (``pkg/__init__.py`` is ``pkg``)."""
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_from(module: str, path: Path, modules: dict[str, Path]):
    """Yields ``(target module, imported name or None)`` for every import of a clft module in ``path``
    (at any depth: imports inside functions and ``TYPE_CHECKING`` blocks count)."""
    root = module.split(".")[0]
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root:
                continue
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    yield f"{target}.{alias.name}", None  # a module imported from its package
                elif target in modules:
                    yield target, alias.name


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the clft modules it imports, without a package's ``__init__`` -> its own modules."""
    modules = module_files(package)
    graph = {}
    for module, path in modules.items():
        targets = {target for target, _ in imported_from(module, path, modules) if target != module}
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(module + ".")}
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def module_aliases(module: str, path: Path, modules: dict[str, Path]) -> dict[str, str]:
    """Local name -> clft module, for modules imported whole (``from clft import sweep``, ``import a.b as c``)."""
    aliases = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    aliases[alias.asname] = alias.name
    return aliases


def private_imports(package: Path = PACKAGE) -> list[str]:
    """``"a imports b._x"`` for each private name a module imports from another module, and ``"a uses b._x"``
    for each private attribute it reads of another module it imported whole."""
    modules = module_files(package)
    found = []
    for module, path in modules.items():
        for target, name in imported_from(module, path, modules):
            if name and is_private(name) and target != module:
                found.append(f"{module} imports {target}.{name}")
        aliases = module_aliases(module, path, modules)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and is_private(node.attr)
                    and aliases.get(node.value.id, module) != module):
                found.append(f"{module} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_clft_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_no_module_imports_a_private_name_of_another():
    assert private_imports() == []


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


def test_the_checks_find_a_cycle_through_a_function_level_import_and_a_private_import(tmp_path):
    package = write_package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import f\n",  # re-exporting its own module: no cycle
        "pkg/a.py": "from pkg.b import _helper\n\ndef f():\n    pass\n",
        "pkg/b.py": "def _helper():\n    from pkg import c\n    return c._private\n",
        "pkg/c.py": "from pkg.a import f\n",
    })
    assert find_cycle(import_graph(package)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    assert private_imports(package) == ["pkg.a imports pkg.b._helper", "pkg.b uses pkg.c._private"]


def test_a_package_reexporting_its_modules_is_no_cycle(tmp_path):
    package = write_package(tmp_path, {"pkg/__init__.py": "from pkg.a import f\n",
                                       "pkg/a.py": "from pkg.b import g\n\ndef f():\n    pass\n",
                                       "pkg/b.py": "def g():\n    pass\n"})
    assert find_cycle(import_graph(package)) is None


# old path -> (new module, names): what plugin packages, docs/writing-plugins.md and scripts import
REEXPORTS = {
    "clft.experiment": ("clft.config.experiment", ["ExperimentConfig", "TrainConfig", "load_experiment",
                                                   "resolve_spec"]),
    "clft.config": ("clft.config.loading", ["make_dataclass_instance", "load_yaml", "apply_overrides", "to_plain",
                                            "config_fields", "field_docs", "parse_yaml"]),
    "clft.data": ("clft.data.tasks", ["make_task", "label_phrase", "data_dir", "require_file", "with_task_column",
                                      "check_labels", "label_array", "subsample_per_class", "check_disjoint_classes",
                                      "LocalDataConfig"]),
    "clft.results": ("clft.results.files", ["load_results"]),
    "clft.sweep": ("clft.sweep.run", ["run_experiment", "run_one"]),
}


@pytest.mark.parametrize("old", sorted(REEXPORTS))
def test_a_moved_name_is_still_importable_from_its_old_path(old):
    new, names = REEXPORTS[old]
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    assert [n for n in names if getattr(old_module, n, None) is not getattr(new_module, n)] == []


def test_the_results_path_reexports_the_atomic_writers_and_the_schema_version():
    import clft.results
    import clft.results.check
    import clft.storage.atomic

    assert clft.results.atomic_write_json is clft.storage.atomic.atomic_write_json
    assert clft.results.WriteError is clft.storage.atomic.WriteError
    assert clft.results.SCHEMA_VERSION == clft.results.check.SCHEMA_VERSION == 1


def test_the_top_level_holds_the_packages_the_plugin_api_and_the_command():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "cli.py", "console.py", "errors.py", "experiment.py", "plugins.py",
                   "registry.py", "types.py"]
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert packages == ["backbones", "benchmarks", "config", "data", "engine", "results", "storage", "strategies",
                        "sweep", "testing"]


# package -> packages it must not import (the layers of docs/architecture.md)
FORBIDDEN = {
    "clft.results": ("clft.sweep", "clft.engine", "clft.cli"),
    "clft.engine": ("clft.sweep", "clft.cli", "clft.results"),
    "clft.storage": ("clft.sweep", "clft.engine", "clft.results", "clft.data", "clft.cli"),
    "clft.data": ("clft.sweep", "clft.engine", "clft.results", "clft.cli"),
    "clft.config": ("clft.sweep", "clft.engine", "clft.data", "clft.storage", "clft.cli"),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_point_one_way(package):
    graph = import_graph()
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items() if m == package or m.startswith(package + ".")
                   for t in targets if any(t == f or t.startswith(f + ".") for f in FORBIDDEN[package]))
    assert wrong == []
