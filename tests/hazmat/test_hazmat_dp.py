"""Clip, rotate, round and wrap: the steps around the noise of distributed DP."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

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


@pytest.fixture(autouse=True, scope="module")
def compiled_kernels() -> None:
    """Load (or compile, on a first run) the transform's kernels outside Hypothesis's deadline."""
    assert hadamard(np.array([1, 2])).tolist() == [3, -1]
    assert hadamard(np.array([1.0, 2.0])).tolist() == [3.0, -1.0]
    assert np.allclose(unrotate(rotate(np.array([1.0, 2.0]), KEY), KEY, 2), [1.0, 2.0])
    assert conditional_round(np.array([3.0, 4.0]), 5.0, stream("compile")).tolist() == [3, 4]


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


def reference_hadamard(values: np.ndarray) -> np.ndarray:
    """The numpy fast transform the compiled kernel replaced: level by level over the whole
    array, ``(a, b) -> (a + b, a - b)``. The kernel must give the same bits."""
    from ssddl.hazmat.dp import _hadamard_passes

    out = np.array(values, copy=True)
    with np.errstate(over="ignore", invalid="ignore"):  # huge inputs: inf and NaN, as the kernel
        _hadamard_passes(out)
    return out


def reference_rotate_fixed(x: np.ndarray, key: bytes, *, inverse: bool = False) -> np.ndarray:
    """rotate_fixed / unrotate_fixed as numpy passes over the reference transform."""
    y = np.array(x, dtype=np.float64)
    size = 1 << max(y.size.bit_length() - 1, 0)
    if y.size <= 1:
        return y  # nothing to rotate
    blocks = [(0, 0)] if size == y.size else [(0, 0), (y.size - size, 1)]
    for start, part in reversed(blocks) if inverse else blocks:
        signs = rotation_signs(key, size, part=part)
        span = y[start : start + size]
        if inverse:
            y[start : start + size] = reference_hadamard(span) / math.sqrt(size) * signs
        else:
            y[start : start + size] = reference_hadamard(span * signs) / math.sqrt(size)
    return y


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


#: Any finite float64 (sums may overflow to inf, and inf - inf to NaN: the same bits either way),
#: with zeros of both signs and subnormals among them.
any_float = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)
powers_of_two = st.one_of(st.just(0), st.integers(0, 13).map(lambda k: 1 << k))


@settings(deadline=None)
@given(
    st.one_of(
        powers_of_two.flatmap(lambda n: hnp.arrays(np.float64, n, elements=any_float)),
        powers_of_two.flatmap(lambda n: hnp.arrays(np.float64, n, elements=floats)),
        powers_of_two.flatmap(
            lambda n: hnp.arrays(np.int64, n, elements=st.integers(-(2**40), 2**40))
        ),
    )
)
def test_the_compiled_hadamard_gives_the_bits_of_the_numpy_transform(v):
    assert same_bits(hadamard(v), reference_hadamard(v))


@pytest.mark.parametrize("size", [1 << 16, 1 << 17, 1 << 19])
def test_the_compiled_hadamard_matches_the_numpy_transform_beyond_the_cache_spans(size):
    rng = np.random.default_rng(size)  # test data only
    floats_in = rng.normal(size=size) * rng.choice([1e-300, 1e-3, 1.0, 1e300], size)
    floats_in[rng.random(size) < 0.01] = -0.0
    ints_in = rng.integers(-(2**40), 2**40, size)
    assert same_bits(hadamard(floats_in), reference_hadamard(floats_in))
    assert same_bits(hadamard(ints_in), reference_hadamard(ints_in))
    # other dtypes take the numpy passes
    small = rng.integers(-100, 100, size, dtype=np.int32)
    assert same_bits(hadamard(small), reference_hadamard(small))


@settings(deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 3000), elements=floats), st.integers(0, 2**64 - 1))
def test_the_compiled_rotations_give_the_bits_of_the_numpy_passes(x, round_number):
    key = rotation_key(b"bits", round_number)
    assert same_bits(rotate_fixed(x, key), reference_rotate_fixed(x, key))
    assert same_bits(unrotate_fixed(x, key), reference_rotate_fixed(x, key, inverse=True))
    d = padded_dimension(x.size)
    padded = np.zeros(d)
    padded[: x.size] = x
    signs = rotation_signs(key, d)
    assert same_bits(rotate(x, key), reference_hadamard(padded * signs) / math.sqrt(d))
    back = reference_hadamard(padded) * signs / math.sqrt(d)
    assert same_bits(unrotate(padded, key, x.size), back[: x.size])


def test_the_compiled_rotations_match_the_numpy_passes_at_a_million_coordinates():
    rng = np.random.default_rng(6)  # test data only
    x = rng.normal(0, 1e-3, 10**6)
    assert same_bits(rotate_fixed(x, KEY), reference_rotate_fixed(x, KEY))
    y = rng.integers(-(2**20), 2**20, 10**6).astype(np.float64)  # a server's integer sum
    assert same_bits(unrotate_fixed(y, KEY), reference_rotate_fixed(y, KEY, inverse=True))


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


def reference_conditional_round(values, bound, noise, attempts):
    """The numpy conditional rounding the compiled pass replaced (None: no draw met the bound)."""
    y = np.asarray(values, dtype=np.float64)
    low = np.floor(y)
    fraction = y - low
    base = low.astype(np.int64)
    for _ in range(attempts):
        coins = (noise.words(y.size) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        z = base + (coins < fraction)
        if sum(int(v) * int(v) for v in z.tolist()) <= math.floor(bound * bound):
            return z
    return None


def rounds_like_the_reference(x, bound, label, attempts):
    """conditional_round and the reference, from the same stream: the same integers (or both
    fail), and the same keystream used (the next word of each stream is the same)."""
    ours, theirs = stream(label), stream(label)
    expected = reference_conditional_round(x, bound, theirs, attempts)
    if expected is None:
        with pytest.raises(RoundingFailed):
            conditional_round(x, bound, ours, attempts=attempts)
    else:
        assert same_bits(conditional_round(x, bound, ours, attempts=attempts), expected)
    assert ours.integer() == theirs.integer()


@settings(deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(0, 2000),
        elements=st.one_of(floats, st.floats(-3.0, 3.0), st.integers(-5, 5).map(float)),
    ),
    st.floats(0.5, 1.5),
    st.integers(1, 4),
)
def test_the_compiled_rounding_gives_the_integers_of_the_numpy_rounding(x, tightness, attempts):
    norm = float(np.linalg.norm(x))
    # tightness below 1 makes some draws (or all) miss the bound: the retries must match too
    bound = max(tightness * rounded_norm_bound(max(norm, 1e-9), max(x.size, 1), 0.5), 1e-9)
    rounds_like_the_reference(x, bound, f"hyp/{x.size}/{tightness}", attempts)


@pytest.mark.parametrize(
    "x",
    [
        np.random.default_rng(2).normal(0, 40, 10**6),  # test data only
        np.array([2.0**61 + 2.0**9, -(2.0**61), -0.25, 0.75]),  # int64 sums overflow: Python ints
        np.full(4, 3.2e9 + 0.5),  # one square alone is past 2**63
    ],
    ids=["million", "near-2**62", "squares-past-int64"],
)
def test_the_compiled_rounding_matches_the_numpy_rounding_on_large_inputs(x):
    norm = float(np.linalg.norm(x))
    rounds_like_the_reference(x, rounded_norm_bound(norm, x.size, 0.5), f"large/{x.size}", 3)


class ScriptedWords(NoiseStream):
    """A stream whose draws are given words (to pin the coin's edge cases)."""

    __slots__ = ("_script",)

    def __init__(self, *script: list[int]) -> None:
        super().__init__(InsecureSeededRandom(bytes(32)))
        self._script = [np.array(words, dtype=np.uint64) for words in script]

    def word_chunks(self, count: int, chunk: int = 2) -> Iterator[np.ndarray]:
        words = self._script.pop(0)
        assert words.size == count
        return iter(np.array_split(words, range(chunk, count, chunk)))  # chunks of 2


def test_the_coin_is_the_top_53_bits_and_rounds_up_only_strictly_below_the_fraction():
    x = np.array([2.5, 2.5, 3.0, -1.25, -1.25])
    half, low_bits = 1 << 63, (1 << 11) - 1
    three_quarters = 3 << 62
    words = [half | low_bits, half - (1 << 11), low_bits, three_quarters, three_quarters - 1]
    # coin 0.5 = fraction: down; 0.5 - 2**-53: up; coin 0 = fraction 0: down; 0.75 = 0.75:
    # down (-2); one below 0.75 in the 53 bits (the low 11 bits do not count): up (-1)
    z = conditional_round(x, 10.0, ScriptedWords(words))
    assert z.tolist() == [2, 3, 3, -2, -1]
    # a draw over the bound is drawn again with the next words
    retry = ScriptedWords([0, 0], [half, 0])
    assert conditional_round(np.array([2.5, 0.5]), 3.0, retry).tolist() == [2, 1]


def test_the_norm_check_stays_exact_where_an_int64_sum_would_wrap():
    """Four squares of about 1.02e19 sum to 4.1e19; wrapped in int64 they would be 4.1e18,
    below the bound's square 1e19: the rounding must still refuse every draw."""
    x = np.full(4, 3.2e9 + 0.5)
    with pytest.raises(RoundingFailed):
        conditional_round(x, 1e19**0.5, stream("wrap"), attempts=2)
    z = conditional_round(x, 1e10, stream("wrap"))
    assert set(z.tolist()) <= {3_200_000_000, 3_200_000_001}


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


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, -math.nan])
@pytest.mark.parametrize("where", [0, 777, 4095])
def test_every_step_refuses_a_non_finite_coordinate_anywhere(bad, where):
    x = np.linspace(-1.0, 1.0, 4096)
    x[where] = bad
    for call in (
        lambda v: clip_l2(v, 1.0),
        lambda v: rotate_fixed(v, KEY),
        lambda v: rotate(v, KEY),
        lambda v: conditional_round(v, 1e9, stream("finite")),
    ):
        for view in (x, x[::-1], x.astype(np.float32)):  # strided and converted inputs too
            with pytest.raises(NonFiniteError, match="NaN or inf"):
                call(view)
    x[where] = 1.7e308  # the largest finite values and subnormals pass
    x[where - 1] = 5e-324
    assert rotate_fixed(x, KEY).size == 4096


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
