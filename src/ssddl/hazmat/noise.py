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
  AES-256-CTR keystream (:mod:`ssddl.hazmat.prg`). A draw of ``M`` samples reads ``M``
  uint32 keystream words, in segments of :data:`SEGMENT_WORDS` words, segment ``i`` the
  keystream of the ``i``-th nonce the draw reserves: the first 32 bits of sample ``j``'s ``U``
  are word ``j``, ``W``, so ``U`` lies in ``[W, W + 1) / 2**32``. Further bits are drawn only
  when these do not decide (below): 32 more per undecided sample from one further nonce,
  in the samples' order, then 64 at a time.
* The table. ``T_k = floor(C(k) * 2**64)`` for every ``k`` of a window outside which the
  distribution has mass below ``2**-104``. The masses are computed once per parameter in
  integer fixed point with ``P >= 192`` bits and a proved bound on the error of every term
  (the recurrences below), the normalising constant is enclosed between two integers that
  include a proved bound on the mass outside the window, and a table entry is kept only when
  the lower and upper bounds of ``C(k) * 2**64`` have the same floor (else the precision is
  raised). So every ``T_k`` is exact, and so is ``t_k = floor(C(k) * 2**32) = T_k >> 32``.
* The first 32 bits. If ``t_{k-1} < W < t_k`` then ``C(k-1) < U < C(k)`` for every ``U``
  with those first 32 bits (``W >= t_{k-1} + 1 > C(k-1) * 2**32`` and
  ``W + 1 <= t_k <= C(k) * 2**32``), and the output is ``k``; equivalently ``k`` is the number
  of ``t`` at most ``W`` and ``t_{k-1} != W``. A compiled kernel (:mod:`ssddl.hazmat._kernels`,
  numba) finds that ``k`` per word: a guide indexed by the top 10 to 14 bits of ``W`` gives the
  bucket's first index and its number of entries, the index is interpolated linearly inside
  the bucket, and two entries next to it settle it — the guide's builder checks, for every
  point where the exact or the interpolated index steps, that the exact one is within reach
  (:func:`_interpolation_reach`); the buckets where it is not (the far tails, about 0.2 % of
  the words at the bench's ``σ² = 2**28``) are settled by a binary search. The table the
  kernel reads holds only the ``t_k`` between the last 0 and the first ``2**32 - 1``
  (about ``13 σ`` entries of 4 bytes).
* The undecided words — ``W`` equal to some ``t_k`` (``C(k)`` may lie on either side of
  ``U``), including ``W = 0`` and ``W = 2**32 - 1`` — have probability at most the number of
  distinct ``t_k`` over ``2**32`` (about ``5·10**-5`` at ``σ² = 2**28``). Each gets 32 more bits
  of ``U`` and goes through the same inversion on the 64-bit ``T_k`` (numpy's binary search);
  where that does not decide either (``W`` on a ``T_k``, probability below ``2**-40``), 64
  more bits of ``U`` at a time are compared with enclosures of ``C(k)`` at a precision 64 bits
  beyond ``U``'s until the comparison is certain (:func:`_invert_exactly`). The tests compare
  the kernel with numpy's binary search on every table entry and its neighbours.

Speed (``benchmarks/bench_noise.py``, the project machine, 2 shared cores): 10**6 draws at
``σ² = 2**28`` take about 4 ms in one thread — 0.4 ms of AES keystream (4 bytes a sample,
half of the 64-bit words used before) and about 3 ns a word in the kernel, which is bound by
its dependent loads (guide, then table) and its integer work, not by memory bandwidth; draws
of at least :data:`PARALLEL_WORDS` share their segments among up to 4 threads (the result
does not depend on how many). The numpy guide-table version before it took about 21 ms.

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

Ranges. ``σ²`` in ``[1/4, 2**32]`` and ``μ`` in ``(0, 2**32]``; the 64-bit table has about
``20 σ`` (``24 √μ``) entries of 8 bytes; it and the 32-bit lookup are built once per value in
a process (cached: about 0.6 s at ``σ² = 2**28``, 0.06 s of it the lookup).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat._checks import as_int
from ssddl.hazmat.prg import (
    StreamCipher,
    _check_length,
    _helpers,
    _writer,
    keystream_into,
    keystream_words,
)
from ssddl.hazmat.rand import RandomSource

__all__ = [
    "MAX_VARIANCE",
    "MIN_GAUSSIAN_VARIANCE",
    "SEGMENT_WORDS",
    "NoiseStream",
    "discrete_gaussian",
    "discrete_gaussian_cdf_table",
    "poisson",
    "skellam",
]

MIN_GAUSSIAN_VARIANCE = Fraction(1, 4)
MAX_VARIANCE = Fraction(1 << 32)
_WORD = 64
_TABLE_TAIL_BITS = _WORD + 40  # mass outside the table's window: below 2**-104
_TABLE_PRECISION = 192
_U64_MAX = (1 << 64) - 1
#: Words per chunk of :meth:`NoiseStream.word_chunks` (512 KiB: stays in the L2 cache).
CHUNK_WORDS = 1 << 16


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
        return keystream_words(self._key, self._nonce(), count, 64)

    def word_chunks(self, count: int, chunk: int = CHUNK_WORDS) -> Iterator[np.ndarray]:
        """The ``count`` words of one :meth:`words` call (the same nonce, so the same words),
        ``chunk`` at a time, each written into the same buffer of the iterator: a chunk is
        overwritten by the next, so copy what must be kept. No ``count``-sized array is made
        (a fresh 8 MB array costs page faults that take as long as its keystream)."""
        count, chunk = as_int(count, "count"), as_int(chunk, "chunk", low=1)
        _check_length(count, 8, StreamCipher.AES_CTR)
        return self._chunks(self._nonce(), count, chunk)

    def _chunks(self, nonce: bytes, count: int, chunk: int) -> Iterator[np.ndarray]:
        writer = _writer(self._key, nonce, StreamCipher.AES_CTR, 0, count * 8)
        buffer = np.empty(min(chunk, count), dtype=np.uint64)
        raw = buffer.view(np.uint8)
        zeros = bytes(raw.size)
        for start in range(0, count, chunk):
            size = min(chunk, count - start)
            writer.update_into(zeros[: size * 8], raw[: size * 8])
            words = buffer[:size]
            yield words if sys.byteorder == "little" else words.byteswap()

    def words32(self, count: int) -> np.ndarray:
        """``count`` independent uniform uint32 words (half the keystream of :meth:`words`)."""
        return keystream_words(self._key, self._nonce(), count, 32)

    def reserve(self, count: int) -> int:
        """Reserve ``count`` nonces for :meth:`fill32`; returns the first."""
        first = self._counter
        self._counter += count
        return first

    def fill32(self, out: np.ndarray, nonce: int) -> None:
        """Overwrite the uint32 array ``out`` with the keystream of a reserved nonce."""
        keystream_into(out, self._key, nonce.to_bytes(12, "big"), workers=1)

    def _nonce(self) -> bytes:
        return self.reserve(1).to_bytes(12, "big")

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
class _Guide32:
    """The 32-bit lookup of one distribution (module docstring, "The first 32 bits").

    ``table`` is ``floor(C(k) * 2**32)`` for the k from the last one with value 0 to the first
    one with value ``2**32 - 1``, with :data:`_WINDOW` zeros before and :data:`_WINDOW`
    entries ``2**32 - 1`` after (so every read of the kernel is in bounds); ``low`` is the
    output of index 0 of ``table``. ``guide`` has one uint64 per bucket of the top ``bits``
    bits: ``base << 32 | count`` with ``count`` the table entries in the bucket and ``base``
    the first of :data:`_WINDOW` entries that the interpolated index points into; the
    bitwise complement of ``first << 32 | count`` where they may not (a binary search)."""

    table: np.ndarray  # uint32
    guide: np.ndarray  # uint64
    shift: int  # 32 minus the guide's bits
    low: int


@dataclass(frozen=True)
class _Sampler:
    """The exact tables of one distribution (see the module docstring)."""

    low: int
    table: np.ndarray  # uint64, T_k for k = low, low + 1, ...; padded with one 2**64 - 1
    first: _Guide32
    masses_of: MassesOf

    def draw(
        self, stream: NoiseStream, count: int, out: np.ndarray | None = None, sign: int = 0
    ) -> np.ndarray:
        """``count`` draws, written to a new array (or to ``out``: ``sign`` 0), added to
        ``out`` (1) or subtracted from it (-1). Segment ``i`` of :data:`SEGMENT_WORDS` words is
        the keystream of the ``i``-th nonce reserved, run through the kernel while it is in
        the cache; the segments are shared among threads (the result does not depend on
        how)."""
        if out is None:
            out = np.empty(count, dtype=np.int64)
        target = out
        segments = -(-count // SEGMENT_WORDS)
        first = stream.reserve(segments)

        def job(indices: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
            buffer, scratch = _scratch.get(min(SEGMENT_WORDS, count))
            positions, words = [], []
            for index in indices:
                start = index * SEGMENT_WORDS
                size = min(SEGMENT_WORDS, count - start)
                chunk = buffer[:size]
                stream.fill32(chunk, first + index)
                slow = self.first_pass(chunk, target[start : start + size], scratch, sign)
                if slow.size:
                    positions.append(slow + start)
                    words.append(chunk[slow])
            return positions, words

        positions, words = _run_jobs(job, segments, count)
        if positions:
            self.finish(np.concatenate(words), np.concatenate(positions), out, stream, sign)
        return out

    def first_pass(
        self,
        words: np.ndarray,
        out: np.ndarray,
        scratch: np.ndarray | None = None,
        sign: int = 0,
    ) -> np.ndarray:
        """Write to ``out`` (or add to it, or subtract: ``sign``) the outputs that the 32-bit
        ``words`` decide, by the compiled kernel; return the positions of the words they do
        not decide (left to :meth:`finish`). ``scratch``: int64, at least ``words.size``."""
        from ssddl.hazmat import _kernels

        g = self.first
        if scratch is None or scratch.size < words.size:
            scratch = np.empty(words.size, dtype=np.int64)
        count = _kernels.invert32(words, g.table, g.guide, g.shift, g.low, sign, out, scratch)
        return scratch[:count].copy()

    def first_pass_reference(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`first_pass` by numpy's binary search, for the tests."""
        g = self.first
        index = np.searchsorted(g.table, words, side="right")
        slow = np.flatnonzero(g.table[index - 1] == words)
        return index.astype(np.int64) + g.low, slow

    def finish(
        self,
        words: np.ndarray,
        positions: np.ndarray,
        out: np.ndarray,
        stream: NoiseStream,
        sign: int = 0,
    ) -> None:
        """The draws at ``positions`` (distinct), whose first 32 bits of ``U`` were the
        undecided ``words``: 32 more bits of ``U`` each, then the 64-bit table and, past that,
        :func:`_invert_exactly`; written to ``out`` there, added or subtracted (``sign``)."""
        extra = stream.words32(words.size).astype(np.uint64)
        prefix = (words.astype(np.uint64) << np.uint64(32)) | extra
        values = self._slow(prefix, stream) + self.low
        if sign == 0:
            out[positions] = values
        elif sign > 0:
            out[positions] += values
        else:
            out[positions] -= values

    def _slow(self, words: np.ndarray, stream: NoiseStream) -> np.ndarray:
        """The indices of the 64-bit prefixes ``words`` by binary search, finished with more
        bits of ``U`` for the words equal to a table entry, to 0, or past the last entry."""
        entries = self.table[:-1]
        index = np.searchsorted(entries, words, side="right").astype(np.int64)
        previous = entries[np.maximum(index - 1, 0)]
        ambiguous = (words == 0) | (index == entries.size) | ((index > 0) & (previous == words))
        for position in np.flatnonzero(ambiguous):
            found = _invert_exactly(self.masses_of, int(words[position]), stream)
            index[position] = found - self.low
        return index


#: Table entries the kernel reads per word in a bucket whose interpolation is within reach.
_WINDOW = 2
_U32_MAX = (1 << 32) - 1
#: Words per keystream nonce in a draw (1 MiB of uint32, which stays in the 2 MiB L2 cache from
#: the cipher to the kernel; smaller segments measured slower: each costs about 25 µs of
#: cipher set-up and calls, 4.0 ms at 2**16 words against 3.6 ms here for 10**6 draws).
SEGMENT_WORDS = 1 << 18
#: Draws of fewer words run in the calling thread only (at least two segments to share).
PARALLEL_WORDS = 1 << 19
_MAX_WORKERS = 4

Outcome = tuple[list[np.ndarray], list[np.ndarray]]


class _Scratch(threading.local):
    """Per thread: a segment's keystream buffer and the kernel's list of undecided words,
    kept between draws (made afresh they cost page faults: about 1 ms a draw of 10**6)."""

    def __init__(self) -> None:
        self.buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        found = self.buffers.get(size)
        if found is None:
            found = (np.empty(size, dtype=np.uint32), np.empty(size, dtype=np.int64))
            if size == SEGMENT_WORDS:  # the one size worth keeping
                self.buffers[size] = found
        return found


_scratch = _Scratch()


def _workers(count: int) -> int:
    if count < PARALLEL_WORDS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not available on this platform
        cpus = os.cpu_count() or 1
    return max(1, min(_MAX_WORKERS, cpus))


def _run_jobs(job: Callable[[Sequence[int]], Outcome], segments: int, count: int) -> Outcome:
    """``job`` over contiguous runs of the segments, the first in this thread, the others on
    the keystream's helper threads (the kernels release the GIL); outcomes in order."""
    workers = min(_workers(count), segments)
    if workers <= 1:
        return job(range(segments))
    per = -(-segments // workers)
    runs = [range(start, min(start + per, segments)) for start in range(0, segments, per)]
    pool = _helpers.get(len(runs) - 1)
    futures = [pool.submit(job, run) for run in runs[1:]]
    try:
        head = job(runs[0])
    finally:
        wait(futures)  # every helper is done with the output before this returns or raises
    outcomes = [head, *(future.result() for future in futures)]
    positions = [p for outcome in outcomes for p in outcome[0]]
    words = [w for outcome in outcomes for w in outcome[1]]
    return positions, words


def _guide_bits(entries: int) -> int:
    """Buckets of the 32-bit guide: 2 to 4 per table entry, 2**10 to 2**14 (8 to 128 KiB of
    guide, which stays in the cache with the table's busy middle). Fewer buckets sent more
    words to the binary search (1.5 % at σ² = 10**4 with 2**8) and measured slower."""
    return min(max(entries.bit_length() + 1, 10), 14)


def _interpolation_reach(
    table: np.ndarray, first: np.ndarray, count: np.ndarray, shift: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket, the least and greatest ``k(w) - e(w)`` over its words ``w``: ``k(w)`` the
    number of entries ``<= w`` (the exact index), ``e(w) = first + floor(r * count / 2**shift)``
    the interpolated one (``r`` the word's low bits). Both are step functions of ``w``, so
    their difference is constant between the points where either steps: the bucket's start
    (difference 0), the entries inside it, and the ``r`` where ``e`` steps,
    ``ceil(m * 2**shift / count)`` for ``m = 1 .. count - 1``; it is evaluated at each."""
    buckets = first.size
    size = 1 << shift
    inner = np.unique(table[(table & np.uint32(size - 1)) != 0])
    steps = np.maximum(count - 1, 0)
    owner = np.repeat(np.arange(buckets), steps)
    m = np.arange(owner.size) - np.repeat(np.cumsum(steps) - steps, steps) + 1
    step_r = (m * size + count[owner] - 1) // count[owner]
    points_b = np.concatenate([(inner >> np.uint32(shift)).astype(np.int64), owner])
    points_r = np.concatenate([inner.astype(np.int64) & (size - 1), step_r])
    words = ((points_b << shift) + points_r).astype(np.uint32)
    exact = np.searchsorted(table, words, side="right")
    differences = exact - (first[points_b] + ((points_r * count[points_b]) >> shift))
    least = np.zeros(buckets, dtype=np.int64)
    most = np.zeros(buckets, dtype=np.int64)
    np.minimum.at(least, points_b, differences)
    np.maximum.at(most, points_b, differences)
    return least, most


def _guide32_of(table64: np.ndarray, low: int) -> _Guide32:
    """The 32-bit lookup of the distribution whose 64-bit table is ``table64`` (unpadded)."""
    # floor(C(k) * 2**32) from k = low - 1 on: C(low - 1) < 2**-104 (0 for a Poisson at 0)
    top = np.append(np.uint32(0), (table64 >> np.uint64(32)).astype(np.uint32))
    start = int(np.searchsorted(top, 0, side="right")) - 1
    stop = int(np.searchsorted(top, _U32_MAX, side="left")) + 1
    table = top[start:stop]  # C(k) for the k that some 32-bit word can fall between
    if stop > top.size:  # C(high) > 1 - 2**-104: never
        raise AssertionError("a CDF table must end above 1 - 2**-32")
    bits = _guide_bits(table.size)
    shift = 32 - bits
    starts = (np.arange(1 << bits, dtype=np.uint64) << np.uint64(shift)).astype(np.uint32)
    first = np.searchsorted(table, starts, side="right").astype(np.int64)
    count = np.append(first[1:], table.size) - first
    least, most = _interpolation_reach(table, first, count, shift)
    near = most - least <= _WINDOW
    base = first + _WINDOW + np.where(near, least, 0)
    entries = ((base << 32) | count).astype(np.uint64)
    return _Guide32(
        table=np.concatenate(
            [
                np.zeros(_WINDOW, dtype=np.uint32),
                table,
                np.full(_WINDOW, _U32_MAX, dtype=np.uint32),
            ]
        ),
        guide=np.where(near, entries, ~entries),
        shift=shift,
        low=low - 1 + start - _WINDOW,
    )


def _build(masses_of: MassesOf) -> _Sampler:
    bits = _TABLE_PRECISION
    while True:
        masses = masses_of(bits, _TABLE_TAIL_BITS)
        table = _table_of(masses)
        if table is not None:
            break
        bits += 64
    array = np.array(table, dtype=np.uint64)
    return _Sampler(
        low=masses.low,
        table=np.append(array, np.uint64(_U64_MAX)),
        first=_guide32_of(array, masses.low),
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


def _target(add_to: Any, count: int) -> np.ndarray | None:
    """``add_to`` checked: None, or a writeable contiguous 1-D int64 array of ``count``."""
    if add_to is None:
        return None
    if not (
        isinstance(add_to, np.ndarray)
        and add_to.dtype == np.int64
        and add_to.ndim == 1
        and add_to.flags.c_contiguous
        and add_to.flags.writeable
    ):
        raise ConfigurationError(
            "add_to must be a writeable contiguous 1-D int64 array (or None for a new one)"
        )
    if add_to.size != count:
        raise ConfigurationError(f"add_to has {add_to.size} entries; count is {count}")
    return add_to


def _draw_into(sampler: _Sampler, source: Any, count: Any, add_to: Any) -> np.ndarray:
    count = _count(count)
    target = _target(add_to, count)
    stream = _as_stream(source)
    if target is None:
        return sampler.draw(stream, count)
    return sampler.draw(stream, count, target, 1)


def discrete_gaussian(
    source: RandomSource | NoiseStream,
    count: int,
    variance: float | Fraction,
    *,
    add_to: np.ndarray | None = None,
) -> np.ndarray:
    """``count`` independent draws of the discrete Gaussian ``N_Z(0, σ²)`` with
    ``σ² = variance`` (exactly: a float is read as the rational it is), as int64: a new
    array, or added in place to ``add_to`` (int64, ``count`` entries; no new array), which is
    returned.

    ``P[X = x] = exp(-x²/(2σ²)) / Σ_y exp(-y²/(2σ²))``; ``variance`` is the parameter σ²,
    which is at most the variance of the discrete distribution (Canonne et al., Cor. 9).
    """
    sampler = _gaussian_sampler(_as_fraction(variance, "variance", MIN_GAUSSIAN_VARIANCE))
    return _draw_into(sampler, source, count, add_to)


def poisson(
    source: RandomSource | NoiseStream,
    count: int,
    mean: float | Fraction,
    *,
    add_to: np.ndarray | None = None,
) -> np.ndarray:
    """``count`` independent draws of Poisson(``mean``), exactly, as int64 (``add_to`` as in
    :func:`discrete_gaussian`)."""
    sampler = _poisson_sampler(_as_fraction(mean, "mean", Fraction(0), low_open=True))
    return _draw_into(sampler, source, count, add_to)


def skellam(
    source: RandomSource | NoiseStream,
    count: int,
    mean: float | Fraction,
    *,
    add_to: np.ndarray | None = None,
) -> np.ndarray:
    """``count`` draws of the symmetric Skellam: Poisson(``mean``) - Poisson(``mean``),
    variance ``2 * mean``, as int64 (``add_to`` as in :func:`discrete_gaussian`). A sum of
    independent Skellams is a Skellam."""
    stream = _as_stream(source)
    sampler = _poisson_sampler(_as_fraction(mean, "mean", Fraction(0), low_open=True))
    out = _draw_into(sampler, stream, count, add_to)
    return sampler.draw(stream, out.size, out, -1)


def discrete_gaussian_cdf_table(variance: float | Fraction) -> tuple[int, np.ndarray]:
    """``(low, T)``: ``T[i] = floor(P[X <= low + i] * 2**64)`` of ``N_Z(0, variance)`` over
    the window the sampler tabulates (for tests and audits)."""
    sampler = _gaussian_sampler(_as_fraction(variance, "variance", MIN_GAUSSIAN_VARIANCE))
    return sampler.low, sampler.table[:-1].copy()
