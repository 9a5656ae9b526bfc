"""A model's parameters as one flat float32 vector, and back.

The order is ``model.parameters()`` order (shared parameters once), each tensor flattened in
row-major order. Buffers (e.g. batch-norm running statistics) are not included. Only float32
parameters are supported, so that the round trip is exact.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ssddl.exceptions import ConfigurationError, NonFiniteError

__all__ = ["model_to_vector", "parameter_count", "vector_to_model"]


def _parameters(model: nn.Module) -> list[torch.nn.Parameter]:
    if not isinstance(model, nn.Module):
        raise ConfigurationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    for i, p in enumerate(params):
        if p.dtype != torch.float32:
            raise ConfigurationError(
                f"parameter {i} of the model has dtype {p.dtype}; only float32 models are "
                "supported (call model.float())"
            )
    return params


def parameter_count(model: nn.Module) -> int:
    """The number of scalars in ``model.parameters()``: the length of its vector."""
    return sum(p.numel() for p in _parameters(model))


def model_to_vector(model: nn.Module) -> np.ndarray:
    """A float32 copy of all parameters, concatenated (empty for a model without any)."""
    params = _parameters(model)
    if not params:
        return np.empty(0, dtype=np.float32)
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).cpu() for p in params])
    return flat.numpy().copy()


def vector_to_model(vector: np.ndarray, model: nn.Module) -> None:
    """Write ``vector`` (1-D float32 of length :func:`parameter_count`) into the model's
    parameters, in place. Everything is checked before anything is written: a wrong type,
    dtype or length raises :class:`~ssddl.exceptions.ConfigurationError`, NaN/±Inf entries
    raise :class:`~ssddl.exceptions.NonFiniteError`; the model is then unchanged."""
    params = _parameters(model)
    expected = sum(p.numel() for p in params)
    if not isinstance(vector, np.ndarray):
        raise ConfigurationError(
            f"vector must be a numpy float32 array of length {expected}, "
            f"got {type(vector).__name__}"
        )
    if vector.dtype != np.float32:
        raise ConfigurationError(
            f"vector must have dtype float32 (length {expected}), got {vector.dtype}; "
            "convert it with .astype(np.float32) if that is what you mean"
        )
    if vector.ndim != 1 or vector.shape[0] != expected:
        raise ConfigurationError(
            f"vector has shape {vector.shape} but the model has {expected} parameters: "
            f"expected a 1-D vector of length {expected}"
        )
    bad = int(np.count_nonzero(~np.isfinite(vector)))
    if bad:
        raise NonFiniteError(
            f"vector (length {expected}) holds {bad} NaN or infinite entries; "
            "the model was not changed"
        )
    flat = torch.from_numpy(np.array(vector, dtype=np.float32, copy=True))
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n
