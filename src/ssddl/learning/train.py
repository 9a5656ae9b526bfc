"""Local training and evaluation of a classifier on an :class:`ArrayDataset`.

Training is reproducible from its ``seed`` (same model, data, config and seed give
bit-identical parameters in the same process and thread setting) and leaves every global RNG
state unchanged: minibatch order comes from a ``torch.Generator`` seeded with ``seed``, and the
whole run happens under ``torch.random.fork_rng`` with the forked global generator also
seeded, so stochastic layers such as dropout are reproducible too.

``fork_rng`` saves and restores the process-wide torch generator, so do not run
:func:`train_local` (or :func:`~ssddl.learning.models.build_model`) from several threads at
once; use one thread or separate processes. On small models also prefer
``torch.set_num_threads(1)``: intra-op threads do not help them, and when the cores are busy
with other work they make a training step up to ~100x slower.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssddl.exceptions import ConfigurationError, NonFiniteError
from ssddl.learning.data import ArrayDataset
from ssddl.validators import check_choice, check_float, check_int

__all__ = [
    "OPTIMIZERS",
    "EvalResult",
    "LocalTrainConfig",
    "TrainResult",
    "TrainStep",
    "evaluate",
    "train_local",
]

OPTIMIZERS = ("sgd", "adam")

#: A custom loss (``--train-step``): ``step(model, x, y)`` returns the scalar loss of one
#: minibatch (``x`` the inputs, ``y`` the int64 labels, both on the training device); local
#: training then calls ``backward()`` on it and takes the optimizer's step. The default is
#: ``F.cross_entropy(model(x), y)``.
TrainStep = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LocalTrainConfig:
    """How a participant trains locally.

    ``momentum`` is SGD's momentum, and Adam's β1 (Adam's β2 is 0.999). ``weight_decay`` is
    L2 regularisation as in ``torch.optim``. With ``steps`` set, exactly that many minibatches
    of ``min(batch_size, N)`` samples are taken from a stream of fresh permutations of the data
    (``epochs`` is then ignored); otherwise ``epochs`` passes, the last batch of each possibly
    smaller.
    """

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_float(self.lr, "lr", positive=True)
        check_float(self.momentum, "momentum", low=0.0)
        if self.momentum >= 1:
            raise ConfigurationError(
                f"momentum={self.momentum} is out of range: it must be in [0, 1)"
            )
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_int(self.epochs, "epochs", low=1)
        if self.steps is not None:
            check_int(self.steps, "steps", low=1)
        check_int(self.batch_size, "batch_size", low=1)


@dataclass(frozen=True)
class TrainResult:
    """``steps`` optimizer steps over ``num_samples`` samples; ``mean_loss`` is the training
    cross-entropy averaged over every sample seen (with the weights of the moment)."""

    num_samples: int
    steps: int
    mean_loss: float


@dataclass(frozen=True)
class EvalResult:
    """Mean cross-entropy and accuracy over ``num_samples`` samples."""

    loss: float
    accuracy: float
    num_samples: int


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise ConfigurationError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _seed_global(seed: int, device: torch.device | None) -> None:
    """Seed the global generator that stochastic layers draw from: on the CPU only the
    default generator — the same stream as ``torch.manual_seed``, without its lazy seeding
    calls for every accelerator backend, which format a stack trace each (about 0.1-1 ms a
    call, paid once per participant and round); on another device, every backend as before."""
    if device is None or device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def _num_steps(n: int, config: LocalTrainConfig) -> int:
    if config.steps is not None:
        return config.steps
    return config.epochs * -(-n // config.batch_size)


def _batches(n: int, config: LocalTrainConfig, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """The index batches of one training run, drawn lazily from ``gen``."""
    if config.steps is None:
        for _ in range(config.epochs):
            yield from torch.split(torch.randperm(n, generator=gen), config.batch_size)
        return
    size = min(config.batch_size, n)
    stream = torch.empty(0, dtype=torch.int64)
    for _ in range(config.steps):
        if stream.numel() < size:
            stream = torch.cat([stream, torch.randperm(n, generator=gen)])
        yield stream[:size]
        stream = stream[size:]


def _optimizer(model: nn.Module, config: LocalTrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigurationError("the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=float(config.lr),
            momentum=float(config.momentum),
            weight_decay=float(config.weight_decay),
        )
    return torch.optim.Adam(
        params,
        lr=float(config.lr),
        betas=(float(config.momentum), 0.999),
        weight_decay=float(config.weight_decay),
    )


def train_local(
    model: nn.Module,
    data: ArrayDataset,
    config: LocalTrainConfig,
    *,
    seed: int,
    device: torch.device | None = None,
    step: TrainStep | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` with cross-entropy (or the loss ``step``
    returns, see :data:`TrainStep`) and a fresh optimizer (no state is kept between calls).
    The model's train/eval mode is restored afterwards.

    ``device``: where the minibatches go; the model must already be there (default: CPU).

    A non-finite training loss raises :class:`~ssddl.exceptions.NonFiniteError` (the model is
    then left as it was at that step: lower the learning rate).
    """
    if not isinstance(model, nn.Module):
        raise ConfigurationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, ArrayDataset):
        raise ConfigurationError(f"data must be an ArrayDataset, got {type(data).__name__}")
    if not isinstance(config, LocalTrainConfig):
        raise ConfigurationError(f"config must be a LocalTrainConfig, got {type(config).__name__}")
    seed = _check_seed(seed)
    n = len(data)
    if n == 0:
        raise ConfigurationError("cannot train on an empty dataset")
    x, y = data.to_tensors()
    if device is not None:
        x, y = x.to(device), y.to(device)
    was_training = model.training
    total_loss = 0.0
    seen = 0
    steps = 0
    with torch.random.fork_rng(devices=[]):
        _seed_global(seed, device)
        gen = torch.Generator().manual_seed(seed)
        total_steps = _num_steps(n, config)
        optimizer = _optimizer(model, config)
        model.train()
        try:
            for idx in _batches(n, config, gen):
                optimizer.zero_grad(set_to_none=True)
                if device is not None:
                    idx = idx.to(device)
                loss = _loss(model, x[idx], y[idx], step)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise NonFiniteError(
                        f"the training loss became non-finite at step {steps + 1} of "
                        f"{total_steps}; lower the learning rate"
                    )
                loss.backward()
                optimizer.step()
                total_loss += value * idx.numel()
                seen += idx.numel()
                steps += 1
        finally:
            model.train(was_training)
    return TrainResult(num_samples=n, steps=steps, mean_loss=total_loss / seen)


