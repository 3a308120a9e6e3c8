"""Built-in strategies: each module registers itself; imported explicitly here (no scanning)."""

from clft.strategies import (  # noqa: F401
    adapter_per_task,
    agem,
    der,
    derpp,
    ewc,
    finetune,
    gem,
    joint,
    l2,
    l2p,
    lwf,
    mas,
    o_lora,
    progressive_prompts,
    rehearsal,
    replay,
    si,
)
