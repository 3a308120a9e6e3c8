"""Helpers for the strategies that keep one peft adapter per task (``adapter-per-task``, ``o-lora``).

Adapters are named ``task<id>`` and live in the backbone's ``PeftModel``,
through peft's named-adapter API only: a backbone without a ``peft`` block is
wrapped by ``peft.get_peft_model`` when its first adapter is added (so
``backbone.model`` becomes the ``PeftModel``), later ones come from
``PeftModel.add_adapter``. Which adapters run is set with the tuner's
``set_adapter`` (a name or a list of names) in inference mode, then
``set_requires_grad`` re-enables exactly the adapter that trains; so
switching adapters for evaluation never leaves an old adapter trainable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from clft.errors import ConfigError
from clft.types import Backbone


def adapter_name(task_id: int) -> str:
    return f"task{task_id}"


def add_adapter(backbone: Backbone, name: str, block: dict) -> None:
    """Add adapter ``name`` built from the peft config ``block`` (wrapping the model on the first call)."""
    from peft import PeftModel, get_peft_config, get_peft_model

    try:
        config = get_peft_config(dict(block))
        if isinstance(backbone.model, PeftModel):
            backbone.model.add_adapter(name, config)
        else:
            backbone.model = get_peft_model(backbone.model, config, adapter_name=name)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot add adapter {name!r} from peft block {block}: {exc}") from None


def activate(backbone: Backbone, names: list[str], trainable: str | None = None) -> None:
    """Make ``names`` the active adapters (all frozen), then let ``trainable`` (one of them) train."""
    peft_model = backbone.model
    peft_model.base_model.set_adapter(names if len(names) > 1 else names[0], inference_mode=True)
    peft_model.active_adapter = names[-1]  # the PeftModel's own record holds one name
    if trainable is not None:
        peft_model.base_model.set_requires_grad(trainable, True)


def adapter_parameters(backbone: Backbone, name: str) -> dict[str, torch.nn.Parameter]:
    """The parameters of adapter ``name`` (LoRA matrices, its ``modules_to_save`` copies), by qualified name."""
    return {n: p for n, p in backbone.model.named_parameters() if f".{name}." in n}


def parameter_bytes(params: dict[str, torch.Tensor]) -> int:
    return sum(p.numel() * p.element_size() for p in params.values())


def lora_a_matrices(backbone: Backbone, name: str) -> dict[str, torch.nn.Parameter]:
    """LoRA A matrices [r, in] of adapter ``name`` keyed by their layer's name (``...query``)."""
    suffix = f".lora_A.{name}.weight"
    return {n[: -len(suffix)]: p for n, p in backbone.model.named_parameters() if n.endswith(suffix)}


@contextmanager
def adapters_disabled(backbone: Backbone) -> Iterator[None]:
    """Run the base model: every adapter (and ``modules_to_save`` copy) off, through peft's
    ``PeftModel.disable_adapter``; a no-op for a backbone that is not peft-wrapped. peft re-enables
    the adapters on exit and marks the active ones trainable: call ``activate`` afterwards."""
    from peft import PeftModel

    if not isinstance(backbone.model, PeftModel):
        yield
        return
    with backbone.model.disable_adapter():
        yield
