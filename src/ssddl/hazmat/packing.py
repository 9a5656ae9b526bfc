"""Bit packing of ring words: ``b`` bits a word on the wire (``--bits``, issue 24).

Z_(2**b) is a quotient of the ring Z_(2**32) (and Z_(2**64)) the protocol computes in, so
keeping the low ``b`` bits of a word is the ring map x -> x mod 2**b: masks, shares and sums
computed in the larger ring stay masks, shares and sums in Z_(2**b) after packing.

Layout: word ``i``'s low ``b`` bits are bits ``[i*b, (i+1)*b)`` of a little-endian bit string
(bit ``k`` is bit ``k % 8`` of byte ``k // 8``), in ``ceil(n*b/8)`` bytes; the unused high bits
of the last byte are zero, and :func:`unpack_words` refuses them set (one encoding per vector).
The loops are compiled (:mod:`ssddl.hazmat._kernels`, numba, cached on disk): packing runs
one 64-bit accumulator over the words and writes whole 64-bit lanes; unpacking reads each
word from its one or two lanes. At ``b = 20``, 10**6 uint32 words pack in about 0.6 ms and
unpack in about 1 ms on the project machine (``benchmarks/bench_noise.py``), against 4 and
10 ms for the numpy column passes they replace.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.hazmat._checks import as_int

__all__ = ["MAX_PACK_BITS", "MIN_PACK_BITS", "pack_words", "packed_size", "unpack_words"]

MIN_PACK_BITS = 8
MAX_PACK_BITS = 32


def _check_bits(bits: Any) -> int:
    return as_int(bits, "bits", low=MIN_PACK_BITS, high=MAX_PACK_BITS + 1)


def packed_size(count: int, bits: int) -> int:
    """The bytes of ``count`` words packed at ``bits`` bits: ``ceil(count * bits / 8)``."""
    return -(-as_int(count, "count") * _check_bits(bits) // 8)


def _lanes(count: int, bits: int) -> int:
    """The 64-bit lanes that hold ``count`` words of ``bits`` bits."""
    return -(-count * bits // 64)


def pack_words(words: Any, bits: int) -> bytes:
    """The low ``bits`` bits of each unsigned word of ``words`` (uint32 or uint64), packed."""
    bits = _check_bits(bits)
    w = np.asarray(words)
    if w.ndim != 1 or w.dtype.kind != "u":
        raise ConfigurationError("words must be a 1-D unsigned integer array (ring words)")
    from ssddl.hazmat import _kernels

    native = np.ascontiguousarray(w, dtype=w.dtype.newbyteorder("="))  # what the kernel reads
    lanes = np.empty(_lanes(w.size, bits), dtype=np.uint64)
    _kernels.pack_lanes(native, bits, lanes)
    if sys.byteorder != "little":
        lanes = lanes.byteswap()
    return lanes.view(np.uint8)[: packed_size(w.size, bits)].tobytes()


def unpack_words(
    data: bytes | memoryview, count: int, bits: int, dtype: Any = np.uint32
) -> np.ndarray:
    """The inverse of :func:`pack_words`: ``count`` words in ``[0, 2**bits)`` of ``dtype``.

    Raises :class:`~ssddl.exceptions.MalformedMessage` unless ``data`` has exactly
    ``packed_size(count, bits)`` bytes with the unused high bits of its last byte zero."""
    bits = _check_bits(bits)
    count = as_int(count, "count")
    size = packed_size(count, bits)
    if len(data) != size:
        raise MalformedMessage(
            f"{count} words of {bits} bits take {size} bytes; the packed data has {len(data)}"
        )
    used = count * bits % 8
    if used and data[-1] >> used:
        raise MalformedMessage("the packed words set bits past the last word")
    from ssddl.hazmat import _kernels

    lanes = np.zeros(_lanes(count, bits), dtype=np.uint64)
    lanes.view(np.uint8)[:size] = np.frombuffer(data, dtype=np.uint8)
    if sys.byteorder != "little":
        lanes = lanes.byteswap()
    target = np.dtype(dtype)
    out = np.empty(count, dtype=target if target in _DIRECT else np.uint64)
    _kernels.unpack_lanes(lanes, bits, out)
    return out.astype(target, copy=False)


#: Output dtypes the unpacking kernel writes directly (any other is converted afterwards).
_DIRECT = (np.dtype(np.uint32), np.dtype(np.uint64))
