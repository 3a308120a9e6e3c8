"""Storage: how clft writes to disk so that a kill never leaves half a file.

- ``atomic``: atomic writes of bytes, text and JSON (``WriteError`` on a full disk), umask-respecting modes.
- ``state_io``: nested state (dicts/lists of tensors, arrays, numbers) as safetensors + JSON.
- ``checkpoint``: a per-task checkpoint folder (model, state, RNG), verified before it is restored.
- ``faults``: ``CLFT_KILL_AT=<point>`` kills the process at a named point (crash-safety tests).

Imports only ``clft.errors`` and ``clft.config.yaml_safe``.
"""
