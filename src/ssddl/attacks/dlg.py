"""Gradient inversion: DLG (Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS 2019) and
iDLG (Zhao, Mopuri, Bilen, "iDLG: Improved Deep Leakage from Gradients", 2020).

The attacker holds the model the update was computed on (the server sent it) and the
update as it sees it. For one plain SGD step the gradient is ``g = −Δw / lr`` (``lr`` is
public). DLG optimises a dummy input and a dummy soft label so that the dummy gradient
matches ``g`` (L-BFGS on ``‖∇θ L(x', y') − g‖² / ‖g‖²``); iDLG first reads the true label
from the sign of the output bias gradient — for softmax cross-entropy only the true class
has a negative entry, i.e. the largest entry of the change — and optimises the input only.

Both run in float64 on a copy of the model; randomness (the dummy's start) comes from a
seeded ``torch.Generator``, never the global RNG.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ssddl.exceptions import ConfigurationError

__all__ = ["InversionResult", "gradient_inversion", "idlg_label"]


@dataclass(frozen=True)
class InversionResult:
    """The dummy input after optimisation (clipped to [0, 1]), the label used or found,
    and the final normalised gradient-matching loss."""

    x: np.ndarray = field(repr=False)
    label: int
    match_loss: float
    label_trick: bool


def idlg_label(update: np.ndarray, model: nn.Module) -> int:
    """iDLG: the true label of a single-sample update — the class whose output bias moved up
    (its gradient ``p_c − 1`` is the only negative one)."""
    params = list(model.parameters())
    bias = params[-1]
    if bias.dim() != 1:
        raise ConfigurationError("iDLG needs a model whose last parameter is the output bias")
    size = bias.numel()
    return int(np.argmax(np.asarray(update, dtype=np.float64)[-size:]))


def _split(vector: np.ndarray, model: nn.Module) -> list[torch.Tensor]:
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if total != vector.size:
        raise ConfigurationError(
            f"the update holds {vector.size} values, the model {total} parameters"
        )
    out = []
    start = 0
    for p in params:
        n = p.numel()
        out.append(torch.as_tensor(vector[start : start + n], dtype=torch.float64).view_as(p))
        start += n
    return out


def gradient_inversion(
    model: nn.Module,
    update: np.ndarray,
    *,
    lr: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    label_trick: bool,
    iterations: int = 300,
    seed: int = 0,
) -> InversionResult:
    """Recover a single-sample input from ``update`` (one SGD step of size ``lr`` on
    ``model``'s current weights): DLG, or iDLG with ``label_trick``."""
    if not (isinstance(lr, float | int) and lr > 0):
        raise ConfigurationError(f"lr must be a positive number, got {lr!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigurationError(f"iterations must be an int >= 1, got {iterations!r}")
    net = copy.deepcopy(model).double()
    for p in net.parameters():
        p.requires_grad_(True)
    values = np.nan_to_num(np.asarray(update, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    target = [-t / float(lr) for t in _split(values, net)]
    norm = float(sum(float((t**2).sum()) for t in target)) or 1.0
    gen = torch.Generator().manual_seed(seed)
    dummy = torch.rand((1, *input_shape), generator=gen, dtype=torch.float64).requires_grad_(True)
    variables = [dummy]
    label = idlg_label(values, net) if label_trick else -1
    soft = torch.randn((1, num_classes), generator=gen, dtype=torch.float64).requires_grad_(True)
    if not label_trick:
        variables.append(soft)
    optimizer = torch.optim.LBFGS(
        variables,
        lr=1.0,
        max_iter=iterations,
        history_size=100,
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
        line_search_fn="strong_wolfe",
    )

    def matching_loss() -> torch.Tensor:
        out = net(dummy)
        if label_trick:
            loss = nn.functional.cross_entropy(out, torch.tensor([label]))
        else:
            loss = -(torch.softmax(soft, dim=-1) * torch.log_softmax(out, dim=-1)).sum()
        grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
        total = torch.zeros((), dtype=torch.float64)
        for g, t in zip(grads, target, strict=True):
            total = total + ((g - t) ** 2).sum()
        return total / norm

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = matching_loss()
        value.backward()
        return value

    optimizer.step(closure)
    final = float(matching_loss().detach())
    if not label_trick:
        label = int(torch.argmax(soft.detach()))
    x = np.clip(np.nan_to_num(dummy.detach().numpy().reshape(-1), nan=0.0), 0.0, 1.0)
    return InversionResult(x, label, final, label_trick)
