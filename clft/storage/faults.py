"""Fault injection for crash-safety tests: ``CLFT_KILL_AT=<point>`` SIGKILLs the process there.

Points are plain strings named where ``kill_point`` is called, e.g.
``train:task2:step3``, ``checkpoint:task1:before-rename``, ``result:before-rename``.
Several points may be given, comma-separated; the first one reached kills. Unset
(the normal case) it costs one dictionary lookup per call.
"""

from __future__ import annotations

import os
import signal

ENV = "CLFT_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if ``name`` is listed in ``$CLFT_KILL_AT``."""
    wanted = os.environ.get(ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
