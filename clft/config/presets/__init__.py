"""Built-in experiments and benchmark streams ("presets"), found by name.

The rule: every ``experiments/*.yaml`` and ``benchmarks/*.yaml`` of the source
tree is a preset, named by its file stem, with no further step. In a checkout
(or an editable install) they are read from those folders; the wheel carries
them as ``clft/config/presets/experiments/`` and ``clft/config/presets/benchmarks/``
(``setup.py`` copies them at build time).

A user's own file wins over a preset: ``clft run quickstart`` runs
``./quickstart``, ``./quickstart.yaml`` or ``./experiments/quickstart.yaml``
when one exists, and the built-in ``quickstart`` preset otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from clft.errors import ConfigError

KINDS = ("experiments", "benchmarks")
SUFFIXES = (".yaml", ".yml")
_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE_DIR.parents[2]


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str
    path: Path

    @property
    def description(self) -> str:
        """An experiment's ``description:``, else the file's first comment line."""
        text = self.path.read_text(encoding="utf-8")
        if self.kind == "experiments":
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                data = None
            if isinstance(data, dict) and data.get("description"):
                return " ".join(str(data["description"]).split())
        return _leading_comment(text)


def _leading_comment(text: str, width: int = 110) -> str:
    """The file's opening comment block up to its ``Data:`` line, on one line, cut at ``width``."""
    words = []
    for line in text.splitlines():
        body = line.lstrip("#").strip()
        if not line.startswith("#") or body.startswith("Data:"):
            break
        words += body.split()
    joined = " ".join(words)
    return joined if len(joined) <= width else joined[: width - 1].rstrip() + "…"


def preset_dir(kind: str) -> Path | None:
    """The folder holding the ``kind`` presets: the wheel's copy, else the checkout's; None when neither exists."""
    if kind not in KINDS:
        raise ValueError(f"unknown preset kind {kind!r}; valid: {', '.join(KINDS)}")
    for folder in (_PACKAGE_DIR / kind, _CHECKOUT / kind):
        if folder.is_dir() and (folder == _PACKAGE_DIR / kind or (_CHECKOUT / "pyproject.toml").is_file()):
            return folder
    return None


def presets(kind: str) -> list[Preset]:
    """Every preset of ``kind``, sorted by name."""
    folder = preset_dir(kind)
    if folder is None:
        return []
    files = [p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()]
    return sorted((Preset(p.stem, kind, p) for p in files), key=lambda preset: preset.name)


def find_preset(kind: str, name: str) -> Path | None:
    """The file of preset ``name`` (a stem, or ``<kind>/<stem>.yaml``), or None."""
    path = Path(name)
    if path.suffix in SUFFIXES and path.parent.as_posix() in (".", kind):
        name = path.stem
    return next((p.path for p in presets(kind) if p.name == name), None)


def find_experiment(ref: str) -> Path:
    """The experiment file ``ref`` names: the user's own file first, then the preset of that name.

    ``ref`` is a path (``my/exp.yaml``), a name (``quickstart``) or a checkout-style
    path (``experiments/quickstart.yaml``, found as the preset outside a checkout).
    Raises ConfigError naming the presets when neither exists.
    """
    path = Path(ref)
    own = [path] if path.suffix in SUFFIXES else [path, *(Path(ref + s) for s in SUFFIXES),
                                                  *(Path("experiments") / (ref + s) for s in SUFFIXES)]
    for candidate in own:
        if candidate.is_file():
            return candidate
    preset = find_preset("experiments", ref)
    if preset is not None:
        return preset
    names = ", ".join(p.name for p in presets("experiments")) or "(none installed)"
    what = "experiment file not found" if path.suffix or "/" in ref else "no experiment file or preset named"
    raise ConfigError(f"{what}: {ref}; presets: {names} (`clft presets` describes them)")
