"""Compiled loops (numba) for the noise sampler's table lookup, bit packing and the
Walsh-Hadamard transform of the DP rotation.

Imported lazily by :mod:`ssddl.hazmat.noise`, :mod:`ssddl.hazmat.packing` and
:mod:`ssddl.hazmat.dp` on first use, so importing the protocol does not import numba (about
0.25 s). Each function is compiled once per argument types and cached on disk (``cache=True``:
in ``__pycache__`` next to this file when that is writeable, else in the user's cache
directory, or under ``NUMBA_CACHE_DIR``), so a fresh process, such as each of Flower's
ClientApp processes, loads the machine code instead of compiling it again. Every loop
releases the GIL (``nogil=True``); indices are unsigned, so no negative-index wrap-around is
compiled in (it kept LLVM from vectorizing the transform: 3 ms against 1.4 ms for 2**19
float64). The results are bit for bit those of the numpy reference paths the tests compare
them with: integer work is exact, and the float work (the transform) does the same IEEE
operations on the same operands, with no fast-math flag that would let LLVM reassociate
them.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "all_finite",
    "hadamard_inplace",
    "invert32",
    "pack_lanes",
    "rotate_span",
    "round_with_coins",
    "unpack_lanes",
]

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)
_U = np.uint64
#: Entries read per word from the interpolated index (``noise._WINDOW``).
_WINDOW = 2


@_jit
def invert32(words, table, guide, shift, low, sign, out, slow):  # type: ignore[no-untyped-def]
    """``v = low + k`` with ``k`` the number of entries of ``table`` that are at most
    ``words[i]`` (``numpy.searchsorted(table, w, side="right")``), written to ``out[i]``
    (``sign`` 0), added to it (1) or subtracted from it (-1).

    The bucket ``b = w >> shift`` gives ``e = guide[b]``. If ``e < 2**63`` it is
    ``base << 32 | count``: ``k`` lies in ``[lo, lo + 2]`` for ``lo = base + (r * count >>
    shift)`` (``r`` the low bits of ``w``; checked for every word of the bucket when the guide
    was built), so ``k = lo + [table[lo] <= w] + [table[lo + 1] <= w]``. Otherwise ``~e`` is
    ``first << 32 | count`` and ``k`` is found by a binary search of ``[first, first +
    count]``. The positions ``i`` with ``table[k - 1] == w`` (the 32 bits do not decide) are
    written to ``slow`` and their ``out[i]`` is left to the caller (written as ``v`` with
    ``sign`` 0, untouched otherwise); their count is returned."""
    count = 0
    sh = _U(shift)
    low_bits = _U((1 << shift) - 1)
    m32 = _U(0xFFFFFFFF)
    for i in range(words.size):
        w = _U(words[i])
        e = guide[w >> sh]
        if e < _U(1 << 63):
            lo = (e >> _U(32)) + (((w & low_bits) * (e & m32)) >> sh)
            k = lo
            for j in range(_WINDOW):
                k += _U(table[lo + _U(j)] <= w)
        else:
            e = ~e
            lo = e >> _U(32)
            hi = lo + (e & m32)
            while lo < hi:
                mid = (lo + hi) >> _U(1)
                if table[mid] > w:
                    hi = mid
                else:
                    lo = mid + _U(1)
            k = lo
        value = np.int64(k) + low
        if table[k - _U(1)] == w:
            slow[count] = i
            count += 1
            if sign != 0:
                continue
        if sign == 0:
            out[i] = value
        elif sign > 0:
            out[i] += value
        else:
            out[i] -= value
    return count


@_jit
def pack_lanes(words, bits, lanes):  # type: ignore[no-untyped-def]
    """The low ``bits`` bits of each word, side by side from bit 0 of ``lanes[0]`` on
    (``lanes`` holds ``ceil(words.size * bits / 64)`` uint64; unused high bits end zero)."""
    mask = _U((1 << bits) - 1)
    acc = _U(0)
    filled = 0
    j = 0
    for i in range(words.size):
        v = _U(words[i]) & mask
        acc |= v << _U(filled)
        filled += bits
        if filled >= 64:
            lanes[j] = acc
            j += 1
            filled -= 64
            acc = v >> _U(bits - filled)  # the bits that did not fit (0 if none)
    if filled:
        lanes[j] = acc


@_jit
def unpack_lanes(lanes, bits, out):  # type: ignore[no-untyped-def]
    """The inverse of :func:`pack_lanes`: ``out[i]`` = bits ``[i*bits, (i+1)*bits)``."""
    mask = _U((1 << bits) - 1)
    for i in range(out.size):
        start = _U(i) * _U(bits)
        lane = start >> _U(6)
        offset = start & _U(63)
        v = lanes[lane] >> offset
        if offset + _U(bits) > _U(64):
            v |= lanes[lane + _U(1)] << (_U(64) - offset)
        out[i] = v & mask


# --- the Walsh-Hadamard transform ---------------------------------------------------------

#: Coordinates transformed through all their low levels while they stay in the L1 data cache
#: (2**11 float64: 16 KiB of the 32 KiB), then through the middle levels in the L2 cache
#: (2**16: 512 KiB of the 1 MiB); only the levels above go through memory, two at a time.
_L1_SPAN = 1 << 11
_L2_SPAN = 1 << 16


@_jit
def _sweep4(x, first, end, h):  # type: ignore[no-untyped-def]
    """Levels ``h`` and ``2h`` on ``x[first:end]`` in one sweep (a radix-4 step: the same
    additions and subtractions of the same operands as two radix-2 sweeps)."""
    for base in range(first, end, _U(4) * h):
        for j in range(base, base + h):
            a0 = x[j]
            a1 = x[j + h]
            a2 = x[j + _U(2) * h]
            a3 = x[j + _U(3) * h]
            s0 = a0 + a1
            d0 = a0 - a1
            s1 = a2 + a3
            d1 = a2 - a3
            x[j] = s0 + s1
            x[j + h] = d0 + d1
            x[j + _U(2) * h] = s0 - s1
            x[j + _U(3) * h] = d0 - d1


@_jit
def _sweep2(x, first, end, h):  # type: ignore[no-untyped-def]
    """Level ``h`` on ``x[first:end]``: ``(x_j, x_(j+h)) -> (x_j + x_(j+h), x_j - x_(j+h))``."""
    for base in range(first, end, _U(2) * h):
        for j in range(base, base + h):
            a = x[j]
            b = x[j + h]
            x[j] = a + b
            x[j + h] = a - b


@_jit
def _levels(x, start, stop, low, high):  # type: ignore[no-untyped-def]
    """The butterflies ``(a, b) -> (a + b, a - b)`` of the levels ``h = low, 2 low, ...,
    < high`` on ``x[start:stop]`` (a multiple of ``high`` long), two levels per sweep where
    two are left."""
    h = _U(low)
    top = _U(high)
    first = _U(start)
    end = _U(stop)
    while h < top:
        if _U(2) * h < top:
            _sweep4(x, first, end, h)
            h *= _U(4)
        else:
            _sweep2(x, first, end, h)
            h *= _U(2)


@_jit
def hadamard_inplace(x):  # type: ignore[no-untyped-def]
    """``x`` (float64 or int64, length a power of two) replaced by ``H x``, ``H`` the
    unnormalised Walsh-Hadamard matrix. The levels run as numpy's reference runs them, but
    the low ones are finished on one cache-sized span of ``x`` before the next span starts:
    every output is the same sequence of operations on the same operands as in the
    reference, so the bits are the same."""
    n = _U(x.size)
    span1 = min(n, _U(_L1_SPAN))
    span2 = min(n, _U(_L2_SPAN))
    for start2 in range(_U(0), n, span2):
        for start1 in range(start2, start2 + span2, span1):
            _levels(x, start1, start1 + span1, 1, span1)
        _levels(x, start2, start2 + span2, span1, span2)
    _levels(x, 0, n, span2, n)


@_jit
def rotate_span(x, sign_bits, divisor, forward):  # type: ignore[no-untyped-def]
    """``x`` (float64, length a power of two) replaced by ``H (x * s) / divisor`` (``forward``)
    or by ``(H x / divisor) * s``, with ``s_i = 1 - 2 * sign_bits[i]`` (uint8 0 or 1, one a
    coordinate: read in order, which vectorizes): the same operations in the same order as
    numpy's ``hadamard(x * s) / divisor`` and ``hadamard(x) / divisor * s`` (so the same
    bits). The sign and the division are passes of their own (fused into the transform's
    sweeps they saved about 0.1 ms of 1.6 at 2**19 and took 3 s more to compile)."""
    n = _U(x.size)
    if forward:
        for i in range(n):
            x[i] = x[i] * (1.0 - 2.0 * np.float64(sign_bits[i]))
    hadamard_inplace(x)
    if forward:
        for i in range(n):
            x[i] = x[i] / divisor
    else:
        for i in range(n):
            x[i] = (x[i] / divisor) * (1.0 - 2.0 * np.float64(sign_bits[i]))


# --- conditional randomized rounding ------------------------------------------------------


@_jit
def round_with_coins(values, words, out):  # type: ignore[no-untyped-def]
    """``out[i] = floor(v) + [c < v - floor(v)]`` for ``v = values[i]`` (float64, ``|v| <
    2**62``) and the 53-bit coin ``c = (words[i] >> 11) * 2**-53`` (exact in float64): the
    operations of numpy's ``base + (coins < fraction)`` in ``conditional_round``. Returns
    ``sum(out**2)`` in int64, which is exact only when no term or partial sum overflows
    (the caller checks ``(floor(max|v|) + 1)**2 * size < 2**63`` first)."""
    total = np.int64(0)
    for i in range(_U(values.size)):
        v = values[i]
        low = np.floor(v)
        coin = np.float64(_U(words[i]) >> _U(11)) * 1.1102230246251565e-16  # 2**-53
        z = np.int64(low) + np.int64(coin < v - low)
        out[i] = z
        total += z * z
    return total


@_jit
def all_finite(bits):  # type: ignore[no-untyped-def]
    """Whether every float64 whose bits are the uint64 array ``bits`` is finite (its exponent
    field is not all ones): one integer pass, no temporary."""
    exponent = _U(0x7FF0000000000000)
    found = _U(0)
    for i in range(_U(bits.size)):
        found |= _U((bits[i] & exponent) == exponent)
    return found == _U(0)
