"""Compiled loops (numba) for the noise sampler's table lookup and for bit packing.

Imported lazily by :mod:`ssddl.hazmat.noise` and :mod:`ssddl.hazmat.packing` on first use, so
importing the protocol does not import numba (about 0.25 s). Each function is compiled once
per argument types and cached on disk (``cache=True``: in ``__pycache__`` next to this file
when that is writeable, else in the user's cache directory, or under ``NUMBA_CACHE_DIR``), so
a fresh process, such as each of Flower's ClientApp processes, loads the machine code instead
of compiling it again. Every loop releases the GIL (``nogil=True``) and does integer work
only; indices are unsigned, so no negative-index wrap-around is compiled in. The results are
bit for bit those of the numpy reference paths the tests compare them with.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["invert32", "pack_lanes", "unpack_lanes"]

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
