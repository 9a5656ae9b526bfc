"""Clip, rotate, round and wrap: the steps around the noise of distributed DP."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssddl.exceptions import ConfigurationError, NonFiniteError
from ssddl.hazmat.dp import (
    RoundingFailed,
    clip_l2,
    conditional_round,
    hadamard,
    padded_dimension,
    rotate,
    rotate_fixed,
    rotation_key,
    rotation_signs,
    rounded_norm_bound,
    unrotate,
    unrotate_fixed,
    unwrap,
    wrap,
    wrap_probability_bound,
)
from ssddl.hazmat.noise import NoiseStream, discrete_gaussian
from ssddl.hazmat.rand import InsecureSeededRandom

pytestmark = pytest.mark.filterwarnings("ignore::ssddl.hazmat.InsecureRandomWarning")

KEY = rotation_key(b"session-1", 3)


def stream(label: str) -> NoiseStream:
    return NoiseStream(InsecureSeededRandom(hashlib.sha256(label.encode()).digest()))


floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
vectors = hnp.arrays(np.float64, st.integers(0, 300), elements=floats)


@settings(deadline=None)
@given(vectors, st.binary(min_size=0, max_size=12), st.integers(0, 2**64 - 1))
def test_unrotate_inverts_rotate(x, session, round_number):
    key = rotation_key(session, round_number)
    y = rotate(x, key)
    assert y.size == padded_dimension(x.size)
    back = unrotate(y, key, x.size)
    scale = max(float(np.abs(x).max(initial=0.0)), 1.0)
    # float64 rounding only: log2(d) butterflies each way
    assert np.allclose(back, x, rtol=0, atol=1e-13 * scale * max(1, y.size.bit_length()))
    assert math.isclose(
        float(np.linalg.norm(y)), float(np.linalg.norm(x)), rel_tol=1e-12, abs_tol=1e-9
    )


@given(
    hnp.arrays(np.int64, st.sampled_from([1, 2, 4, 64, 256]), elements=st.integers(-(2**40), 2**40))
)
def test_the_hadamard_transform_is_exactly_its_own_inverse_times_d_on_integers(v):
    assert np.array_equal(hadamard(hadamard(v)), v * v.size)


def test_the_server_unrotates_the_integer_sum_to_the_sum_of_the_inputs():
    rng = np.random.default_rng(0)  # test data only; never for noise
    inputs = [rng.normal(size=100) for _ in range(5)]
    rotated = sum(np.rint(rotate(x * 1000, KEY)).astype(np.int64) for x in inputs)
    back = unrotate(rotated, KEY, 100) / 1000
    # each member's rounding moves the rotated vector by at most 1/2 per coordinate
    assert np.linalg.norm(back - sum(inputs)) <= 5 * 0.5 * math.sqrt(128) / 1000


def test_rotation_signs_are_balanced_public_and_differ_per_round():
    signs = rotation_signs(KEY, 1 << 16)
    assert set(np.unique(signs)) == {-1.0, 1.0}
    assert abs(signs.sum()) < 6 * 256  # six standard deviations of a fair ±1 sum
    assert np.array_equal(signs, rotation_signs(rotation_key(b"session-1", 3), 1 << 16))
    assert not np.array_equal(signs, rotation_signs(rotation_key(b"session-1", 4), 1 << 16))
    assert np.array_equal(rotation_signs(KEY, 10), signs[:10])


@given(vectors, st.floats(1e-3, 1e3))
def test_clip_l2_bounds_the_norm_and_keeps_short_vectors(x, clip):
    y = clip_l2(x, clip)
    norm = float(np.linalg.norm(x))
    assert float(np.linalg.norm(y)) <= clip * (1 + 1e-12)
    if norm <= clip:
        assert np.array_equal(y, x)
    else:
        assert np.allclose(y * norm / clip, x, rtol=1e-12, atol=1e-300)  # subnormals


def test_rounding_norm_bound_values():
    # beta = 0: the bound that always holds, c + sqrt(d)
    assert rounded_norm_bound(10.0, 100, 0.0) == 20.0
    c, d, beta = 100.0, 1024, math.exp(-0.5)
    squared = c * c + d / 4 + math.sqrt(2 * 0.5) * (c + math.sqrt(d) / 2)
    assert rounded_norm_bound(c, d, beta) == pytest.approx(math.sqrt(squared), rel=1e-15)
    assert rounded_norm_bound(c, d, beta) < c + math.sqrt(d)


@pytest.mark.parametrize("beta", [0.0, math.exp(-0.5), 1e-6])
def test_conditional_rounding_meets_the_bound_and_rounds_to_neighbours(beta):
    rng = np.random.default_rng(1)  # test data only
    x = rng.normal(size=1000)
    x *= 300 / np.linalg.norm(x)
    bound = rounded_norm_bound(300.0, x.size, beta)
    noise = stream(f"round/{beta}")
    total = np.zeros(x.size)
    for _ in range(200):
        z = conditional_round(x, bound, noise)
        assert z.dtype == np.int64
        assert int(np.dot(z, z)) <= bound * bound
        assert np.all((z == np.floor(x)) | (z == np.floor(x) + 1))
        total += z
    # (nearly) unbiased: the mean of 200 roundings is close to x in every coordinate
    assert np.abs(total / 200 - x).max() < 0.15


def test_conditional_rounding_refuses_an_input_beyond_the_bound():
    x = np.full(100, 10.5)
    with pytest.raises(RoundingFailed, match="norm bound"):
        conditional_round(x, 50.0, stream("refuse"), attempts=3)


def test_an_exact_bound_is_met_by_an_integer_vector():
    z = conditional_round(np.array([3.0, 4.0]), 5.0, stream("exact"))
    assert z.tolist() == [3, 4]


@given(
    hnp.arrays(np.int64, st.integers(0, 50), elements=st.integers(-(2**40), 2**40)),
    st.integers(2, 64),
)
def test_wrap_and_unwrap(values, bits):
    words = wrap(values, bits)
    assert words.dtype == np.uint64
    if bits < 64:
        assert np.all(words < np.uint64(1 << bits))
    back = unwrap(words, bits)
    half = 1 << (bits - 1)
    inside = (values >= -half) & (values < half)
    assert np.array_equal(back[inside], values[inside])
    # outside, the value comes back shifted by a multiple of 2**bits: a silent wrap
    assert all((int(b) - int(v)) % (1 << bits) == 0 for b, v in zip(back, values, strict=True))


def test_sums_of_wrapped_words_unwrap_to_the_integer_sum_and_wrap_beyond_the_range():
    bits = 8
    members = [np.array([100, -100, 63, 0]), np.array([27, -28, 1, -1])]
    total = sum(wrap(m, bits) for m in members)
    assert unwrap(total, bits).tolist() == [127, -128, 64, -1]
    one_more = total + wrap(np.array([1, -1, 0, 0]), bits)
    assert unwrap(one_more, bits).tolist() == [-128, 127, 64, -1]  # 128 and -129 wrapped
    # from the project's 32-bit ring: the same words modulo 2**32 unwrap the same
    ring = sum((m.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32) for m in members)
    assert unwrap(ring, bits).tolist() == [127, -128, 64, -1]


def test_the_wrap_bound_holds_where_wraps_happen_and_is_tiny_with_enough_bits():
    bits, dim, members, variance = 10, 4096, 4, 120.0**2
    samples = discrete_gaussian(InsecureSeededRandom(bytes(32)), dim * 50, members * variance)
    observed = float(np.mean(np.abs(samples) >= 2 ** (bits - 1) - members))
    per_coordinate = wrap_probability_bound(
        bits=bits,
        dim=1,
        signal_norm=0.0,
        members=members,
        noise="ddg",
        noise_variance=members * variance,
    )
    assert 0.0 < observed <= per_coordinate
    assert (
        wrap_probability_bound(
            bits=20,
            dim=2**20,
            signal_norm=1e4,
            members=100,
            noise="ddg",
            noise_variance=100 * 50.0**2,
        )
        < 1e-9
    )
    skellam = wrap_probability_bound(
        bits=20,
        dim=2**20,
        signal_norm=1e4,
        members=100,
        noise="skellam",
        noise_variance=100 * 50.0**2,
    )
    assert skellam < 1e-9
    assert (
        wrap_probability_bound(
            bits=4, dim=10, signal_norm=1e3, members=20, noise="ddg", noise_variance=1.0
        )
        == 1.0
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: clip_l2([1.0, float("nan")], 1.0), NonFiniteError, "NaN"),
        (lambda: clip_l2([1.0], 0.0), ConfigurationError, "clip must be a positive"),
        (lambda: rounded_norm_bound(1.0, 4, 1.0), ConfigurationError, "beta must be"),
        (lambda: wrap(np.array([1.5]), 8), ConfigurationError, "integer array"),
        (lambda: unwrap(np.array([1]), 8), ConfigurationError, "unsigned"),
        (lambda: wrap(np.array([1]), 1), ConfigurationError, "bits must be at least 2"),
        (lambda: unrotate(np.zeros(3), KEY, 3), ConfigurationError, "padded_dimension"),
        (lambda: hadamard(np.zeros(3)), ConfigurationError, "power of two"),
    ],
)
def test_bad_arguments_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()


@settings(deadline=None)
@given(vectors, st.integers(0, 2**64 - 1))
def test_the_fixed_length_rotation_keeps_the_length_and_norm_and_inverts(x, round_number):
    key = rotation_key(b"fixed", round_number)
    y = rotate_fixed(x, key)
    assert y.shape == x.shape
    scale = max(float(np.abs(x).max(initial=0.0)), 1.0)
    assert math.isclose(
        float(np.linalg.norm(y)), float(np.linalg.norm(x)), rel_tol=1e-12, abs_tol=1e-9
    )
    back = unrotate_fixed(y, key)
    assert np.allclose(back, x, rtol=0, atol=1e-12 * scale * max(1, x.size.bit_length()))


def test_the_fixed_length_rotation_flattens_a_spike_everywhere():
    x = np.zeros(1000)
    x[999] = 1.0  # in the last block only
    y = rotate_fixed(x, KEY)
    assert np.abs(y).max() <= 1 / math.sqrt(512) + 1e-12
    x = np.zeros(1000)
    x[0] = 1.0  # in the first block: spread over [0, 512), then partly rotated again
    y = rotate_fixed(x, KEY)
    assert np.abs(y).max() <= 1 / math.sqrt(512) + 1e-12
