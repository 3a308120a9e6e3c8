"""Import the built-in plugins so their registration decorators run (explicit, no scanning)."""

import clft.backbones  # noqa: F401
import clft.benchmarks  # noqa: F401
import clft.strategies  # noqa: F401
