"""Built-in strategies: each module registers itself; imported explicitly here (no scanning)."""

from clft.strategies import ewc, finetune, joint, replay  # noqa: F401
