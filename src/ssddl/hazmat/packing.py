"""Bit packing of ring words: ``b`` bits a word on the wire (``--bits``, issue 24).

Z_(2**b) is a quotient of the ring Z_(2**32) (and Z_(2**64)) the protocol computes in, so
keeping the low ``b`` bits of a word is the ring map x -> x mod 2**b: masks, shares and sums
computed in the larger ring stay masks, shares and sums in Z_(2**b) after packing.

Layout: word ``i``'s low ``b`` bits are bits ``[i*b, (i+1)*b)`` of a little-endian bit string
(bit ``k`` is bit ``k % 8`` of byte ``k // 8``), in ``ceil(n*b/8)`` bytes; the unused high bits
of the last byte are zero, and :func:`unpack_words` refuses them set (one encoding per vector).
Vectorised by periods: ``64 / gcd(b, 64)`` words fill ``b / gcd(b, 64)`` 64-bit lanes exactly,
so each word position of a period is one numpy column pass (at most 64), no per-word Python.
"""

from __future__ import annotations

import math
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


def _period(bits: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(words, lanes, placement) of one period of the layout: ``words`` words of ``bits``
    bits fill exactly ``lanes`` 64-bit lanes; word ``k`` of a period starts in lane
    ``placement[k][0]`` at bit ``placement[k][1]`` and runs ``placement[k][2]`` bits into the
    next lane (0: none)."""
    g = math.gcd(bits, 64)
    words, lanes = 64 // g, bits // g
    placement = []
    for k in range(words):
        lane, offset = divmod(k * bits, 64)
        placement.append((lane, offset, max(0, offset + bits - 64)))
    return words, lanes, placement


def _byte_group(bits: int) -> int:
    """The fewest words whose bits fill whole bytes, if they fit one 64-bit word (every
    multiple of 4 from 8 to 32): 0 otherwise."""
    group = 8 // math.gcd(bits, 8)
    return group if group * bits <= 64 else 0


def _blocks(w: np.ndarray, bits: int, per: int) -> np.ndarray:
    """``w``'s low ``bits`` bits as uint64, zero-padded to rows of ``per`` words."""
    rows = -(-w.size // per)
    flat = np.zeros(rows * per, dtype=np.uint64)
    flat[: w.size] = w
    flat &= np.uint64((1 << bits) - 1)
    return flat.reshape(rows, per)


def _pack_bytes(w: np.ndarray, bits: int, group: int) -> bytes:
    """The fast path: ``group`` words side by side in one uint64, its low bytes kept."""
    count, width = w.size, group * bits // 8
    block = _blocks(w, bits, group)
    rows = block.shape[0]
    joined = block[:, 0].copy()
    for k in range(1, group):
        joined |= block[:, k] << np.uint64(k * bits)
    raw = joined.astype("<u8", copy=False).view(np.uint8).reshape(rows, 8)[:, :width]
    return raw.tobytes()[: packed_size(count, bits)]


def _unpack_bytes(data: bytes | memoryview, count: int, bits: int, group: int) -> np.ndarray:
    width = group * bits // 8
    rows = -(-count // group)
    raw = np.zeros((rows, 8), dtype=np.uint8)
    flat = np.frombuffer(bytes(data) + bytes(rows * width - len(data)), dtype=np.uint8)
    raw[:, :width] = flat.reshape(rows, width)
    joined = raw.view("<u8").reshape(rows).astype(np.uint64)
    out = np.empty((rows, group), dtype=np.uint64)
    mask = np.uint64((1 << bits) - 1)
    for k in range(group):
        out[:, k] = (joined >> np.uint64(k * bits)) & mask
    return out.reshape(-1)[:count]


def pack_words(words: Any, bits: int) -> bytes:
    """The low ``bits`` bits of each unsigned word of ``words`` (uint32 or uint64), packed."""
    bits = _check_bits(bits)
    w = np.asarray(words)
    if w.ndim != 1 or w.dtype.kind != "u":
        raise ConfigurationError("words must be a 1-D unsigned integer array (ring words)")
    count = w.size
    group = _byte_group(bits)
    if group:
        return _pack_bytes(w, bits, group)
    per, lanes, placement = _period(bits)
    block = _blocks(w, bits, per)
    out = np.zeros((block.shape[0], lanes), dtype=np.uint64)
    for k, (lane, offset, spill) in enumerate(placement):  # at most 64 column passes
        out[:, lane] |= block[:, k] << np.uint64(offset)
        if spill:
            out[:, lane + 1] |= block[:, k] >> np.uint64(64 - offset)
    return out.astype("<u8", copy=False).tobytes()[: packed_size(count, bits)]


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
    group = _byte_group(bits)
    if group:
        return _unpack_bytes(data, count, bits, group).astype(dtype)
    per, lanes, placement = _period(bits)
    rows = -(-count // per)
    padded = bytes(data) + bytes(rows * lanes * 8 - len(data))
    block = np.frombuffer(padded, dtype="<u8").astype(np.uint64).reshape(rows, lanes)
    out = np.empty((rows, per), dtype=np.uint64)
    for k, (lane, offset, spill) in enumerate(placement):
        out[:, k] = block[:, lane] >> np.uint64(offset)
        if spill:
            out[:, k] |= block[:, lane + 1] << np.uint64(64 - offset)
    out &= np.uint64((1 << bits) - 1)
    return out.reshape(-1)[:count].astype(dtype)
