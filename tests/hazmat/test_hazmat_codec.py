"""Fixed-point codec: configuration, round trip within the stated bound, ring arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssddl.exceptions import ConfigurationError, NonFiniteError, ShareError
from ssddl.hazmat import FixedPoint, decode, encode, ring_add, ring_sub, ring_sum
from ssddl.hazmat.sharing import SHAMIR_PRIME

CODECS = [
    FixedPoint(),
    FixedPoint(ring_bits=32, frac_bits=16, clip=100.0),
    FixedPoint(ring_bits=32, frac_bits=0, clip=1000.0),
    FixedPoint(ring_bits=64, frac_bits=40, clip=4.0),
    FixedPoint(ring_bits=64, frac_bits=60, clip=3.5),  # y close to 2**63: the int64 path
    FixedPoint(ring_bits=64, frac_bits=24, clip=1e6),
]

floats = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False)
vectors = hnp.arrays(np.float64, st.integers(0, 12), elements=floats)


def exact_signed(words: np.ndarray, codec: FixedPoint) -> list[int]:
    half = codec.modulus // 2
    return [int(w) - codec.modulus if int(w) >= half else int(w) for w in words.reshape(-1)]


# --- configuration -------------------------------------------------------------------------


def test_defaults_and_properties() -> None:
    codec = FixedPoint()
    assert (codec.ring_bits, codec.frac_bits, codec.clip) == (32, 20, 4.0)
    assert codec.modulus == 2**32
    assert codec.dtype == np.dtype(np.uint32)
    assert codec.scale == 2.0**20
    wide = FixedPoint(ring_bits=64, frac_bits=30)
    assert wide.modulus == 2**64
    assert wide.dtype == np.dtype(np.uint64)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ring_bits": 16}, "ring_bits"),
        ({"ring_bits": 128}, "ring_bits"),
        ({"ring_bits": True}, "ring_bits"),
        ({"ring_bits": "32"}, "ring_bits"),
        ({"frac_bits": -1}, "frac_bits"),
        ({"frac_bits": 31}, "frac_bits"),
        ({"ring_bits": 64, "frac_bits": 63}, "frac_bits"),
        ({"frac_bits": 2.5}, "frac_bits"),
        ({"frac_bits": False}, "frac_bits"),
        ({"clip": 0.0}, "clip"),
        ({"clip": -1.0}, "clip"),
        ({"clip": math.nan}, "clip"),
        ({"clip": math.inf}, "clip"),
        ({"clip": "4"}, "clip"),
        ({"clip": True}, "clip"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        FixedPoint(**kwargs)  # type: ignore[arg-type]


def test_a_single_clipped_value_must_fit() -> None:
    with pytest.raises(ConfigurationError, match="cannot hold even one"):
        FixedPoint(ring_bits=32, frac_bits=29, clip=4.0)  # 4 * 2**29 = 2**31 = Q/2
    FixedPoint(ring_bits=32, frac_bits=28, clip=4.0)


def test_check_capacity_boundary() -> None:
    codec = FixedPoint(ring_bits=32, frac_bits=20, clip=4.0)  # C * 2**f = 2**22
    codec.check_capacity(2**9 - 1)  # 2**31 - 2**22 < 2**31
    with pytest.raises(ConfigurationError, match="ring_bits=64") as info:
        codec.check_capacity(2**9)  # == Q/2
    message = str(info.value)
    for name in ("summands", "clip", "frac_bits", "modulus"):
        assert name in message
    with pytest.raises(ConfigurationError, match="capacity"):
        codec.check_capacity(100, weight_bound=10.0)
    codec.check_capacity(100, weight_bound=0.5)


def test_check_capacity_for_the_shamir_field() -> None:
    codec = FixedPoint(ring_bits=64, frac_bits=40, clip=4.0)  # 2**42 per summand
    codec.check_capacity(2**18)  # 2**60 >= Q/2? no: Q/2 = 2**63
    with pytest.raises(ConfigurationError, match="2305843009213693951"):
        codec.check_capacity(2**18, modulus=SHAMIR_PRIME)  # 2**60 >= p/2
    codec.check_capacity(2**18 - 1, modulus=SHAMIR_PRIME)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"summands": 0}, "summands"),
        ({"summands": -3}, "summands"),
        ({"summands": 2.0}, "summands"),
        ({"summands": True}, "summands"),
        ({"summands": 2, "weight_bound": 0.0}, "weight_bound"),
        ({"summands": 2, "weight_bound": math.nan}, "weight_bound"),
        ({"summands": 2, "weight_bound": "1"}, "weight_bound"),
        ({"summands": 2, "modulus": 1}, "modulus"),
        ({"summands": 2, "modulus": 2.0**32}, "modulus"),
    ],
)
def test_check_capacity_errors(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        FixedPoint().check_capacity(**kwargs)  # type: ignore[arg-type]


def test_decode_error_bound_values() -> None:
    codec = FixedPoint(frac_bits=20)
    assert codec.decode_error_bound(1, stochastic=False) == 2.0**-21
    assert codec.decode_error_bound(10, stochastic=True) == 10 * 2.0**-20
    big = FixedPoint(ring_bits=64, frac_bits=60, clip=3.5)
    # the integer sum can exceed 2**53: the float64 conversion term is added
    assert big.decode_error_bound(1, stochastic=False) > 2.0**-61
    with pytest.raises(ConfigurationError, match="summands"):
        codec.decode_error_bound(0, stochastic=False)


# --- encode / decode -----------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@pytest.mark.parametrize("stochastic", [False, True])
@settings(max_examples=80, deadline=None)
@given(values=vectors, seed=st.integers(0, 2**32 - 1))
def test_round_trip_within_bound(
    codec: FixedPoint, stochastic: bool, values: np.ndarray, seed: int
) -> None:
    rng = np.random.default_rng(seed) if stochastic else None
    words = encode(values, codec, rng=rng)
    assert words.dtype == codec.dtype
    assert words.shape == values.shape
    decoded = decode(words, codec)
    assert decoded.dtype == np.float64
    clipped = np.clip(values, -codec.clip, codec.clip)
    bound = codec.decode_error_bound(1, stochastic=stochastic)
    assert np.all(np.abs(decoded - clipped) <= bound)


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), summands=st.integers(1, 6), length=st.integers(0, 5))
def test_sum_of_encodings_decodes_to_the_sum(
    codec: FixedPoint, data: st.DataObject, summands: int, length: int
) -> None:
    assume(summands * codec.clip * codec.scale < codec.modulus / 2)
    stochastic = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 1000))) if stochastic else None
    inputs = [data.draw(hnp.arrays(np.float64, length, elements=floats)) for _ in range(summands)]
    total = ring_sum([encode(x, codec, rng=rng) for x in inputs])
    decoded = decode(total, codec)
    bound = codec.decode_error_bound(summands, stochastic=stochastic)
    for index in range(length):
        exact = sum(Fraction(float(np.clip(x[index], -codec.clip, codec.clip))) for x in inputs)
        assert abs(Fraction(float(decoded[index])) - exact) <= Fraction(bound)


@pytest.mark.parametrize("codec", CODECS, ids=repr)
def test_nearest_encoding_is_exact_round_half_even(codec: FixedPoint) -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.uniform(-codec.clip, codec.clip, 200),
            [codec.clip, -codec.clip, 0.5 / codec.scale, 1.5 / codec.scale, -2.5 / codec.scale],
            np.nextafter([codec.clip, -codec.clip], 0.0),
        ]
    )
    words = encode(values, codec)
    expected = [round(Fraction(float(v)) * (1 << codec.frac_bits)) for v in values]
    assert exact_signed(words, codec) == expected


def test_ring_64_near_the_top_does_not_overflow() -> None:
    codec = FixedPoint(ring_bits=64, frac_bits=60, clip=7.99)  # 7.99 * 2**60 < 2**63
    top = np.array([7.99, -7.99, 1e300, -1e300])
    for rng in (None, np.random.default_rng(1)):
        signed = exact_signed(encode(top, codec, rng=rng), codec)
        limit = int(Fraction(7.99) * 2**60)
        assert signed == [limit, -limit, limit, -limit]


def test_ring_32_wraps_negative_values_properly() -> None:
    codec = FixedPoint(ring_bits=32, frac_bits=0, clip=1000.0)
    words = encode(np.array([-1.0, -1000.0, 1000.0, 0.0]), codec)
    assert words.tolist() == [2**32 - 1, 2**32 - 1000, 1000, 0]


def test_stochastic_rounding_is_unbiased_and_bounded() -> None:
    codec = FixedPoint(ring_bits=32, frac_bits=4, clip=4.0)
    value = 0.3 / 16  # 0.3 of one unit
    rng = np.random.default_rng(2024)
    words = encode(np.full(40_000, value), codec, rng=rng)
    units = np.array(exact_signed(words, codec))
    assert set(units.tolist()) <= {0, 1}
    assert abs(units.mean() - 0.3) < 0.01  # fixed seed: a fixed number, roughly 0.3 +- 0.0023


def test_encode_accepts_float32_ints_and_keeps_shape() -> None:
    codec = FixedPoint(ring_bits=32, frac_bits=8, clip=10.0)
    as32 = encode(np.array([[1.5, -2.25]], dtype=np.float32), codec)
    assert as32.shape == (1, 2)
    assert decode(as32, codec).tolist() == [[1.5, -2.25]]
    assert decode(encode(np.array([3, -4]), codec), codec).tolist() == [3.0, -4.0]
    scalar = encode(np.float64(1.25), codec)
    assert scalar.shape == ()
    assert float(decode(scalar, codec)) == 1.25
    assert encode(np.zeros((0, 3)), codec).shape == (0, 3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_raise_without_showing_values(bad: float) -> None:
    values = np.array([0.123456789, 1.5, bad, bad, 2.0])
    with pytest.raises(NonFiniteError) as info:
        encode(values, FixedPoint())
    message = str(info.value)
    assert "2 non-finite" in message
    assert "(2,)" in message  # first index
    assert "0.123456789" not in message
    assert "1.5" not in message


def test_non_finite_in_stochastic_mode_and_2d() -> None:
    values = np.zeros((3, 4))
    values[2, 1] = math.nan
    with pytest.raises(NonFiniteError, match=r"\(2, 1\)"):
        encode(values, FixedPoint(), rng=np.random.default_rng(0))


def test_encode_errors() -> None:
    with pytest.raises(ConfigurationError, match="real"):
        encode(np.array([1 + 2j]), FixedPoint())
    with pytest.raises(ConfigurationError, match="real"):
        encode(np.array(["a"]), FixedPoint())
    with pytest.raises(ConfigurationError, match="codec"):
        encode(np.zeros(2), "codec")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="rng"):
        encode(np.zeros(2), FixedPoint(), rng=np.random.RandomState(0))  # type: ignore[arg-type]


def test_decode_errors() -> None:
    with pytest.raises(ShareError, match="dtype uint64 but the codec's ring words are uint32"):
        decode(np.zeros(2, dtype=np.uint64), FixedPoint())
    with pytest.raises(ShareError, match="numpy array"):
        decode([1, 2], FixedPoint())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="codec"):
        decode(np.zeros(2, dtype=np.uint32), None)  # type: ignore[arg-type]


def test_decode_is_signed() -> None:
    codec = FixedPoint(ring_bits=32, frac_bits=1, clip=4.0)
    words = np.array([0, 1, 2**31 - 1, 2**31, 2**32 - 1], dtype=np.uint32)
    assert decode(words, codec).tolist() == [0.0, 0.5, (2**31 - 1) / 2, -(2**31) / 2, -0.5]


# --- ring arithmetic -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_ring_arithmetic_wraps(dtype: type) -> None:
    top = np.iinfo(dtype).max
    a = np.array([top, 5, 0], dtype=dtype)
    b = np.array([2, 7, 1], dtype=dtype)
    assert ring_add(a, b).tolist() == [1, 12, 1]
    assert ring_sub(b, a).tolist() == [3, 2, 1]
    assert ring_sub(np.array([1], dtype=dtype), np.array([3], dtype=dtype)).tolist() == [top - 1]
    assert ring_sum([a, b, b]).tolist() == [3, 19, 2]
    assert ring_sum([a]).tolist() == a.tolist()
    assert ring_sum([a]) is not a
    zero_d = np.array(top, dtype=dtype)
    assert ring_add(zero_d, np.array(1, dtype=dtype)).shape == ()


def test_ring_arithmetic_errors() -> None:
    a32 = np.zeros(3, dtype=np.uint32)
    a64 = np.zeros(3, dtype=np.uint64)
    with pytest.raises(ShareError, match="dtype"):
        ring_add(a32, a64)
    with pytest.raises(ShareError, match="shape"):
        ring_sub(a32, np.zeros(4, dtype=np.uint32))
    with pytest.raises(ShareError, match="uint32 or uint64"):
        ring_add(np.zeros(3, dtype=np.int32), a32)
    with pytest.raises(ShareError, match="numpy array"):
        ring_add([0, 0, 0], a32)  # type: ignore[arg-type]
    with pytest.raises(ShareError, match="at least one"):
        ring_sum([])
    with pytest.raises(ShareError, match="sequence"):
        ring_sum(a32)  # type: ignore[arg-type]
    with pytest.raises(ShareError, match=r"arrays\[2\]"):
        ring_sum([a32, a32, a64])


@pytest.mark.parametrize("ring_bits", [32, 64])
@pytest.mark.parametrize("stochastic", [False, True])
def test_encode_into_out_gives_the_same_words(ring_bits, stochastic):
    codec = FixedPoint(ring_bits=ring_bits, frac_bits=16, clip=3.0)
    values = np.linspace(-5.0, 5.0, 101)
    rng = (lambda: np.random.default_rng(7)) if stochastic else (lambda: None)
    expected = encode(values, codec, rng=rng())
    out = np.full(101, 12345, dtype=codec.dtype)
    assert encode(values, codec, rng=rng(), out=out) is out
    assert np.array_equal(out, expected)
    with pytest.raises(ShareError, match="out must be"):
        encode(values, codec, out=np.empty(100, dtype=codec.dtype))
    with pytest.raises(ShareError, match="out must be"):
        encode(values, codec, out=np.empty(101, dtype=np.float64))


@pytest.mark.filterwarnings("error")
def test_finite_values_whose_sum_overflows_encode_and_any_inf_or_nan_is_refused():
    codec = FixedPoint(32, 16, 2.0)
    huge = np.array([1.7e308, 1.7e308, -3.0], dtype=np.float64)
    assert decode(encode(huge, codec), codec).tolist() == [2.0, 2.0, -2.0]
    for bad in ([1.0, np.inf], [np.nan, 0.0], [-np.inf, np.inf], [1.7e308, 1.7e308, np.nan]):
        with pytest.raises(NonFiniteError):
            encode(np.array(bad), codec)
