"""Bit packing of ring words: ``b`` bits a word on the wire (``--bits``, issue 24).

Z_(2**b) is a quotient of the ring Z_(2**32) (and Z_(2**64)) the protocol computes in, so
keeping the low ``b`` bits of a word is the ring map x -> x mod 2**b: masks, shares and sums
computed in the larger ring stay masks, shares and sums in Z_(2**b) after packing.

Layout: word ``i``'s low ``b`` bits are bits ``[i*b, (i+1)*b)`` of a little-endian bit string
(bit ``k`` is bit ``k % 8`` of byte ``k // 8``), in ``ceil(n*b/8)`` bytes; the unused high bits
of the last byte are zero, and :func:`unpack_words` refuses them set (one encoding per vector).
Vectorised over 64-bit lanes: a handful of numpy passes, no per-word Python.
"""

from __future__ import annotations

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


def _layout(count: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lane, offset, spills) of each word: its 64-bit lane, its bit offset in that lane and
    whether it runs into the next lane."""
    pos = np.arange(count, dtype=np.uint64) * np.uint64(bits)
    lane = (pos >> np.uint64(6)).astype(np.intp)
    offset = pos & np.uint64(63)
    spills = offset > np.uint64(64 - bits)
    return lane, offset, spills


def pack_words(words: Any, bits: int) -> bytes:
    """The low ``bits`` bits of each unsigned word of ``words`` (uint32 or uint64), packed."""
    bits = _check_bits(bits)
    w = np.asarray(words)
    if w.ndim != 1 or w.dtype.kind != "u":
        raise ConfigurationError("words must be a 1-D unsigned integer array (ring words)")
    count = w.size
    if count == 0:
        return b""
    low = w.astype(np.uint64) & np.uint64((1 << bits) - 1)
    lane, offset, spills = _layout(count, bits)
    lanes = np.zeros(-(-count * bits // 64), dtype=np.uint64)
    starts = np.flatnonzero(np.diff(lane)) + 1
    # bits <= 64: every lane up to the last word's holds the start of a word, and the words
    # of one lane occupy disjoint bits, so their sum is their bitwise or
    lanes[: lane[-1] + 1] = np.add.reduceat(low << offset, np.concatenate(([0], starts)))
    spill = spills.nonzero()[0]
    lanes[lane[spill] + 1] |= low[spill] >> (np.uint64(64) - offset[spill])
    return lanes.astype("<u8", copy=False).tobytes()[: packed_size(count, bits)]


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
    if count == 0:
        return np.zeros(0, dtype=dtype)
    padded = bytes(data) + bytes(-len(data) % 8 + 8)  # one spare lane: no index past the end
    lanes = np.frombuffer(padded, dtype="<u8").astype(np.uint64)
    lane, offset, spills = _layout(count, bits)
    w = lanes[lane] >> offset
    spill = spills.nonzero()[0]
    w[spill] |= lanes[lane[spill] + 1] << (np.uint64(64) - offset[spill])
    w &= np.uint64((1 << bits) - 1)
    return w.astype(dtype)
