"""Build hook (everything else is in pyproject.toml): ship the presets in the wheel.

The rule: every ``experiments/*.yaml`` and ``benchmarks/*.yaml`` of the source
tree is a preset. They stay at the top of the checkout (DESIGN.md's layout);
``build_py`` copies them into the wheel as ``clft/config/presets/{experiments,benchmarks}/``,
where ``clft.config.presets`` finds them. A checkout or an editable install reads the
top-level folders directly, so a new file dropped into ``experiments/`` is a
preset with no further step.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PRESET_FOLDERS = ("experiments", "benchmarks")


class BuildPyWithPresets(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's folders
            return
        root = Path(__file__).resolve().parent
        for folder in PRESET_FOLDERS:
            target = Path(self.build_lib, "clft", "config", "presets", folder)
            self.mkpath(str(target))
            for source in sorted((root / folder).glob("*.yaml")):
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithPresets})
