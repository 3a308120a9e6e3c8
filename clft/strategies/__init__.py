"""Built-in strategies: each module registers itself; imported explicitly here (no scanning)."""

from clft.strategies import (  # noqa: F401
    adapter_per_task,
    agem,
    der,
    derpp,
    ewc,
    finetune,
    joint,
    l2p,
    lwf,
    mas,
    o_lora,
    progressive_prompts,
    replay,
    si,
)
