"""The steps around the noise of distributed DP: clip, rotate, round, wrap. HAZARDOUS.

A member's real vector ``x`` becomes integers the secure sum can carry, as in Kairouz, Liu and
Steinke, "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
Aggregation", ICML 2021 (Algorithm 1), and TensorFlow Federated's distributed-DP aggregator:

1. :func:`clip_l2` — ``x * min(1, c / ||x||)``: the norm is at most ``c`` (up to one
   rounding of the float product; the rounding step's bound has slack for it);
2. :func:`rotate` — ``H D x / sqrt(d)`` after zero-padding to ``d = 2**k`` coordinates, with
   ``H`` the Walsh-Hadamard matrix and ``D`` a diagonal of signs that is public, drawn from
   :func:`rotation_key` (session id and round) with the AES-256-CTR keystream: it flattens
   the vector so that no coordinate is large (which keeps the modular sum from wrapping),
   keeps its norm, and the server undoes it on the sum (:func:`unrotate`);
3. multiplication by the scale ``γ`` (the caller's);
4. :func:`conditional_round` — randomized rounding to integers, repeated until the squared
   norm of the rounded vector is at most :func:`rounded_norm_bound` (their Theorem 1 and
   Proposition 22): that bound, not the float input, is the sensitivity the accounting uses;
5. the noise (:mod:`ssddl.hazmat.noise`), then :func:`wrap` into ``Z_(2**b)``; the server
   reads the sum back with :func:`unwrap` (centred), which is right as long as no coordinate
   of the true integer sum leaves ``[-2**(b-1), 2**(b-1))``;
   :func:`wrap_probability_bound` bounds the chance that one does.

Randomness: the rounding's coins and the noise come from a
:class:`~ssddl.hazmat.noise.NoiseStream` (a key from the caller's ``RandomSource``, expanded
with AES-256-CTR), never from numpy's or Python's generators. The rotation's signs are public
by design: they must be the same for every member of a round and known to the server.

Speed: the transform and the rounding are compiled (:mod:`ssddl.hazmat._kernels`, numba) and
give the bits of the numpy passes they replaced, which the tests keep as references. At
M = 10**6 on the project machine (2 shared cores, load average about 4), :func:`rotate_fixed`
takes about 4.2 ms (the numpy passes: about 34) and :func:`conditional_round` about 1.9 ms
(about 14), on memory the allocator has kept; a fresh 8 MB result adds page faults, about
1.4 ms more at a load average of 2 (``benchmarks/bench_noise.py``, ``docs/privacy.md``).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError, NonFiniteError, ShareError
from ssddl.hazmat._checks import as_bytes, as_int, lp
from ssddl.hazmat.noise import NoiseStream
from ssddl.hazmat.prg import keystream_words

__all__ = [
    "MAX_ROUNDING_ATTEMPTS",
    "RoundingFailed",
    "clip_l2",
    "conditional_round",
    "hadamard",
    "padded_dimension",
    "rotate",
    "rotate_fixed",
    "rotation_key",
    "rotation_signs",
    "rounded_norm_bound",
    "unrotate",
    "unrotate_fixed",
    "unwrap",
    "wrap",
    "wrap_probability_bound",
]

MAX_ROUNDING_ATTEMPTS = 1000
_ROTATION_LABEL = b"ssddl/dp-rotation/v1"


class RoundingFailed(ShareError):
    """Conditional rounding found no rounding within the bound: the input norm is too large."""


def _as_vector(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.dtype.kind not in "fiu":
        raise ConfigurationError(f"{name} must be a 1-D real array")
    arr = arr.astype(np.float64, copy=False)
    from ssddl.hazmat import _kernels

    if not _kernels.all_finite(arr.view(np.uint64)):  # np.isfinite without its temporary
        raise NonFiniteError(f"{name} holds NaN or inf; check the training step before sharing")
    return arr


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a positive finite number")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be a positive finite number")
    return float(value)


# --- clipping -----------------------------------------------------------------------------


def clip_l2(values: Any, clip: float) -> np.ndarray:
    """A float64 copy of ``values`` scaled by ``min(1, clip / ||values||_2)``."""
    x = _as_vector(values, "values")
    clip = _positive(clip, "clip")
    norm = float(np.linalg.norm(x))
    if norm <= clip:
        return x.copy()
    return x * (clip / norm)


# --- the randomized Hadamard rotation -----------------------------------------------------


def padded_dimension(dim: int) -> int:
    """The smallest power of two ``>= dim`` (and ``>= 1``)."""
    dim = as_int(dim, "dim")
    return 1 << max(dim - 1, 0).bit_length()


def rotation_key(session_id: bytes, round_number: int) -> bytes:
    """The public 32-byte key of a round's rotation signs: SHA-256 over a label, the
    length-prefixed session id and the round (8 bytes big-endian). Public on purpose."""
    session = as_bytes(session_id, "session_id")
    round_number = as_int(round_number, "round_number", high=1 << 64)
    data = _ROTATION_LABEL + lp(session) + round_number.to_bytes(8, "big")
    return hashlib.sha256(data).digest()


def _sign_bits(key: bytes, dim: int, part: int) -> np.ndarray:
    """The bits (uint8 0 / 1) whose signs are :func:`rotation_signs` (1 is -1.0)."""
    dim = as_int(dim, "dim")
    nonce = as_int(part, "part", high=1 << 32).to_bytes(12, "big")
    words = keystream_words(key, nonce, -(-dim // 64), 64)
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:dim]


def rotation_signs(key: bytes, dim: int, *, part: int = 0) -> np.ndarray:
    """``dim`` signs (+1.0 / -1.0, float64): the bits of the AES-256-CTR keystream under
    ``key`` (nonce: ``part`` as 12 bytes big-endian), least significant bit of each byte
    first."""
    return 1.0 - 2.0 * _sign_bits(key, dim, part).astype(np.float64)


def _is_power_of_two(values: np.ndarray) -> bool:
    return values.ndim == 1 and not values.size & (values.size - 1)


def hadamard(values: np.ndarray) -> np.ndarray:
    """``H v`` for the unnormalised Walsh-Hadamard matrix ``H`` (entries ±1, ``H H = d I``),
    by the fast transform, in a new array of ``values``'s dtype; the length must be a power of
    two. Exact for integer arrays while ``d * max|v| < 2**63``.

    float64 and int64 go through a compiled kernel (:func:`ssddl.hazmat._kernels.hadamard_inplace`,
    cache-blocked; the same butterflies, so the same bits as the numpy passes that other dtypes
    take: level by level, ``(a, b) -> (a + b, a - b)``)."""
    out = np.array(values, copy=True)
    if not _is_power_of_two(out):
        raise ConfigurationError("hadamard needs a 1-D array whose length is a power of two")
    if out.dtype in _KERNEL_DTYPES and out.size:
        from ssddl.hazmat import _kernels

        _kernels.hadamard_inplace(out)
        return out
    _hadamard_passes(out)
    return out


def _hadamard_passes(out: np.ndarray) -> None:
    """The fast transform in numpy, in place: level by level over the whole array,
    ``(a, b) -> (a + b, a - b)`` (the reference the compiled kernel matches bit for bit)."""
    half = 1
    while half < out.size:
        pairs = out.reshape(-1, 2, half)
        left = pairs[:, 0, :].copy()
        pairs[:, 0, :] += pairs[:, 1, :]
        np.subtract(left, pairs[:, 1, :], out=pairs[:, 1, :])
        half *= 2


_KERNEL_DTYPES = (np.dtype(np.float64), np.dtype(np.int64))


def _rotate_in_place(span: np.ndarray, key: bytes, part: int, *, forward: bool) -> None:
    """``span`` (a contiguous float64 slice, length a power of two ``d``) replaced by
    ``H (span * D) / sqrt(d)`` (``forward``) or ``(H span / sqrt(d)) * D``, ``D`` the signs of
    :func:`rotation_signs` ``part``: one compiled pass, the same float operations in the same
    order as ``hadamard(span * signs) / math.sqrt(d)`` and ``hadamard(span) / math.sqrt(d) *
    signs`` (multiplying by ±1 is exact and commutes with the correctly rounded division)."""
    from ssddl.hazmat import _kernels

    bits = _sign_bits(key, span.size, part)
    _kernels.rotate_span(span, bits, math.sqrt(span.size), forward)


def rotate(values: Any, key: bytes) -> np.ndarray:
    """``H D x / sqrt(d)``: ``x`` zero-padded to ``d = padded_dimension(len(x))``, ``D`` the
    signs of :func:`rotation_signs`. Keeps the L2 norm (up to float rounding)."""
    x = _as_vector(values, "values")
    padded = np.zeros(padded_dimension(x.size), dtype=np.float64)
    padded[: x.size] = x
    _rotate_in_place(padded, key, 0, forward=True)
    return padded


def unrotate(values: Any, key: bytes, dim: int) -> np.ndarray:
    """The inverse of :func:`rotate`: ``D H y / sqrt(d)``, cut back to ``dim`` coordinates.
    ``values`` may be the integer sum of rotated vectors (read as float64)."""
    y = np.array(values, dtype=np.float64)
    if y.ndim != 1 or y.size != padded_dimension(as_int(dim, "dim")):
        raise ConfigurationError(
            "values must be 1-D with padded_dimension(dim) coordinates (the rotated length)"
        )
    _rotate_in_place(y, key, 0, forward=False)
    return y[:dim]


def _blocks(size: int) -> list[tuple[int, int]]:
    """(start, part) of the rotated blocks of :func:`rotate_fixed` for a vector of ``size``."""
    if size <= 1:
        return []
    block = 1 << (size.bit_length() - 1)
    return [(0, 0)] if block == size else [(0, 0), (size - block, 1)]


def rotate_fixed(values: Any, key: bytes) -> np.ndarray:
    """A randomized Hadamard rotation that keeps the length ``M`` (for a protocol whose vector
    length is fixed): with ``B`` the largest power of two ``<= M``, ``H D₀ / sqrt(B)`` on the
    first ``B`` coordinates, then ``H D₁ / sqrt(B)`` on the last ``B`` (the two overlap unless
    ``M = B``; ``D₀``, ``D₁`` are :func:`rotation_signs` parts 0 and 1). An orthogonal map of
    ``R^M``: it keeps the norm, and every coordinate comes out of a rotation of ``B > M/2``
    coordinates (sub-Gaussian with variance proxy at most ``||x||² / B``)."""
    x = _as_vector(values, "values").copy()
    size = 1 << max(x.size.bit_length() - 1, 0)
    for start, part in _blocks(x.size):
        _rotate_in_place(x[start : start + size], key, part, forward=True)
    return x


def unrotate_fixed(values: Any, key: bytes) -> np.ndarray:
    """The inverse of :func:`rotate_fixed` (the blocks undone in reverse order)."""
    y = np.array(values, dtype=np.float64)
    if y.ndim != 1:
        raise ConfigurationError("values must be a 1-D array")
    size = 1 << max(y.size.bit_length() - 1, 0)
    for start, part in reversed(_blocks(y.size)):
        _rotate_in_place(y[start : start + size], key, part, forward=False)
    return y


# --- conditional randomized rounding ------------------------------------------------------


def rounded_norm_bound(norm: float, dim: int, beta: float) -> float:
    """The bound on the L2 norm of a randomized rounding of a vector of norm ``<= norm`` in
    ``dim`` coordinates (Kairouz, Liu, Steinke 2021, Theorem 1):
    ``min(sqrt(norm² + dim/4 + sqrt(2 ln(1/β)) (norm + sqrt(dim)/2)), norm + sqrt(dim))``.
    With ``beta = 0`` only the second term (it always holds); with ``β > 0`` one rounding
    meets the first with probability at least ``1 - β``."""
    norm = _positive(norm, "norm")
    dim = as_int(dim, "dim", low=1)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
        raise ConfigurationError("beta must be a float in [0, 1) (e.g. exp(-0.5))")
    always = norm + math.sqrt(dim)
    if beta == 0:
        return always
    squared = norm**2 + dim / 4 + math.sqrt(2 * math.log(1 / beta)) * (norm + math.sqrt(dim) / 2)
    return min(math.sqrt(squared), always)


def _squared_norm(z: np.ndarray) -> int:
    """``sum(z**2)`` exactly, as a Python int."""
    if z.size == 0:
        return 0
    largest = int(np.abs(z).max())
    if largest * largest * z.size < 1 << 63:
        return int(np.dot(z, z))
    return sum(int(v) * int(v) for v in z.tolist())


def conditional_round(
    values: Any, bound: float, stream: NoiseStream, *, attempts: int = MAX_ROUNDING_ATTEMPTS
) -> np.ndarray:
    """Integers ``z`` (int64) with ``z_i`` in ``{floor(y_i), floor(y_i) + 1}``, rounded up with
    probability ``y_i - floor(y_i)`` (to within ``2**-53``: the coin is a 53-bit uniform from
    ``stream``), drawn again until ``||z||_2 <= bound`` (checked exactly, in integers).

    Raises :class:`RoundingFailed` after ``attempts`` draws without success: then the input's
    norm is far above the one ``bound`` was computed for.

    One compiled pass per draw (:func:`ssddl.hazmat._kernels.round_with_coins`, over the
    keystream in cache-sized chunks) rounds and sums the squares in int64 where that cannot
    overflow (else the sum is taken in Python ints): the same keystream words, coins and
    comparisons as numpy's ``floor(y) + (coins < y - floor(y))``, so the same integers.
    """
    y = np.ascontiguousarray(_as_vector(values, "values"))
    bound = _positive(bound, "bound")
    attempts = as_int(attempts, "attempts", low=1)
    largest = max(-float(y.min(initial=0.0)), float(y.max(initial=0.0)))  # max |y|, no temporary
    if largest >= 2.0**62:
        raise ConfigurationError("values are too large to round into int64; scale them down")
    limit = math.floor(bound * bound)
    # |z_i| <= floor(|y_i|) + 1: below this, the kernel's int64 sum of squares cannot overflow
    exact_in_int64 = (math.floor(largest) + 1) ** 2 * y.size < 1 << 63
    from ssddl.hazmat import _kernels

    z = np.empty(y.size, dtype=np.int64)
    for _ in range(attempts):
        squares, start = 0, 0
        for words in stream.word_chunks(y.size):  # the words of stream.words(y.size)
            stop = start + words.size
            squares += _kernels.round_with_coins(y[start:stop], words, z[start:stop])
            start = stop
        if (squares if exact_in_int64 else _squared_norm(z)) <= limit:
            return z
    raise RoundingFailed(
        f"no randomized rounding met the norm bound {bound:.6g} in {attempts} attempts; "
        "clip the vector to the norm the bound was computed for before scaling"
    )


# --- modular wrap-around ------------------------------------------------------------------


def _bits(bits: Any) -> int:
    return as_int(bits, "bits", low=2, high=65)


def wrap(values: Any, bits: int) -> np.ndarray:
    """Integers ``values`` reduced modulo ``2**bits`` (two's complement), as uint64."""
    bits = _bits(bits)
    z = np.asarray(values)
    if z.dtype.kind not in "iu":
        raise ConfigurationError("values must be an integer array")
    words = z.astype(np.int64, copy=False).view(np.uint64)
    if bits == 64:
        return words.copy()
    return words & np.uint64((1 << bits) - 1)


def unwrap(words: Any, bits: int) -> np.ndarray:
    """Words modulo ``2**bits`` (any unsigned dtype; higher bits ignored) read as the signed
    integers in ``[-2**(bits-1), 2**(bits-1))``, as int64."""
    bits = _bits(bits)
    w = np.asarray(words)
    if w.dtype.kind != "u":
        raise ConfigurationError("words must be an unsigned integer array (ring words)")
    w = w.astype(np.uint64)
    if bits < 64:
        w &= np.uint64((1 << bits) - 1)
        w ^= np.uint64(1 << (bits - 1))  # centre: subtract 2**(b-1) after flipping the top
        return w.view(np.int64) - np.int64(1 << (bits - 1))
    return w.view(np.int64)


def wrap_probability_bound(
    *,
    bits: int,
    dim: int,
    signal_norm: float,
    members: int,
    noise: str,
    noise_variance: float,
    flat_dim: int | None = None,
) -> float:
    """An upper bound on the probability that some coordinate of the true integer sum leaves
    ``[-2**(bits-1), 2**(bits-1))`` so that :func:`unwrap` reads it wrongly.
    ``flat_dim`` (default ``dim``): the length of the rotated blocks (:func:`rotate_fixed`
    rotates blocks of ``B`` coordinates: pass ``B``).

    The sum is ``γ R(Σ x_i) + e + N``: the rotated sum of the scaled inputs (``||·|| <=
    signal_norm``; each coordinate is sub-Gaussian with variance proxy ``signal_norm² / flat_dim``
    over the random signs, by Hoeffding), the rounding errors (``|e| < members``) and the total
    noise ``N`` of variance ``noise_variance`` (``noise`` "ddg": a sum of discrete Gaussians,
    sub-Gaussian with that proxy, Canonne et al. Cor. 9; "skellam": moment generating function
    ``exp(v (cosh λ - 1))``). Chernoff at ``t = 2**(bits-1) - members`` for each sign, union
    over ``dim`` coordinates; capped at 1. Valid for inputs chosen before the round's signs.
    """
    bits, dim = _bits(bits), as_int(dim, "dim", low=1)
    members = as_int(members, "members", low=1)
    flat = dim if flat_dim is None else as_int(flat_dim, "flat_dim", low=1)
    proxy = float(signal_norm) ** 2 / flat
    variance = float(noise_variance)
    if noise not in ("ddg", "skellam") or variance < 0 or proxy < 0:
        raise ConfigurationError("noise must be 'ddg' or 'skellam' with a variance >= 0")
    t = 2.0 ** (bits - 1) - members
    if t <= 0:
        return 1.0
    if noise == "ddg":
        total = proxy + variance
        exponent = -(t * t) / (2 * total) if total > 0 else -math.inf
    else:
        from scipy import optimize  # only here: importing scipy costs every protocol import

        def log_mgf_bound(lam: float) -> float:
            return -lam * t + lam * lam * proxy / 2 + variance * (math.cosh(lam) - 1)

        best = optimize.minimize_scalar(log_mgf_bound, bounds=(0.0, 50.0), method="bounded")
        exponent = min(float(best.fun), 0.0)  # any λ gives a valid bound
    log_bound = math.log(2 * dim) + exponent
    return 1.0 if log_bound >= 0 else math.exp(log_bound)
