"""Engine: the one training/evaluation loop and what it runs on.

- ``runner``: ``Run`` and ``execute(run)``: tasks in order, the strategies' hooks, the accuracy matrix.
- ``run_state``: what a run has measured so far (the checkpointed part); ``run_checkpoint``: a run's
  per-task checkpoint, written after each task, verified and restored on ``--resume``.
- ``devices``: devices and mixed precision (accelerate); ``distributed``: data parallelism (``Parallel``).
- ``scoring``: per-task scores of generated text.

Knows nothing of experiments, sweeps or result files: imports the plugin API, ``clft.data`` (batches)
and ``clft.storage`` (checkpoint files).
"""
