"""Randomness sources and uniform samplers."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat import (
    SHAMIR_PRIME,
    InsecureRandomWarning,
    InsecureSeededRandom,
    OsRandom,
    RandomSource,
    random_below,
    random_words,
    words_from_bytes,
)
from ssddl.hazmat.rand import ring_dtype

pytestmark = pytest.mark.filterwarnings("ignore::ssddl.hazmat.InsecureRandomWarning")

# Upper tail of chi-square: critical values far beyond p = 1e-6 for these degrees of freedom.
# The tests below use fixed seeds, so their statistic is one fixed number: they cannot flake,
# and a biased generator (e.g. one that never produces some value) fails them by a mile.
CHI2_LIMIT = {7: 60.0, 15: 80.0, 255: 420.0}


def seeded(label: str) -> InsecureSeededRandom:
    return InsecureSeededRandom(hashlib.sha256(label.encode()).digest())


def chi_square(counts: np.ndarray) -> float:
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


class FixedSource:
    """A RandomSource replaying given bytes (for edge cases of the samplers)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def random_bytes(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


# --- sources -------------------------------------------------------------------------------


def test_os_random_gives_requested_lengths_and_differs() -> None:
    source = OsRandom()
    assert isinstance(source, RandomSource)
    assert source.random_bytes(0) == b""
    first, second = source.random_bytes(32), source.random_bytes(32)
    assert len(first) == 32
    assert first != second


def test_insecure_seeded_random_warns_and_is_deterministic() -> None:
    seed = hashlib.sha256(b"x").digest()
    with pytest.warns(InsecureRandomWarning, match="predictable"):
        a = InsecureSeededRandom(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomWarning)
        b = InsecureSeededRandom(seed)
        c = InsecureSeededRandom(hashlib.sha256(b"y").digest())
        d = InsecureSeededRandom(seed)
    assert isinstance(a, RandomSource)
    assert a.random_bytes(10) + a.random_bytes(22) == b.random_bytes(32)
    assert c.random_bytes(32) != d.random_bytes(32)


def test_insecure_seeded_random_repr_hides_seed() -> None:
    seed = hashlib.sha256(b"secret seed").digest()
    text = repr(InsecureSeededRandom(seed))
    assert seed.hex() not in text
    assert "hidden" in text


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), "0" * 32, 12345, None])
def test_insecure_seeded_random_rejects_bad_seed(seed: object) -> None:
    with pytest.raises(ConfigurationError, match="seed"):
        InsecureSeededRandom(seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [-1, 1.5, "3", True])
def test_random_bytes_rejects_bad_count(n: object) -> None:
    with pytest.raises(ConfigurationError, match="n must be"):
        OsRandom().random_bytes(n)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="n must be"):
        seeded("n").random_bytes(n)  # type: ignore[arg-type]


# --- words_from_bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("ring_bits", [32, 64])
def test_words_from_bytes_top_and_bottom_values(ring_bits: int) -> None:
    width = ring_bits // 8
    top = words_from_bytes(b"\xff" * width * 3, ring_bits)
    assert top.dtype == ring_dtype(ring_bits)
    assert top.tolist() == [2**ring_bits - 1] * 3
    assert words_from_bytes(bytes(width), ring_bits).tolist() == [0]
    one = b"\x01" + bytes(width - 1)  # little-endian
    assert words_from_bytes(one, ring_bits).tolist() == [1]
    high = bytes(width - 1) + b"\x80"
    assert words_from_bytes(high, ring_bits).tolist() == [2 ** (ring_bits - 1)]


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=64).map(lambda b: b[: len(b) - len(b) % 8]))
def test_words_from_bytes_is_a_bijection(data: bytes) -> None:
    for ring_bits in (32, 64):
        words = words_from_bytes(data, ring_bits)
        assert words.size == len(data) // (ring_bits // 8)
        assert words.flags.writeable
        back = words.astype(words.dtype.newbyteorder("<")).tobytes()
        assert back == data


def test_words_from_bytes_errors() -> None:
    with pytest.raises(ConfigurationError, match="whole number of 4-byte words"):
        words_from_bytes(b"abc", 32)
    with pytest.raises(ConfigurationError, match="whole number of 8-byte words"):
        words_from_bytes(bytes(12), 64)
    for bits in (16, 128, 0, True):
        with pytest.raises(ConfigurationError, match="ring_bits must be 32 or 64"):
            words_from_bytes(bytes(8), bits)


# --- random_words --------------------------------------------------------------------------


@pytest.mark.parametrize("ring_bits", [32, 64])
def test_random_words_shape_dtype(ring_bits: int) -> None:
    words = random_words(OsRandom(), 17, ring_bits)
    assert words.shape == (17,)
    assert words.dtype == ring_dtype(ring_bits)
    assert random_words(OsRandom(), 0, ring_bits).shape == (0,)


