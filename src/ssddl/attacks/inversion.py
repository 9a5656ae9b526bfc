"""First-layer input recovery, and how reconstructions are scored.

For a first layer ``y = W x + b`` and a single sample, ``∂L/∂W_k = δ_k · xᵀ`` and
``∂L/∂b_k = δ_k``, so ``x = (∂L/∂W_k) / (∂L/∂b_k)`` for any neuron ``k`` with a non-zero bias
gradient. A parameter change of one plain SGD step is ``−lr`` times the gradient, so the same
ratio of the change's entries gives ``x`` exactly; clipping by a constant and the (public)
sample-count weighting scale both entries alike and cancel.

The attack reads whatever vector the server holds for a member — a plain change, a DSSGD
sparse upload (missing entries read as 0), or a masked / shared upload decoded as if it were
an update — so the same code is run on every view (:func:`update_as_seen`).

Scores: maximum absolute error, MSE and PSNR (peak 1) against the true input, after clipping
the reconstruction to the input domain [0, 1] (the attacker knows it). "No better than a
random guess" is a one-sided Monte Carlo test (:func:`random_guess_pvalue`): the fraction of
uniform random guesses in [0, 1]^d whose MSE is at most the attack's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import decode
from ssddl.hazmat.sharing import SHAMIR_PRIME, field_to_ring
from ssddl.protocol.config import SessionParams

__all__ = [
    "SUCCESS_PSNR",
    "InputReconstruction",
    "Score",
    "first_layer_candidates",
    "first_layer_recovery",
    "layer_slices",
    "random_guess_pvalue",
    "score",
    "simulated_words",
    "update_as_seen",
    "words_as_update",
]

SUCCESS_PSNR = 30.0  #: a reconstruction counts as a success at PSNR >= 30 dB (MSE <= 1e-3)


@dataclass(frozen=True)
class InputReconstruction:
    """The recovered input (clipped to [0, 1]), the strongest neuron (−1: no non-zero bias
    change was received) and how many inputs could be read from a ratio."""

    x: np.ndarray = field(repr=False)
    neuron: int
    known: int


@dataclass(frozen=True)
class Score:
    """A reconstruction against the true input."""

    max_abs_error: float
    mse: float
    psnr: float  #: 10·log10(1 / MSE), peak 1; inf for an exact reconstruction

    def as_dict(self) -> dict[str, float]:
        return {"max_abs_error": self.max_abs_error, "mse": self.mse, "psnr": self.psnr}


def first_layer_recovery(
    update: np.ndarray,
    *,
    weight: slice,
    bias: slice,
    in_features: int,
    known: np.ndarray | None = None,
) -> InputReconstruction:
    """Recover a single-sample input from the first-layer entries of ``update``.

    ``weight`` and ``bias`` locate the first layer's ``(out, in)`` weight matrix (row-major)
    and its ``out`` biases in the flat vector; ``known`` (same shape as ``update``) marks the
    entries the server actually received (DSSGD uploads only some). Each input is read
    from the neuron with the largest bias change among those whose weight entry for it was
    received; an input no such neuron covers is guessed 0.
    """
    values = np.asarray(update, dtype=np.float64)
    if values.ndim != 1:
        raise ConfigurationError("update must be a 1-D vector")
    w = values[weight]
    b = values[bias]
    if b.size == 0 or w.size != b.size * in_features:
        raise ConfigurationError(
            f"the first layer's weights hold {w.size} entries; with {b.size} biases and "
            f"in_features={in_features} they must hold {b.size * in_features}"
        )
    mask = np.ones(values.shape, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    if mask.shape != values.shape:
        raise ConfigurationError("known must have the shape of update")
    w_known = mask[weight].reshape(b.size, in_features)
    b_known = mask[bias]
    strength = np.where(b_known & np.isfinite(b), np.abs(b), 0.0)
    if not strength.any():
        return InputReconstruction(np.zeros(in_features), -1, 0)
    # per input: the strongest neuron whose bias and weight entry were both received
    usable = w_known & (strength[:, None] > 0.0)
    best = np.argmax(np.where(usable, strength[:, None], -1.0), axis=0)
    readable = usable[best, np.arange(in_features)]
    rows = w.reshape(b.size, in_features)[best, np.arange(in_features)]
    with np.errstate(all="ignore"):
        ratio = np.where(readable, rows / b[best], 0.0)
    x = np.clip(np.nan_to_num(ratio, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return InputReconstruction(x, int(np.argmax(strength)), int(readable.sum()))


def first_layer_candidates(
    update: np.ndarray, *, weight: slice, bias: slice, in_features: int
) -> np.ndarray:
    """The first-layer ratio at every neuron: row k is ``ΔW_k / Δb_k`` clipped to [0, 1]
    (zeros where ``Δb_k`` is 0), shape ``(out, in_features)``.

    For a batch, ``ΔW_k / Δb_k = Σ_j δ_jk x_j / Σ_j δ_jk`` — sample j's input exactly when
    neuron k's bias gradient comes from sample j alone (a ReLU neuron active for one sample
    only), and close to it when one sample dominates; otherwise a mixture."""
    values = np.asarray(update, dtype=np.float64)
    if values.ndim != 1:
        raise ConfigurationError("update must be a 1-D vector")
    w, b = values[weight], values[bias]
    if b.size == 0 or w.size != b.size * in_features:
        raise ConfigurationError(
            f"the first layer's weights hold {w.size} entries; with {b.size} biases and "
            f"in_features={in_features} they must hold {b.size * in_features}"
        )
    with np.errstate(all="ignore"):
        ratio = w.reshape(b.size, in_features) / b[:, None]
    ratio[~(np.isfinite(b) & (b != 0.0))] = 0.0
    return np.clip(np.nan_to_num(ratio, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def score(reconstruction: np.ndarray, truth: np.ndarray) -> Score:
    """Max abs error, MSE and PSNR (peak 1) of a reconstruction against the true input."""
    r = np.asarray(reconstruction, dtype=np.float64).reshape(-1)
    t = np.asarray(truth, dtype=np.float64).reshape(-1)
    if r.shape != t.shape:
        raise ConfigurationError(f"reconstruction has {r.size} values, the truth {t.size}")
    err = r - t
    mse = float(np.mean(err**2))
    psnr = math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)
    return Score(float(np.max(np.abs(err))), mse, psnr)


def random_guess_pvalue(
    mse: float, truth: np.ndarray, rng: np.random.Generator, *, draws: int = 2000
) -> float:
    """P(MSE of a uniform random guess in [0, 1]^d <= ``mse``), by Monte Carlo with a
    public generator (+1 smoothing). A small value means the attack beat random guessing."""
    t = np.asarray(truth, dtype=np.float64).reshape(1, -1)
    guesses = rng.random((draws, t.shape[1]))
    errors = np.mean((guesses - t) ** 2, axis=1)
    return float((np.count_nonzero(errors <= mse) + 1) / (draws + 1))


def update_as_seen(message: Any, params: SessionParams) -> np.ndarray:
    """The float vector a server reads as a member's update from its upload message: the
    plain change, or the upload's words decoded as an update (:func:`words_as_update`)."""
    delta = getattr(message, "delta", None)
    if delta is not None:
        return np.asarray(delta, dtype=np.float64)
    payload = getattr(message, "payload", None)
    if payload is None:
        raise ConfigurationError(f"{type(message).__name__} carries no update")
    return words_as_update(np.asarray(payload), params)


def words_as_update(words: np.ndarray, params: SessionParams) -> np.ndarray:
    """Upload words read as an update: ring words (field words for shamir, mapped back to
    the ring) decoded with the session's fixed-point code, count word dropped."""
    if params.mode == "shamir":  # field words: shares of the sum live in GF(p)
        words = field_to_ring(words, params.ring_bits)
    return decode(words[:-1], params.codec())


def simulated_words(params: SessionParams, size: int, rng: np.random.Generator) -> np.ndarray:
    """A simulator's upload: ``size`` uniform words of the ring (of the field for shamir) —
    what a view that carries nothing about the input looks like. Public randomness: this is
    a statistical reference, never a mask."""
    if params.mode == "shamir":
        return rng.integers(0, SHAMIR_PRIME, size, dtype=np.uint64)
    dtype = params.codec().dtype
    return rng.integers(0, 1 << params.ring_bits, size, dtype=np.uint64).astype(dtype)


def layer_slices(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, slice]:
    """Where each named parameter lies in the flat vector (in the given order)."""
    out: dict[str, slice] = {}
    start = 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        out[name] = slice(start, start + size)
        start += size
    return out
