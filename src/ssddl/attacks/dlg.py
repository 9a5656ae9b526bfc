"""Gradient inversion: DLG (Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS 2019) and
iDLG (Zhao, Mopuri, Bilen, "iDLG: Improved Deep Leakage from Gradients", 2020).

The attacker holds the model the update was computed on (the server sent it) and the
update as it sees it. For one plain SGD step the gradient is ``g = −Δw / lr`` (``lr`` is
public). DLG optimises a dummy input and a dummy soft label so that the dummy gradient
matches ``g`` (L-BFGS on ``‖∇θ L(x', y') − g‖² / ‖g‖²``); iDLG first reads the true label
from the sign of the output bias gradient — for softmax cross-entropy only the true class
has a negative entry, i.e. the largest entry of the change — and optimises the input only.

Both take a batch: ``batch`` dummies matched against one step on the batch-mean loss (the
same objective; Zhu et al. ran DLG on batches of up to 8). For a batch, iDLG's labels are
counted from the output bias as in Wainakh et al.'s LLG ("User-Level Label Leakage from
Gradients in Federated Learning", PETS 2022): the bias gradient is ``p̄ − ȳ`` (mean softmax
minus mean one-hot), so class c occurs ``N · (p̄_c − g_c)`` times, with ``p̄`` estimated by
the model's mean softmax on random inputs of the domain.

Both run in float64 on a copy of the model; randomness (the dummy's start) comes from a
seeded ``torch.Generator``, never the global RNG.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ssddl.exceptions import ConfigurationError

__all__ = ["InversionResult", "gradient_inversion", "idlg_label", "label_counts"]


@dataclass(frozen=True)
class InversionResult:
    """The dummy input after optimisation (clipped to [0, 1]), the label used or found,
    and the final normalised gradient-matching loss. For a batch, ``x`` is ``(batch, d)``
    in no particular order and ``labels`` holds one label per dummy; for one sample ``x``
    is flat and ``label`` is ``labels[0]``."""

    x: np.ndarray = field(repr=False)
    label: int
    match_loss: float
    label_trick: bool
    labels: tuple[int, ...] = ()


def idlg_label(update: np.ndarray, model: nn.Module) -> int:
    """iDLG: the true label of a single-sample update — the class whose output bias moved up
    (its gradient ``p_c − 1`` is the only negative one)."""
    params = list(model.parameters())
    bias = params[-1]
    if bias.dim() != 1:
        raise ConfigurationError("iDLG needs a model whose last parameter is the output bias")
    size = bias.numel()
    return int(np.argmax(np.asarray(update, dtype=np.float64)[-size:]))


def label_counts(
    update: np.ndarray,
    model: nn.Module,
    *,
    lr: float,
    batch: int,
    input_shape: tuple[int, ...],
    seed: int = 0,
) -> tuple[int, ...]:
    """LLG: the labels of a batch-mean SGD step ``update`` of ``batch`` samples, sorted.

    ``−Δb / lr = p̄ − ȳ`` for the output bias, so class c occurs ``batch · (p̄_c + Δb_c / lr)``
    times; ``p̄`` is the model's mean softmax on 64 uniform random inputs (the attacker does
    not know the batch). The counts are rounded by largest remainder to sum to ``batch``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigurationError(f"batch must be an int >= 1, got {batch!r}")
    params = list(model.parameters())
    if params[-1].dim() != 1:
        raise ConfigurationError("label counting needs a model whose last parameter is the bias")
    size = params[-1].numel()
    delta_b = np.asarray(update, dtype=np.float64)[-size:]
    gen = torch.Generator().manual_seed(seed)
    probe = torch.rand((64, *input_shape), generator=gen, dtype=torch.float64)
    with torch.no_grad():
        p_bar = torch.softmax(copy.deepcopy(model).double()(probe), dim=-1).mean(0).numpy()
    raw = np.clip(batch * (p_bar + delta_b / float(lr)), 0.0, None)
    if not np.isfinite(raw).all() or raw.sum() == 0.0:
        raw = np.ones(size)
    raw = raw * (batch / raw.sum())
    counts = np.floor(raw).astype(int)
    for c in np.argsort(-(raw - counts), kind="stable")[: batch - int(counts.sum())]:
        counts[c] += 1
    return tuple(int(c) for c in np.repeat(np.arange(size), counts))


@contextmanager
def _one_thread() -> Iterator[None]:
    """One torch intra-op thread for the optimisation, then the caller's count back. The
    tensors are tiny, so extra threads only add synchronisation: on a busy 2-core machine
    two threads made a 300-step DLG ten times slower than one (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


def _check_arguments(lr: float, iterations: int, batch: int) -> None:
    if not (isinstance(lr, float | int) and lr > 0):
        raise ConfigurationError(f"lr must be a positive number, got {lr!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigurationError(f"iterations must be an int >= 1, got {iterations!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigurationError(f"batch must be an int >= 1, got {batch!r}")


def _labels(
    values: np.ndarray,
    net: nn.Module,
    *,
    lr: float,
    batch: int,
    input_shape: tuple[int, ...],
    seed: int,
) -> tuple[int, ...]:
    """iDLG's labels: read off the output layer (one sample), or counted from it (a batch)."""
    if batch == 1:
        return (idlg_label(values, net),)
    return label_counts(values, net, lr=lr, batch=batch, input_shape=input_shape, seed=seed)


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
    batch: int = 1,
) -> InversionResult:
    """Recover the inputs of ``update`` — one SGD step of size ``lr`` on ``model``'s current
    weights, on the mean loss of ``batch`` samples — by DLG, or iDLG with ``label_trick``
    (labels by :func:`idlg_label` for one sample, :func:`label_counts` for a batch)."""
    _check_arguments(lr, iterations, batch)
    net = copy.deepcopy(model).double()
    for p in net.parameters():
        p.requires_grad_(True)
    values = np.nan_to_num(np.asarray(update, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    target = [-t / float(lr) for t in _split(values, net)]
    norm = float(sum(float((t**2).sum()) for t in target)) or 1.0
    gen = torch.Generator().manual_seed(seed)
    dummy = torch.rand((batch, *input_shape), generator=gen, dtype=torch.float64)
    dummy.requires_grad_(True)
    variables = [dummy]
    labels: tuple[int, ...] = ()
    if label_trick:
        labels = _labels(values, net, lr=lr, batch=batch, input_shape=input_shape, seed=seed)
    hard = torch.tensor(labels, dtype=torch.int64)
    soft = torch.randn((batch, num_classes), generator=gen, dtype=torch.float64)
    soft.requires_grad_(True)
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
            loss = nn.functional.cross_entropy(out, hard)
        else:
            loss = -(torch.softmax(soft, dim=-1) * torch.log_softmax(out, dim=-1)).sum(-1).mean()
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

    with _one_thread():
        optimizer.step(closure)
        final = float(matching_loss().detach())
    if not label_trick:
        labels = tuple(int(c) for c in torch.argmax(soft.detach(), dim=-1))
    flat = dummy.detach().numpy().reshape(batch, -1)
    x = np.clip(np.nan_to_num(flat, nan=0.0), 0.0, 1.0)
    return InversionResult(x[0] if batch == 1 else x, labels[0], final, label_trick, labels)
