"""``python -m clft ...`` (and ``accelerate launch -m clft run EXP``): the ``clft`` command."""

import sys

from clft.cli import main

if __name__ == "__main__":
    sys.exit(main())
