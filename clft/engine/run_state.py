"""What a run has measured so far: the checkpointed part of a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from clft.config.yaml_safe import brief


@dataclass
class RunState:
    """``acc[i][j]``: accuracy on task j after training task i; rows exist for finished tasks."""

    next_task: int = 0
    acc: list[list[float]] = field(default_factory=list)
    baseline_acc: list[float] | None = None
    train_seconds: list[float] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    """This run's peak (``clft.engine.devices.reset_peak_memory`` at its start; method in ``memory_method``)."""
    memory_at_start_mb: float = 0.0
    """Resident memory when the run (or its resumption) started: peak minus this is the run's own growth."""
    memory_method: str = ""
    skipped_batches: int = 0
    general: list[list[float]] = field(default_factory=list)
    """Scores on the held-out general-ability tasks: row 0 before training, row i+1 after task i."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunState":
        """The state ``to_json`` wrote; ValueError when ``data`` is not such a state (a damaged checkpoint)."""
        if not isinstance(data, dict) or not isinstance(data.get("next_task"), int):
            raise ValueError("run_state is not a mapping with an integer next_task")
        state = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        if not isinstance(state.acc, list) or len(state.acc) != state.next_task or state.baseline_acc is None:
            raise ValueError(f"run_state has {brief(state.acc)} rows for next_task {state.next_task}")
        return state
