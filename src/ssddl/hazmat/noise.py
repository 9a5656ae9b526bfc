"""Exact integer noise for distributed differential privacy: discrete Gaussian, Poisson, Skellam.

Every sample is drawn by *inversion* of the exact cumulative distribution function
``C(k) = P[X <= k]`` with a uniform real ``U`` in ``[0, 1)`` read from the caller's
:class:`~ssddl.hazmat.rand.RandomSource`: the output is the ``k`` with ``C(k-1) <= U < C(k)``,
so it has exactly the distribution asked for, with no truncation of the tails and no floating
point anywhere in the decision. The distributions are those of Canonne, Kamath and Steinke,
"The Discrete Gaussian for Differential Privacy", NeurIPS 2020 (``N_Z(0, σ²)``:
``P[X = x] ∝ exp(-x²/(2σ²))`` on the integers), and the Poisson; Skellam noise is the
difference of two independent Poisson draws (Agarwal, Kairouz and Liu, NeurIPS 2021).

How inversion stays exact and fast.

* The bits of ``U``. A 32-byte key is drawn from the source and expanded with the project's
  AES-256-CTR keystream (:mod:`ssddl.hazmat.prg`); the first 64 bits of ``U`` are one
  keystream word ``W``, so ``U`` lies in ``[W, W + 1) / 2**64``. Further bits are drawn only
  when these do not decide (below).
* The table. ``T_k = floor(C(k) * 2**64)`` for every ``k`` of a window outside which the
  distribution has mass below ``2**-104``. The masses are computed once per parameter in
  integer fixed point with ``P >= 192`` bits and a proved bound on the error of every term
  (the recurrences below), the normalising constant is enclosed between two integers that
  include a proved bound on the mass outside the window, and a table entry is kept only when
  the lower and upper bounds of ``C(k) * 2**64`` have the same floor (else the precision is
  raised). So every ``T_k`` is exact.
* The lookup. If ``T_{k-1} < W < T_k`` then ``C(k-1) < U < C(k)`` for every ``U`` with
  those first 64 bits, and the output is ``k``: numpy decides that with one lookup in a guide
  table indexed by the top 16 bits of ``W`` and one comparison. The few words for which this
  does not decide — ``W`` equal to some ``T_k`` (``C(k)`` may lie on either side of ``U``),
  ``W = 0``, or a bucket of the guide table with two boundaries in it — are finished exactly:
  the bucket case by a binary search, the others by drawing 64 more bits of ``U`` at a time and
  comparing ``U`` with enclosures of ``C(k)`` at a precision 64 bits beyond ``U``'s, until the
  comparison is certain (:func:`_invert_exactly`). That happens with probability below
  ``2**-40`` per sample (at most 2**22 table entries, each one word of 2**64).

Error bounds of the fixed-point terms (units of ``2**-P``, all terms at most 1, ``floor``
adds at most one unit per operation; :func:`_exp_neg` is within 2 units):

* discrete Gaussian, ``u_x = exp(-x²/(2s))`` with ``s = σ²``, ``g_x = exp(-(2x+1)/(2s))``,
  ``q = exp(-1/s)``: ``u_{x+1} = u_x g_x``, ``g_{x+1} = g_x q``, so
  ``err(g_x) <= 3x + 2`` and ``err(u_x) <= 3x(x+1)/2 <= 2(x+1)²``; the mass beyond ``x`` is at
  most ``u_x g_x / (1 - g_x)`` because the ratio of successive terms decreases;
* Poisson, relative to the mode ``m = floor(μ)``: ``r_{k+1} = r_k μ/(k+1)`` upward,
  ``r_{k-1} = r_k k/μ`` downward, both ratios at most 1, so ``err(r_k) <= |k - m|``; beyond
  ``k`` the mass is at most ``r_k ρ / (1 - ρ)`` with ``ρ = μ/(k+1)`` (upward) or ``k/μ``
  (downward).

Ranges. ``σ²`` in ``[1/4, 2**32]`` and ``μ`` in ``(0, 2**32]``; the table has about
``20 σ`` (``24 √μ``) entries of 8 bytes and is built once per value in a process (cached).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat._checks import as_int
from ssddl.hazmat.prg import keystream_words
from ssddl.hazmat.rand import RandomSource

__all__ = [
    "MAX_VARIANCE",
    "MIN_GAUSSIAN_VARIANCE",
    "NoiseStream",
    "discrete_gaussian",
    "discrete_gaussian_cdf_table",
    "poisson",
    "skellam",
]

MIN_GAUSSIAN_VARIANCE = Fraction(1, 4)
MAX_VARIANCE = Fraction(1 << 32)
_WORD = 64
_GUIDE_BITS = 16
_MAX_GUIDE_BITS = 22
_TABLE_TAIL_BITS = _WORD + 40  # mass outside the table's window: below 2**-104
_TABLE_PRECISION = 192
_U64_MAX = (1 << 64) - 1


class NoiseStream:
    """Uniform 64-bit words for the samplers: AES-256-CTR under a key drawn from ``source``.

    Each call to :meth:`words` uses a fresh nonce (a counter), so no keystream byte is used
    twice. The key is secret; the repr shows nothing of it.
    """

    __slots__ = ("_counter", "_key")

    def __init__(self, source: RandomSource) -> None:
        if not callable(getattr(source, "random_bytes", None)):
            raise ConfigurationError(
                "source must be a RandomSource (an object with random_bytes(n)); pass OsRandom()"
            )
        key = source.random_bytes(32)
        if len(key) != 32:
            raise ConfigurationError("source.random_bytes(32) must return exactly 32 bytes")
        self._key = bytes(key)
        self._counter = 0

    def __repr__(self) -> str:
        return "NoiseStream(<key hidden>)"

    def words(self, count: int) -> np.ndarray:
        """``count`` independent uniform uint64 words."""
        nonce = self._counter.to_bytes(12, "big")
        self._counter += 1
        return keystream_words(self._key, nonce, count, 64)

    def integer(self) -> int:
        """One uniform 64-bit Python int."""
        return int(self.words(1)[0])


def _as_stream(source: RandomSource | NoiseStream) -> NoiseStream:
    return source if isinstance(source, NoiseStream) else NoiseStream(source)


# --- exact parameters ---------------------------------------------------------------------


def _as_fraction(value: Any, name: str, low: Fraction, *, low_open: bool = False) -> Fraction:
    """``value`` (an int, float or Fraction) as an exact Fraction in the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise ConfigurationError(f"{name} must be a number (int, float or Fraction)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"{name} must be finite")
    exact = Fraction(value)
    too_low = exact <= low if low_open else exact < low
    if too_low or exact > MAX_VARIANCE:
        bound = f"> {low}" if low_open else f">= {float(low)}"
        raise ConfigurationError(f"{name} must be {bound} and at most 2**32, got {float(exact)}")
    return exact


# --- fixed-point masses with proved error bounds ------------------------------------------


@dataclass(frozen=True)
class _Masses:
    """Relative masses of a window ``[low, low + len(values))`` in units of ``2**-bits``.

    ``values[i]`` is within ``errors[i]`` of the true relative mass of ``low + i``; the
    relative mass below the window is at most ``tail_low``, above it at most ``tail_high``.
    """

    low: int
    values: tuple[int, ...]
    errors: tuple[int, ...]
    tail_low: int
    tail_high: int

    def normaliser(self) -> tuple[int, int]:
        """Integers enclosing the total relative mass Z: ``z_low <= Z <= z_high``."""
        total = sum(self.values)
        slack = sum(self.errors)
        return total - slack, total + slack + self.tail_low + self.tail_high


def _exp_neg(a: Fraction, bits: int) -> int:
    """``exp(-a) * 2**bits`` within 2 units, for ``0 <= a <= 4``, by the Taylor series.

    The terms alternate and decrease in size once ``n > a``; the series stops at a term below
    ``2**-(bits+4)``, which bounds the error of the partial sum; the floor adds below 1 unit.
    """
    total = Fraction(0)
    term = Fraction(1)
    n = 0
    eps = Fraction(1, 1 << (bits + 4))
    while True:
        total += term
        n += 1
        term = -term * a / n
        if n > a and abs(term) < eps:
            return math.floor(total * (1 << bits))


def _gaussian_half(s: Fraction, bits: int, tail_bits: int) -> tuple[list[int], list[int], int]:
    """``u_x`` for x = 0, 1, ... until the mass beyond is below ``2**-tail_bits``: values,
    error bounds and a bound on the mass beyond the last x (module docstring)."""
    one = 1 << bits
    q = _exp_neg(1 / s, bits)
    g = _exp_neg(1 / (2 * s), bits)
    u, x = one, 0
    values, errors = [], []
    limit = one >> tail_bits
    while True:
        err_u, err_g = 2 * (x + 1) ** 2, 3 * x + 2
        values.append(u)
        errors.append(err_u)
        rho = g + err_g  # an upper bound on g_x, the ratio of every later pair of terms
        if rho < one:
            tail = -(-(u + err_u) * rho // (one - rho))
            if tail <= limit:
                return values, errors, tail
        u = u * g >> bits
        g = g * q >> bits
        x += 1


@lru_cache(maxsize=32)
def _gaussian_masses(s: Fraction, bits: int, tail_bits: int) -> _Masses:
    values, errors, tail = _gaussian_half(s, bits, tail_bits + 1)
    half = len(values) - 1
    return _Masses(
        low=-half,
        values=tuple([*values[:0:-1], *values]),
        errors=tuple([*errors[:0:-1], *errors]),
        tail_low=tail,
        tail_high=tail,
    )


def _poisson_side(
    mu: Fraction, mode: int, bits: int, tail_bits: int, up: bool
) -> tuple[list[int], list[int], int]:
    """Relative Poisson masses from the mode outward (excluding the mode), their error
    bounds and a bound on the mass beyond the last one (module docstring)."""
    one = 1 << bits
    limit = one >> tail_bits
    values: list[int] = []
    errors: list[int] = []
    r, k = one, mode
    while True:
        err = abs(k - mode)
        if up:
            rho = mu / (k + 1)
        elif k == 0:
            return values, errors, 0
        else:
            rho = k / mu
        if rho < 1:
            tail = math.ceil((r + err) * rho / (1 - rho))
            if tail <= limit:
                return values, errors, tail
        if up:
            r = r * mu.numerator // (mu.denominator * (k + 1))
            k += 1
        else:
            r = r * k * mu.denominator // mu.numerator
            k -= 1
        values.append(r)
        errors.append(abs(k - mode))


@lru_cache(maxsize=32)
def _poisson_masses(mu: Fraction, bits: int, tail_bits: int) -> _Masses:
    mode = math.floor(mu)
    above, above_err, tail_high = _poisson_side(mu, mode, bits, tail_bits + 1, up=True)
    below, below_err, tail_low = _poisson_side(mu, mode, bits, tail_bits + 1, up=False)
    return _Masses(
        low=mode - len(below),
        values=tuple([*below[::-1], 1 << bits, *above]),
        errors=tuple([*below_err[::-1], 0, *above_err]),
        tail_low=tail_low,
        tail_high=tail_high,
    )


MassesOf = Callable[[int, int], _Masses]


# --- the 64-bit table and the guide -------------------------------------------------------


def _table_of(masses: _Masses) -> list[int] | None:
    """``floor(C(k) * 2**64)`` for every k of the window, or None if the enclosures are too
    wide to fix a floor (then a higher precision is needed)."""
    z_low, z_high = masses.normaliser()
    if masses.tail_low << _WORD >= z_low:  # C(low - 1) must be below 2**-64
        return None
    acc_low, acc_high = 0, masses.tail_low
    table = []
    for value, error in zip(masses.values, masses.errors, strict=True):
        acc_low += value - error
        acc_high += value + error
        floor_low = (acc_low << _WORD) // z_high
        floor_high = min((acc_high << _WORD) // z_low, _U64_MAX)  # C(k) < 1: floor < 2**64
        if floor_low != floor_high:
            return None
        table.append(floor_low)
    return table


@dataclass(frozen=True)
class _Sampler:
    """The exact table of one distribution and its guide (see the module docstring)."""

    low: int
    table: np.ndarray  # uint64, T_k for k = low, low + 1, ...; padded with one 2**64 - 1
    guide: np.ndarray  # int32 per bucket of the top bits: first k with T_k >= start, or -1
    shift: np.uint64  # 64 minus the guide's bits
    masses_of: MassesOf

    def draw(self, stream: NoiseStream, count: int) -> np.ndarray:
        words = stream.words(count)
        index = np.take(self.guide, (words >> self.shift).view(np.int64))  # int32
        boundary = np.take(self.table, index)
        slow = words == boundary
        slow |= index < 0
        np.add(index, words >= boundary, out=index, casting="unsafe")
        if slow.any():
            where = np.flatnonzero(slow)
            index[where] = self._slow(words[where], stream)
        return np.add(index, self.low, dtype=np.int64)

    def _slow(self, words: np.ndarray, stream: NoiseStream) -> np.ndarray:
        """The indices of ``words`` by binary search, finished with more bits of ``U`` for
        the words equal to a table entry, to 0, or past the last entry."""
        entries = self.table[:-1]
        index = np.searchsorted(entries, words, side="right").astype(np.int64)
        previous = entries[np.maximum(index - 1, 0)]
        ambiguous = (words == 0) | (index == entries.size) | ((index > 0) & (previous == words))
        for position in np.flatnonzero(ambiguous):
            found = _invert_exactly(self.masses_of, int(words[position]), stream)
            index[position] = found - self.low
        return index


def _guide_of(table: np.ndarray, bits: int) -> np.ndarray:
    """Per bucket of the top ``bits`` bits: the first k with ``T_k >= start`` when the bucket
    holds at most one boundary, is not bucket 0 (``W = 0`` needs the slow path) and is not past
    the last boundary; -1 (the slow path) otherwise."""
    starts = np.arange(1 << bits, dtype=np.uint64) << np.uint64(_WORD - bits)
    first = np.searchsorted(table, starts, side="left")
    ends = np.append(first[1:], table.size)
    single = (ends - first <= 1) & (first < table.size)
    single[0] = False
    return np.where(single, first, -1).astype(np.int32)


def _build(masses_of: MassesOf) -> _Sampler:
    bits = _TABLE_PRECISION
    while True:
        masses = masses_of(bits, _TABLE_TAIL_BITS)
        table = _table_of(masses)
        if table is not None:
            break
        bits += 64
    array = np.array(table, dtype=np.uint64)
    guide_bits = min(max(len(table).bit_length() + 3, _GUIDE_BITS), _MAX_GUIDE_BITS)
    return _Sampler(
        low=masses.low,
        table=np.append(array, np.uint64(_U64_MAX)),
        guide=_guide_of(array, guide_bits),
        shift=np.uint64(_WORD - guide_bits),
        masses_of=masses_of,
    )


def _decide(masses: _Masses, prefix: int, bits: int) -> int | None:
    """The k with ``C(k-1) <= U < C(k)`` for every ``U`` in ``[prefix, prefix + 1) / 2**bits``
    if the enclosures of C make it certain; None otherwise."""
    z_low, z_high = masses.normaliser()
    acc_low, acc_high = 0, masses.tail_low
    above_previous = prefix * z_low >= acc_high << bits
    for offset, (value, error) in enumerate(zip(masses.values, masses.errors, strict=True)):
        acc_low += value - error
        if (prefix + 1) * z_high <= acc_low << bits:  # U < C(k) for sure
            return masses.low + offset if above_previous else None
        acc_high += value + error
        above_previous = prefix * z_low >= acc_high << bits
    return None


def _invert_exactly(masses_of: MassesOf, word: int, stream: NoiseStream) -> int:
    """Finish the inversion of ``U`` whose first 64 bits are ``word``: draw 64 bits more at a
    time and compare with C enclosed 64 bits finer than ``U`` until the value is certain."""
    prefix, bits = word, _WORD
    while True:
        prefix = (prefix << _WORD) | stream.integer()
        bits += _WORD
        found = _decide(masses_of(bits + _WORD, bits + 40), prefix, bits)
        if found is not None:
            return found


# --- public samplers ----------------------------------------------------------------------


@lru_cache(maxsize=16)
def _gaussian_sampler(variance: Fraction) -> _Sampler:
    return _build(lambda bits, tail_bits: _gaussian_masses(variance, bits, tail_bits))


@lru_cache(maxsize=16)
def _poisson_sampler(mean: Fraction) -> _Sampler:
    return _build(lambda bits, tail_bits: _poisson_masses(mean, bits, tail_bits))


def _count(count: Any) -> int:
    return as_int(count, "count", high=1 << 36)


def discrete_gaussian(
    source: RandomSource | NoiseStream, count: int, variance: float | Fraction
) -> np.ndarray:
    """``count`` independent draws of the discrete Gaussian ``N_Z(0, σ²)`` with
    ``σ² = variance`` (exactly: a float is read as the rational it is), as int64.

    ``P[X = x] = exp(-x²/(2σ²)) / Σ_y exp(-y²/(2σ²))``; ``variance`` is the parameter σ²,
    which is at most the variance of the discrete distribution (Canonne et al., Cor. 9).
    """
    sampler = _gaussian_sampler(_as_fraction(variance, "variance", MIN_GAUSSIAN_VARIANCE))
    return sampler.draw(_as_stream(source), _count(count))


def poisson(source: RandomSource | NoiseStream, count: int, mean: float | Fraction) -> np.ndarray:
    """``count`` independent draws of Poisson(``mean``), exactly, as int64."""
    sampler = _poisson_sampler(_as_fraction(mean, "mean", Fraction(0), low_open=True))
    return sampler.draw(_as_stream(source), _count(count))


def skellam(source: RandomSource | NoiseStream, count: int, mean: float | Fraction) -> np.ndarray:
    """``count`` draws of the symmetric Skellam: Poisson(``mean``) - Poisson(``mean``),
    variance ``2 * mean``, as int64. A sum of independent Skellams is a Skellam."""
    stream = _as_stream(source)
    sampler = _poisson_sampler(_as_fraction(mean, "mean", Fraction(0), low_open=True))
    count = _count(count)
    return sampler.draw(stream, count) - sampler.draw(stream, count)


def discrete_gaussian_cdf_table(variance: float | Fraction) -> tuple[int, np.ndarray]:
    """``(low, T)``: ``T[i] = floor(P[X <= low + i] * 2**64)`` of ``N_Z(0, variance)`` over
    the window the sampler tabulates (for tests and audits)."""
    sampler = _gaussian_sampler(_as_fraction(variance, "variance", MIN_GAUSSIAN_VARIANCE))
    return sampler.low, sampler.table[:-1].copy()
