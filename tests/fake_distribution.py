"""A distribution installed by hand, as pip would: a package and a dist-info whose RECORD lists its files."""

from __future__ import annotations

from pathlib import Path


def write_distribution(site: Path, module: str, version: str, source: str,
                       entry_points: dict[str, dict[str, str]] | None = None) -> Path:
    """``site/module/__init__.py`` holding ``source`` and ``site/module-version.dist-info`` (METADATA,
    INSTALLER, top_level.txt, entry_points.txt when given, RECORD); an older dist-info is replaced."""
    package, info = site / module, site / f"{module}-{version}.dist-info"
    for old in site.glob(f"{module}-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    package.mkdir(parents=True, exist_ok=True)
    info.mkdir()
    (package / "__init__.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "top_level.txt").write_text(f"{module}\n")
    listed = [f"{module}/__init__.py", f"{info.name}/METADATA", f"{info.name}/INSTALLER", f"{info.name}/top_level.txt",
              f"{module}/__pycache__/__init__.cpython-311.pyc"]
    if entry_points:
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in names.items())
            for group, names in entry_points.items()))
        listed.append(f"{info.name}/entry_points.txt")
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in listed) + f"{info.name}/RECORD,,\n")
    return info
