"""Built-in benchmarks: each module registers itself; imported explicitly here (no scanning)."""

from clft.benchmarks import (  # noqa: F401
    avalanche_stream,
    banking77,
    clinc150,
    digits,
    instruction_tuning,
    lfpt5,
    mnist,
    superni,
    synthetic_text,
    text_cl,
    text_classification,
)
