"""Bit packing of ring words (``ssddl.hazmat.packing``): round trip, the ring map, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.hazmat.packing import pack_words, packed_size, unpack_words

BITS = st.integers(min_value=8, max_value=32)
WORDS32 = hnp.arrays(np.uint32, st.integers(0, 300), elements=st.integers(0, 2**32 - 1))
WORDS64 = hnp.arrays(np.uint64, st.integers(0, 300), elements=st.integers(0, 2**64 - 1))


@pytest.fixture(autouse=True, scope="module")
def compiled_kernels() -> None:
    """Load (or compile, on a first run) the packing kernels outside Hypothesis's deadline."""
    for dtype in (np.uint32, np.uint64):
        words = np.arange(3, dtype=dtype)
        assert np.array_equal(unpack_words(pack_words(words, 20), 3, 20, dtype), words)


@given(words=WORDS32, bits=BITS)
def test_round_trip_is_the_ring_map(words: np.ndarray, bits: int) -> None:
    data = pack_words(words, bits)
    assert len(data) == packed_size(words.size, bits) == -(-words.size * bits // 8)
    back = unpack_words(data, words.size, bits)
    assert back.dtype == np.uint32
    assert np.array_equal(back, words & np.uint32((1 << bits) - 1))


@given(words=WORDS64, bits=BITS)
def test_uint64_words_keep_their_low_bits(words: np.ndarray, bits: int) -> None:
    back = unpack_words(pack_words(words, bits), words.size, bits, np.uint64)
    assert np.array_equal(back, words & np.uint64((1 << bits) - 1))


@given(a=WORDS32, bits=BITS)
def test_packing_commutes_with_the_sum(a: np.ndarray, bits: int) -> None:
    """(x + y) mod 2**32, packed, is the sum of the packed words mod 2**b: a quotient map."""
    b = a[::-1].copy()
    summed = unpack_words(pack_words(a + b, bits), a.size, bits).astype(np.uint64)
    parts = unpack_words(pack_words(a, bits), a.size, bits).astype(np.uint64) + unpack_words(
        pack_words(b, bits), a.size, bits
    )
    assert np.array_equal(summed, parts % (1 << bits))


def test_known_layout() -> None:
    """Little-endian bit order: word 0 in the low bits of byte 0."""
    assert pack_words(np.array([0xABC, 0x123], dtype=np.uint32), 12) == bytes([0xBC, 0x3A, 0x12])
    assert pack_words(np.array([1, 2, 3], dtype=np.uint32), 8) == b"\x01\x02\x03"
    assert pack_words(np.array([2**32 - 1], dtype=np.uint32), 32) == b"\xff" * 4
    assert pack_words(np.zeros(0, dtype=np.uint32), 20) == b""
    # 13 bits (no whole-byte group): word 1 starts at bit 13
    assert pack_words(np.array([1, 2], dtype=np.uint32), 13) == bytes([0x01, 0x40, 0, 0])
    assert pack_words(np.array([2**13 - 1] * 5, dtype=np.uint32), 13) == b"\xff" * 8 + b"\x01"


@given(words=WORDS32)
def test_every_width_agrees_with_a_bit_by_bit_packing(words: np.ndarray) -> None:
    for bits in range(8, 33):
        bit_list = [(int(v) >> i) & 1 for v in words for i in range(bits)]
        expected = np.packbits(np.array(bit_list, dtype=np.uint8), bitorder="little")
        assert pack_words(words, bits) == expected.tobytes()


def test_any_unsigned_layout_packs_the_same() -> None:
    """Big-endian, strided and narrow unsigned arrays pack as their values do."""
    values = np.arange(0, 3000, 7, dtype=np.uint32) * np.uint32(65537)
    expected = pack_words(values, 20)
    assert pack_words(values.astype(">u4"), 20) == expected
    assert pack_words(np.repeat(values, 2)[::2], 20) == expected
    small = np.arange(200, dtype=np.uint16)
    assert pack_words(small, 12) == pack_words(small.astype(np.uint32), 12)


def test_refusals() -> None:
    with pytest.raises(MalformedMessage, match="take 5 bytes"):
        unpack_words(b"\x00" * 4, 2, 20)
    with pytest.raises(MalformedMessage, match="past the last word"):
        unpack_words(b"\x00\x00\xf0", 1, 20)
    with pytest.raises(ConfigurationError, match="bits"):
        pack_words(np.zeros(3, dtype=np.uint32), 7)
    with pytest.raises(ConfigurationError, match="bits"):
        pack_words(np.zeros(3, dtype=np.uint32), 33)
    with pytest.raises(ConfigurationError, match="unsigned"):
        pack_words(np.zeros(3, dtype=np.int32), 20)