@pytest.mark.parametrize("ring_bits", [32, 64])
def test_random_words_reach_the_top_value(ring_bits: int) -> None:
    source = FixedSource(b"\xff" * (ring_bits // 8) + bytes(ring_bits // 8))
    assert random_words(source, 2, ring_bits).tolist() == [2**ring_bits - 1, 0]


def test_random_words_byte_frequencies_are_uniform() -> None:
    words = random_words(seeded("uniform words"), 1 << 16, 32)
    counts = np.bincount(words.view(np.uint8), minlength=256)
    assert chi_square(counts) < CHI2_LIMIT[255]
    top_nibble = np.bincount((words >> np.uint32(28)).astype(np.int64), minlength=16)
    assert chi_square(top_nibble) < CHI2_LIMIT[15]


def test_random_words_errors() -> None:
    with pytest.raises(ConfigurationError, match="count"):
        random_words(OsRandom(), -1, 32)
    with pytest.raises(ConfigurationError, match="ring_bits"):
        random_words(OsRandom(), 1, 16)
    with pytest.raises(ConfigurationError, match="RandomSource"):
        random_words(object(), 1, 32)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="exactly the number of bytes"):
        random_words(FixedSource(bytes(3)), 1, 32)


# --- random_below --------------------------------------------------------------------------


@pytest.mark.parametrize("bound", [1, 2, 3, 7, 1000, 2**32, 2**32 + 1, SHAMIR_PRIME, 2**63, 2**64])
def test_random_below_in_range(bound: int) -> None:
    values = random_below(seeded(f"below {bound}"), 500, bound)
    assert values.dtype == np.uint64
    assert values.shape == (500,)
    assert all(0 <= int(v) < bound for v in values)


def test_random_below_is_uniform_for_a_non_power_of_two() -> None:
    values = random_below(seeded("below 7"), 70_000, 7)
    counts = np.bincount(values.astype(np.int64), minlength=7)
    assert counts.size == 7
    assert chi_square(counts) < CHI2_LIMIT[7] - 10  # df = 6


def test_random_below_rejects_instead_of_folding() -> None:
    # 8 bytes of 0xff masked to 3 bits is 7 >= bound 5: it must be dropped, not reduced.
    data = b"\xff" * 8 + (3).to_bytes(8, "little") + bytes(8 * 40)
    assert random_below(FixedSource(data), 1, 5).tolist() == [3]


def test_random_below_full_range_reaches_the_top() -> None:
    assert random_below(FixedSource(b"\xff" * 8), 1, 2**64).tolist() == [2**64 - 1]


@pytest.mark.parametrize("bound", [0, -3, 2**64 + 1])
def test_random_below_rejects_bad_bound(bound: int) -> None:
    with pytest.raises(ConfigurationError, match="bound"):
        random_below(OsRandom(), 1, bound)


def test_random_below_other_errors() -> None:
    with pytest.raises(ConfigurationError, match="count"):
        random_below(OsRandom(), -2, 5)
    with pytest.raises(ConfigurationError, match="bound"):
        random_below(OsRandom(), 2, 5.0)  # type: ignore[arg-type]
    assert random_below(OsRandom(), 0, 5).shape == (0,)


def test_os_random_repr() -> None:
    assert repr(OsRandom()) == "OsRandom()"


@pytest.mark.parametrize(
    ("rows", "count", "bound"),
    [
        (0, 5, 7),
        (1, 5, (1 << 61) - 1),
        (6, 5, (1 << 61) - 1),
        (3, 4, 1 << 64),
        (2, 9, 1),
        (4, 7, 10),
    ],
)
def test_random_below_rows_equals_successive_random_below_calls(rows, count, bound):
    from ssddl.hazmat.rand import random_below_rows

    label = f"{rows}/{count}/{bound}"
    batch = random_below_rows(seeded(label), rows, count, bound)
    one_by_one_source = seeded(label)
    one_by_one = [random_below(one_by_one_source, count, bound) for _ in range(rows)]
    assert batch.dtype == np.uint64 and batch.shape == (rows, count)
    for got, want in zip(batch, one_by_one, strict=True):
        assert got.dtype == np.uint64 and got.shape == (count,)
        assert got.tolist() == want.tolist()
        assert all(v < bound for v in got.tolist())


def test_random_below_rows_completes_a_row_with_too_few_candidates():
    from ssddl.hazmat.rand import random_below_rows

    class Fixed:
        """Every candidate of the first draw is rejected (>= 10 after masking to 4 bits)."""

        def __init__(self) -> None:
            self.calls = 0

        def random_bytes(self, n: int) -> bytes:
            self.calls += 1
            return (b"\x0f" + bytes(7)) * (n // 8) if self.calls == 1 else bytes(range(n))

    rows = random_below_rows(Fixed(), 2, 3, 10)
    assert rows.shape == (2, 3)
    assert all(int(v) < 10 for r in rows for v in r)
