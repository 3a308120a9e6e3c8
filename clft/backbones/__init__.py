"""Built-in backbones: each module registers itself; imported explicitly here (no scanning)."""

from clft.backbones import hf_causal_lm, hf_classifier, hf_seq2seq, mlp  # noqa: F401
