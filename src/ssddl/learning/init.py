"""Warm starts: load saved weights (``init``) into a freshly built model.

A run writes its model twice, ``model.pt`` (``torch.save`` of the state dict, read back with
``torch.load(..., weights_only=True)``: no pickled code runs) and ``model.safetensors``. Either
is accepted. Its tensors must be exactly the model's: the same names, shapes and floating
point; anything else is refused in one line naming the file and the first mismatch, before
any training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ssddl.exceptions import ConfigurationError

__all__ = ["INIT_SUFFIXES", "load_init", "read_state"]

INIT_SUFFIXES = (".pt", ".safetensors")


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def read_state(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pt`` or ``.safetensors`` state dict; a missing, unreadable or
    damaged file, or one that is not a state dict, is refused in one line."""
    file = Path(path).expanduser()
    if file.suffix not in INIT_SUFFIXES:
        raise ConfigurationError(
            f"init={path!r}: give a model.pt or model.safetensors file (a run directory's "
            f"model files)"
        )
    if not file.is_file():
        raise ConfigurationError(f"init={path!r}: no such file; give a run's model.pt")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many kinds on a damaged file
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ConfigurationError(
            f"init={path!r}: cannot be read as a {file.suffix} state dict ({why}); it is "
            f"damaged or not a model file"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ConfigurationError(
            f"init={path!r}: holds no state dict of named tensors; give a run's model.pt"
        )
    return state


def _mismatch(state: dict[str, torch.Tensor], model: nn.Module) -> str | None:
    """The first difference between ``state`` and the model's state dict, in words."""
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    if missing:
        return f"it has no tensor {missing[0]!r} (the model has {len(mine)} tensors)"
    extra = [k for k in state if k not in mine]
    if extra:
        return f"its tensor {extra[0]!r} is not in the model"
    for name, tensor in mine.items():
        saved = state[name]
        if saved.shape != tensor.shape:
            return f"tensor {name!r} has shape {_shape(saved)}, the model's is {_shape(tensor)}"
        if saved.dtype.is_floating_point != tensor.dtype.is_floating_point:
            return f"tensor {name!r} is {saved.dtype}, the model's is {tensor.dtype}"
    return None


def load_init(path: str, model: nn.Module) -> None:
    """Load the weights in ``path`` into ``model`` (in place), after checking that they are
    the model's tensors with its shapes; refused in one line naming the file otherwise."""
    state = read_state(path)
    why = _mismatch(state, model)
    if why is not None:
        raise ConfigurationError(
            f"init={path!r} does not fit the model: {why}; give the model.pt of a run with "
            f"the same --model, --dataset and their options"
        )
    model.load_state_dict(state)