def _loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: TrainStep | None
) -> torch.Tensor:
    if step is None:
        return F.cross_entropy(model(x), y)
    loss = step(model, x, y)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        got = (
            f"a tensor of shape {tuple(loss.shape)}"
            + ("" if loss.requires_grad else " without a gradient")
            if isinstance(loss, torch.Tensor)
            else type(loss).__name__
        )
        raise ConfigurationError(
            f"the train step must return the minibatch's scalar loss as a tensor with a "
            f"gradient, got {got}; return e.g. F.cross_entropy(model(x), y)"
        )
    return loss.reshape(())


def evaluate(model: nn.Module, data: ArrayDataset, *, batch_size: int = 1024) -> EvalResult:
    """Mean cross-entropy and accuracy of ``model`` on ``data``, in eval mode without
    gradients (the model's mode is restored afterwards)."""
    if not isinstance(model, nn.Module):
        raise ConfigurationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, ArrayDataset):
        raise ConfigurationError(f"data must be an ArrayDataset, got {type(data).__name__}")
    check_int(batch_size, "batch_size", low=1)
    n = len(data)
    if n == 0:
        raise ConfigurationError("cannot evaluate on an empty dataset")
    was_training = model.training
    model.eval()
    total_loss = 0.0
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                xb = torch.from_numpy(data.x[start : start + batch_size].copy())
                yb = torch.from_numpy(data.y[start : start + batch_size].copy())
                logits = model(xb)
                total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(dim=1) == yb).sum())
    finally:
        model.train(was_training)
    return EvalResult(loss=total_loss / n, accuracy=correct / n, num_samples=n)
