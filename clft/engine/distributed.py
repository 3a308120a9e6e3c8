"""One run on several processes: data-parallel training under ``accelerate launch``.

``accelerate launch [--cpu] --num_processes P -m clft run EXP`` (or ``torchrun
--nproc_per_node P -m clft run EXP``) starts P processes; accelerate sets up
``torch.distributed`` (NCCL on GPUs, gloo on CPUs). Every process builds the same
seeded run, and then:

- **Batches.** The batch order is the seeded single-process one. Process r takes the
  r-th contiguous slice of each global batch of N examples (``shard``) and scales its
  loss by n_r / N; the gradients are summed over processes (``reduce_gradients``)
  before the strategies' gradient hooks, clipping and the step. Σ_r (n_r/N)·mean_r =
  the mean over the global batch, so the update is the single-process one (up to
  float summation order).
- **Strategy terms.** ``extra_loss`` sees the whole global batch on every process and
  its term is scaled by 1/P: its value, its gradient and the strategy's own state
  (reservoir draws, DER's stored logits, replay's memory batch) are those of a single
  process, on every process. ``before_step`` hooks read the summed gradients,
  ``after_task`` hooks see the same model and data: their state (Fisher, SI's path
  integral, A-GEM's reference gradient, memories) is the same on every process.
  docs/scaling.md has the table, strategy by strategy.
- **Evaluation.** Process r scores eval batches r, r+P, ...; the correct counts are
  summed, so each cell of the matrix is the single-process one.
- **Files** (``clft.sweep.parallel_run``). Only the main process takes the run's lock, writes checkpoints and the
  result; its decisions (skip / train / error) are broadcast to the others.
- **Exit.** After the last run every process meets at a barrier and destroys the
  process group (``close``), so none exits with gloo's threads still running.

Hand-written instead of DDP: DDP fixes a module's parameter set when it wraps it,
but strategies add and freeze adapters per task (``before_task``), and the weighting
above keeps uneven last batches exact. Collectives go through ``torch.distributed``
in the process group that accelerate created.
"""

from __future__ import annotations

import os

import numpy as np
import torch


class Parallel:
    """This process's place in a data-parallel group (``world`` = 1: a no-op everywhere)."""

    def __init__(self, world: int = 1, rank: int = 0) -> None:
        self.world, self.rank = world, rank

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> Parallel:
        """From the launcher's environment (``WORLD_SIZE``); initialises accelerate's process group."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(state.num_processes, state.process_index)

    def shard(self, indices) -> list:
        """This process's contiguous slice of a global batch (``numpy.array_split``: sizes differ by <= 1)."""
        return np.array_split(np.asarray(indices), self.world)[self.rank].tolist()

    def mine(self, batches: list) -> list:
        """Eval batches r, r + P, ... of this process."""
        return batches[self.rank :: self.world]

    def reduce_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """grad <- Σ_processes grad, in one flat all-reduce (a missing grad counts as zeros)."""
        if not self.active or not params:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1).float() for p in params])
        torch.distributed.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def sum(self, value: float) -> float:
        """Σ_processes value (a float64 all-reduce); ``value`` itself with one process."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        torch.distributed.all_reduce(tensor)
        return float(tensor.item())

    def broadcast(self, value):
        """The main process's ``value`` on every process (any picklable object)."""
        if not self.active:
            return value
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def close(self) -> None:
        """Wait for every process, then tear the process group down (no-op without one).

        Without ``destroy_process_group`` a gloo process can abort at interpreter exit
        ("terminate called without an active exception", pytorch/pytorch#190489), which
        fails the launch after every result is written.
        """
        if not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()

    def _device(self) -> torch.device:
        backend = torch.distributed.get_backend()
        return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


