"""Fixed-point encoding of real vectors into the ring Z_Q, Q = 2**32 or 2**64.

``encode`` clips each value to ``[-C, C]``, scales it by ``2**f`` and rounds it to an integer
``k`` with ``|k| <= C * 2**f``; the ring word is ``k mod Q`` (two's complement). ``decode``
reads a word as a signed integer in ``[-Q/2, Q/2)`` and divides by ``2**f``. Ring words add
modulo Q, so the sum of n encodings decodes to the sum of the n clipped values provided
``n * C * 2**f < Q/2`` (:meth:`FixedPoint.check_capacity`).

Precision. The input is converted to float64 and clipped; multiplying by ``2**f`` is exact.
Rounding is done in float64 on ``y = x * 2**f`` and the integer is formed in int64, never in
float64 near ``2**63`` (the configuration guarantees ``|y| <= C * 2**f < Q/2``):

* nearest: ``rint(y)`` (ties to even), ``|k - y| <= 1/2``;
* stochastic: ``k = floor(y) + [u < y - floor(y)]`` with ``u`` uniform in ``[0, 1)`` from the
  caller's generator, so ``E[k] = y`` (up to the 2**-53 grid of ``u``) and ``|k - y| < 1``.
  ``floor(y)`` and ``y - floor(y)`` are exact in float64, so this never overflows.

For Q = 2**64 the int64 result is *viewed* as uint64 (two's complement is reduction mod
2**64); for Q = 2**32 it is masked to 32 bits and cast.

Decode error bound (:meth:`FixedPoint.decode_error_bound`). For a sum of n encodings whose
true total satisfies the capacity condition,

    |decode(sum) - sum(clip(x_i))| <= n * 2**-(f+1)   (nearest)
                                      n * 2**-f       (stochastic)
                                      + e_conv,

where ``e_conv`` is the float64 rounding of the final int -> float conversion: zero when the
integer sum is below 2**53 in magnitude (always so for Q = 2**32), else at most
``(n*C*2**f + n) * 2**-53 / 2**f``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError, NonFiniteError, ShareError
from ssddl.hazmat.rand import RING_BITS, ring_dtype

__all__ = [
    "FixedPoint",
    "all_finite",
    "check_finite",
    "decode",
    "encode",
    "encode_clipped",
    "ring_add",
    "ring_sub",
    "ring_sum",
]

_FLOAT64_EXACT = 1 << 53
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class FixedPoint:
    """Parameters of the fixed-point code: ring size, fractional bits and clip bound."""

    ring_bits: int = 32
    frac_bits: int = 20
    clip: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.ring_bits, bool) or self.ring_bits not in RING_BITS:
            raise ConfigurationError(
                "FixedPoint.ring_bits must be 32 or 64; use 64 for more headroom"
            )
        if isinstance(self.frac_bits, bool) or not isinstance(self.frac_bits, int):
            raise ConfigurationError("FixedPoint.frac_bits must be an int")
        if not 0 <= self.frac_bits < self.ring_bits - 1:
            raise ConfigurationError(
                f"FixedPoint.frac_bits must satisfy 0 <= frac_bits < ring_bits - 1 = "
                f"{self.ring_bits - 1}; got {self.frac_bits}"
            )
        if isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)):
            raise ConfigurationError("FixedPoint.clip must be a positive finite float")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ConfigurationError("FixedPoint.clip must be a positive finite float")
        object.__setattr__(self, "clip", float(self.clip))
        try:
            self.check_capacity(1)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"FixedPoint cannot hold even one clipped value: {exc}"
            ) from None

    @property
    def modulus(self) -> int:
        """Q = 2**ring_bits."""
        return 1 << self.ring_bits

    @property
    def dtype(self) -> np.dtype[Any]:
        """numpy dtype of the ring words (uint32 or uint64)."""
        return ring_dtype(self.ring_bits)

    @property
    def scale(self) -> float:
        """2**frac_bits."""
        return float(1 << self.frac_bits)

    def check_capacity(
        self, summands: int, *, weight_bound: float = 1.0, modulus: int | None = None
    ) -> None:
        """Raise ConfigurationError unless
        ``summands * (floor(weight_bound * clip * 2**f) + 1) < modulus / 2`` (the + 1 is the
        rounding slack: an encoding can exceed ``clip * 2**f`` by one unit).

        ``modulus`` defaults to Q; pass ``SHAMIR_PRIME`` when the sum is taken in that field.
        ``weight_bound`` bounds per-summand weights when a weighted sum is shared.
        """
        if isinstance(summands, bool) or not isinstance(summands, int) or summands < 1:
            raise ConfigurationError("summands must be a positive int (the number of addends)")
        if isinstance(weight_bound, bool) or not isinstance(weight_bound, (int, float)):
            raise ConfigurationError("weight_bound must be a positive finite number")
        if not (math.isfinite(weight_bound) and weight_bound > 0):
            raise ConfigurationError("weight_bound must be a positive finite number")
        mod = self.modulus if modulus is None else modulus
        if isinstance(mod, bool) or not isinstance(mod, int) or mod < 2:
            raise ConfigurationError("modulus must be an int >= 2")
        # Exact comparison with rationals: a float product could round across the bound.
        # Rounding adds up to one unit to each encoding, so a summand's magnitude is at most
        # floor(weight_bound * clip * 2^f) + 1 (the "+ 1" is the rounding slack).
        largest = (
            math.floor(Fraction(weight_bound) * Fraction(self.clip) * (1 << self.frac_bits)) + 1
        )
        if summands * largest * 2 >= mod:
            shown = f"2**{mod.bit_length() - 1}" if mod & (mod - 1) == 0 else str(mod)
            raise ConfigurationError(
                "fixed-point capacity exceeded: summands * (floor(weight_bound * clip * "
                f"2**frac_bits) + 1) must stay below modulus/2 (summands={summands}, "
                f"weight_bound={weight_bound}, "
                f"clip={self.clip}, frac_bits={self.frac_bits}, modulus={shown}); "
                "use fewer frac_bits, a smaller clip, or ring_bits=64"
            )

    def decode_error_bound(self, summands: int, *, stochastic: bool) -> float:
        """Largest ``|decode(sum of encodings) - sum of clipped inputs|`` for ``summands`` terms.

        ``summands * 2**-(f+1)`` for nearest rounding, ``summands * 2**-f`` for stochastic
        rounding, plus the float64 conversion term described in the module docstring (zero
        unless the integer sum can reach 2**53).
        """
        if isinstance(summands, bool) or not isinstance(summands, int) or summands < 1:
            raise ConfigurationError("summands must be a positive int (the number of addends)")
        per_term = 2.0**-self.frac_bits if stochastic else 2.0 ** -(self.frac_bits + 1)
        bound = summands * per_term
        max_int = summands * self.clip * self.scale + summands
        if max_int >= _FLOAT64_EXACT:
            bound += max_int * 2.0**-53 / self.scale
        return bound


def _as_real_array(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiub":
        raise ConfigurationError(
            f"values must be a real (float or integer) array, got dtype {arr.dtype}; "
            "convert it with np.asarray(values, dtype=np.float64)"
        )
    return arr.astype(np.float64, copy=False)


def all_finite(arr: np.ndarray) -> bool:
    """Whether every entry of a real array is finite (no NaN, no inf).

    A sum propagates NaN and any inf (inf − inf is NaN): one pass and no M-sized temporary,
    which matters for model-sized vectors handled once per message. A sum that overflows from
    finite values only sends us to the exact ``min``/``max`` check.
    """
    if arr.dtype.kind != "f" or arr.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.add.reduce(arr, axis=None))
    if math.isfinite(total):
        return True
    return math.isfinite(float(arr.min())) and math.isfinite(float(arr.max()))


def check_finite(arr: np.ndarray, name: str) -> None:
    """NonFiniteError naming ``name``, the count and the first index, unless every entry of
    ``arr`` is finite."""
    if all_finite(arr):
        return
    finite = np.isfinite(arr)
    if not finite.all():
        bad = ~finite
        count = int(np.count_nonzero(bad))
        first = np.unravel_index(int(np.argmax(bad)), arr.shape) if arr.ndim else ()
        raise NonFiniteError(
            f"{name} holds {count} non-finite (NaN or inf) entr{'y' if count == 1 else 'ies'}, "
            f"first at index {tuple(int(i) for i in first)}; check the training step "
            "(learning rate, loss scaling) before sharing"
        )


def encode(
    values: np.ndarray,
    codec: FixedPoint,
    *,
    rng: np.random.Generator | None = None,
    out: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
    weight: float = 1.0,
) -> np.ndarray:
    """Encode a real array into ring words of ``codec`` (same shape).

    Values are clipped to ``[-clip, clip]``. With ``rng=None`` rounding is to nearest (ties to
    even); with a ``numpy.random.Generator`` it is stochastic and unbiased. NaN or inf raise
    :class:`NonFiniteError`. ``out``, if given, is a writeable array of the codec's dtype and
    the values' shape that receives the words (and is returned), sparing an allocation.
    ``scratch``, if given, is a writeable float64 array of the values' shape that the encoder
    works in instead of a fresh temporary; it may be ``values`` itself (which is then
    overwritten). The result does not depend on either. ``weight`` (a float in (0, 1])
    scales the values before clipping: the words of ``clip(values · weight)``, bit for bit as
    if the caller had multiplied first, in one pass fewer.
    """
    if not isinstance(codec, FixedPoint):
        raise ConfigurationError("codec must be a FixedPoint")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ConfigurationError(
            "rng must be a numpy.random.Generator (for stochastic rounding) or None"
        )
    x = _as_real_array(values)
    if out is not None and (
        not isinstance(out, np.ndarray) or out.dtype != codec.dtype or out.shape != x.shape
    ):
        raise ShareError(
            f"out must be a {codec.dtype} array of shape {x.shape} (the codec's ring words)"
        )
    if scratch is not None and (
        not isinstance(scratch, np.ndarray)
        or scratch.dtype != np.float64
        or scratch.shape != x.shape
        or not scratch.flags.writeable
    ):
        raise ShareError(f"scratch must be a writeable float64 array of shape {x.shape}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1:
        raise ConfigurationError("weight must be a float in (0, 1]")
    check_finite(x, "values")
    # One float64 work array, worked on in place: this runs once per member and round.
    # clip(x·w, ±C)·2^f == clip(x·(w·2^f), ±C·2^f) exactly: scaling by 2^f is exact.
    work = np.empty_like(x) if scratch is None else scratch
    with np.errstate(over="ignore"):  # a finite value beyond the clip may scale to ±inf
        y = np.multiply(x, codec.scale * weight, out=work)
    limit = codec.clip * codec.scale
    np.clip(y, -limit, limit, out=y)
    if rng is None:
        np.rint(y, out=y)
    else:
        low = np.floor(y)
        np.subtract(y, low, out=y)  # the fractional part, exact in float64
        np.add(low, rng.random(size=y.shape) < y, out=y)
    # |y| <= clip * 2**f < Q/2, so y is an exact integer of the signed type of the ring
    # width; its two's-complement bits are the ring word (reduction mod Q).
    signed = np.int64 if codec.ring_bits == 64 else np.int32
    if out is None:
        return np.asarray(y.astype(signed)).view(codec.dtype)
    np.copyto(out.view(signed), y, casting="unsafe")
    return out


def encode_clipped(
    delta: np.ndarray,
    codec: FixedPoint,
    clip: float,
    weight: float,
    x: np.ndarray,
    words: np.ndarray | None,
    scratch: np.ndarray,
    *,
    finite: bool = False,
) -> None:
    """The ring words of clip(δ, ±clip) · ``weight`` (a member's change: clipped, then
    weighted), rounded to nearest, written into ``x`` (or, with ``words``, a slice-sized
    buffer, added onto ``x`` mod Q), ``scratch``-sized slice by slice (``scratch`` float64):
    the words of :func:`encode` of the clipped δ, in five passes a slice instead of eight
    (four, in float32 in the scratch's memory, for a float32 δ unweighted whose bound float32
    holds: the same words, as the comment below argues and the tests check).

    Clipping at ±clip (in δ's float type, as ``np.clip`` does) and then scaling by
    f = weight · 2^frac equals scaling first and clipping at ±fl(clip · f), since rounding is
    monotone; encode's own clip at ±codec.clip · 2^frac folds into the same bound. The finite
    check runs once, on δ, before any word is written — unless the caller passes
    ``finite=True`` because it has just checked this very δ itself.
    """
    if not finite:
        check_finite(delta, "values")
    if isinstance(weight, bool) or not 0 < weight <= 1:
        raise ConfigurationError("weight must be a float in (0, 1]")
    factor = codec.scale * weight
    bound = float(np.asarray(clip, dtype=delta.dtype))
    high = min(bound * factor, codec.clip * codec.scale)
    signed = np.dtype(np.int64 if codec.ring_bits == 64 else np.int32)
    # float32 δ, unweighted, and a bound that float32 holds exactly: δ · 2^frac is exact in
    # float32 too (or overflows to ±inf, beyond the bound either way), so the clip, the
    # rounding and the integer are those of float64 — in half the bytes, in the scratch's
    # own memory, with no cast pass
    narrow = (
        delta.dtype == np.float32
        and weight == 1
        and high <= _FLOAT32_MAX
        and float(np.float32(high)) == high
        and scratch.flags.c_contiguous
    )
    work = scratch.view(np.float32)[: scratch.size] if narrow else scratch
    limit = work.dtype.type(high)
    for start in range(0, delta.size, scratch.size):
        stop = min(start + scratch.size, delta.size)
        y = work[: stop - start]
        with np.errstate(over="ignore"):  # a finite δ beyond the clip may scale to ±inf
            if narrow:
                np.multiply(delta[start:stop], work.dtype.type(factor), out=y)
            else:
                y[...] = delta[start:stop]  # exact; a cast, then an in-place product, is
                np.multiply(y, factor, out=y)  # the faster
        np.clip(y, -limit, limit, out=y)
        np.rint(y, out=y)
        # |y| <= clip · 2^frac < Q/2: an exact integer of the ring's signed type, whose
        # two's-complement bits are the ring word
        if words is None:
            np.copyto(x[start:stop].view(signed), y, casting="unsafe")
        else:
            part = words[: stop - start]
            np.copyto(part.view(signed), y, casting="unsafe")
            np.add(x[start:stop], part, out=x[start:stop])


def _check_words(words: Any, dtype: np.dtype[Any] | None, name: str) -> np.ndarray:
    if not isinstance(words, np.ndarray):
        raise ShareError(f"{name} must be a numpy array of ring words (uint32 or uint64)")
    if dtype is None:
        if words.dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
            raise ShareError(
                f"{name} must have dtype uint32 or uint64 (ring words), got {words.dtype}"
            )
    elif words.dtype != dtype:
        raise ShareError(
            f"{name} has dtype {words.dtype} but the codec's ring words are {dtype}; "
            "decode with the FixedPoint that encoded them"
        )
    return words


def decode(words: np.ndarray, codec: FixedPoint) -> np.ndarray:
    """Decode ring words to float64: signed (two's complement) value divided by ``2**f``."""
    if not isinstance(codec, FixedPoint):
        raise ConfigurationError("codec must be a FixedPoint")
    w = _check_words(words, codec.dtype, "words")
    signed = w.view(np.int64 if codec.ring_bits == 64 else np.int32)
    out = signed.astype(np.float64)
    out /= codec.scale  # in place: one float64 array, not two
    return out


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _check_words(a, None, "a")
    b = _check_words(b, None, "b")
    if a.dtype != b.dtype:
        raise ShareError(f"ring operands differ in dtype ({a.dtype} vs {b.dtype}); use one ring")
    if a.shape != b.shape:
        raise ShareError(f"ring operands differ in shape ({a.shape} vs {b.shape})")
    return a, b


def ring_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a + b) mod Q`` elementwise; same dtype (uint32/uint64) and shape required."""
    a, b = _check_pair(a, b)
    return np.add(a, b, out=np.empty_like(a))


def ring_sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) mod Q`` elementwise; same dtype (uint32/uint64) and shape required."""
    a, b = _check_pair(a, b)
    return np.subtract(a, b, out=np.empty_like(a))


def ring_sum(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of one or more ring arrays mod Q (a new array)."""
    if isinstance(arrays, np.ndarray):
        raise ShareError("ring_sum takes a sequence of arrays, not one array")
    items = list(arrays)
    if not items:
        raise ShareError("ring_sum needs at least one array (the ring is unknown otherwise)")
    total = np.array(_check_words(items[0], None, "arrays[0]"), copy=True)
    for index, item in enumerate(items[1:], start=1):
        _check_words(item, None, f"arrays[{index}]")
        if item.dtype != total.dtype or item.shape != total.shape:
            raise ShareError(
                f"arrays[{index}] has dtype {item.dtype} and shape {item.shape}, but arrays[0] "
                f"has {total.dtype} and {total.shape}; all summands must be in one ring"
            )
        np.add(total, item, out=total)
    return total
