"""Additive and Shamir sharing, field arithmetic, ring <-> field, mask cancellation."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ssddl.hazmat.sharing as sharing_module
from ssddl.exceptions import ConfigurationError, ShareError
from ssddl.hazmat import (
    SHAMIR_PRIME,
    FixedPoint,
    ForwardSecurePRNG,
    InsecureSeededRandom,
    OsRandom,
    accumulate_keystream,
    additive_reconstruct,
    additive_split,
    derive_nonce,
    encode,
    field_add,
    field_from_signed,
    field_mul,
    field_sub,
    field_to_ring,
    field_to_signed,
    lagrange_coefficients_at_zero,
    random_below,
    ring_sum,
    ring_to_field,
    shamir_reconstruct,
    shamir_reconstruct_each,
    shamir_split,
)

pytestmark = pytest.mark.filterwarnings("ignore::ssddl.hazmat.InsecureRandomWarning")

P = SHAMIR_PRIME
EDGE = [0, 1, 2, 3, P - 1, P - 2, P // 2, P // 2 + 1, 2**31 - 1, 2**31, 2**30, 2**60, 2**61 - 2]
field_ints = st.one_of(st.sampled_from(EDGE), st.integers(0, P - 1))


def seeded(label: str) -> InsecureSeededRandom:
    return InsecureSeededRandom(hashlib.sha256(label.encode()).digest())


def field_array(values: Sequence[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


# --- additive ------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    ring_bits=st.sampled_from([32, 64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=6),
    n=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_additive_split_reconstructs(
    ring_bits: int, shape: tuple[int, ...], n: int, seed: int
) -> None:
    dtype = np.uint32 if ring_bits == 32 else np.uint64
    secret = np.random.default_rng(seed).integers(0, 2**ring_bits, shape, dtype=dtype)
    shares = additive_split(secret, n, seeded(f"additive {seed}"))
    assert len(shares) == n
    assert all(s.dtype == secret.dtype and s.shape == secret.shape for s in shares)
    assert np.array_equal(additive_reconstruct(shares), secret)
    if n > 1 and secret.size >= 4:
        assert not np.array_equal(shares[0], secret)  # a share is not the secret


def test_additive_one_share_is_a_copy() -> None:
    secret = np.arange(5, dtype=np.uint32)
    (only,) = additive_split(secret, 1, OsRandom())
    assert np.array_equal(only, secret) and only is not secret


def test_additive_errors() -> None:
    with pytest.raises(ShareError, match="ring words"):
        additive_split(np.zeros(3, dtype=np.int64), 2, OsRandom())
    with pytest.raises(ShareError, match="ring words"):
        additive_split([1, 2], 2, OsRandom())  # type: ignore[arg-type]
    for n in (0, -1):
        with pytest.raises(ShareError, match="n must be at least 1"):
            additive_split(np.zeros(3, dtype=np.uint32), n, OsRandom())
    for n in (2.0, True):
        with pytest.raises(ShareError, match="n must be an int"):
            additive_split(np.zeros(3, dtype=np.uint32), n, OsRandom())  # type: ignore[arg-type]
    with pytest.raises(ShareError):
        additive_reconstruct([])
    with pytest.raises(ShareError):
        additive_reconstruct([np.zeros(3, np.uint32), np.zeros(3, np.uint64)])


# --- pairwise mask cancellation (the prg mode) ---------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(2, 5),
    length=st.integers(0, 40),
    ring_bits=st.sampled_from([32, 64]),
    round_number=st.integers(0, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_pairwise_masks_cancel(
    n: int, length: int, ring_bits: int, round_number: int, seed: int
) -> None:
    dtype = np.uint32 if ring_bits == 32 else np.uint64
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 2**ring_bits, length, dtype=dtype) for _ in range(n)]
    pair_seeds = {
        (i, j): hashlib.sha256(f"{seed} {i} {j}".encode()).digest()
        for i in range(n)
        for j in range(i + 1, n)
    }
    uploads = []
    for i in range(n):
        upload = inputs[i].copy()
        for j in range(n):
            if i == j:
                continue
            low, high = min(i, j), max(i, j)
            key = ForwardSecurePRNG(pair_seeds[(low, high)]).take_round_key(round_number)
            nonce = derive_nonce(b"cancel", round_number, low, high, "mask")
            # m_ij for i < j: member i adds it, member j subtracts it
            accumulate_keystream(upload, key, nonce, sign=1 if i < j else -1, chunk_words=7)
        uploads.append(upload)
    if length:
        assert not np.array_equal(uploads[0], inputs[0])
    assert np.array_equal(ring_sum(uploads), ring_sum(inputs))


# --- field arithmetic ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(a=st.lists(field_ints, max_size=20), b=field_ints, data=st.data())
def test_field_ops_match_python_ints(a: list[int], b: int, data: st.DataObject) -> None:
    other = data.draw(st.lists(field_ints, min_size=len(a), max_size=len(a)))
    av, ov = field_array(a), field_array(other)
    assert field_add(av, ov).tolist() == [(x + y) % P for x, y in zip(a, other, strict=True)]
    assert field_sub(av, ov).tolist() == [(x - y) % P for x, y in zip(a, other, strict=True)]
    assert field_mul(av, ov).tolist() == [(x * y) % P for x, y in zip(a, other, strict=True)]
    assert field_add(av, b).tolist() == [(x + b) % P for x in a]
    assert field_sub(av, b).tolist() == [(x - b) % P for x in a]
    assert field_mul(av, b).tolist() == [(x * b) % P for x in a]


def test_field_mul_all_edge_pairs() -> None:
    a = field_array([x for x in EDGE for _ in EDGE])
    b = field_array([y for _ in EDGE for y in EDGE])
    assert field_mul(a, b).tolist() == [(x * y) % P for x in EDGE for y in EDGE]
    for scalar in EDGE:
        assert field_mul(a, scalar).tolist() == [(x * scalar) % P for x in a.tolist()]
    block = a.copy()
    sharing_module._mul_scalar_inplace(block, P - 1, sharing_module._Scratch(block.size))
    assert block.tolist() == [(x * (P - 1)) % P for x in a.tolist()]


def test_field_ops_keep_shapes_and_accept_0d() -> None:
    a = np.array(P - 1, dtype=np.uint64)
    assert field_add(a, np.array(3, dtype=np.uint64)).tolist() == 2
    assert field_mul(a, 2).shape == ()
    grid = field_array(range(6)).reshape(2, 3)
    assert field_mul(grid, grid).tolist() == [[0, 1, 4], [9, 16, 25]]
    assert field_sub(grid, np.uint64(1)).tolist()[0][0] == P - 1


def test_field_op_errors() -> None:
    good = field_array([1, 2])
    with pytest.raises(ShareError, match=">= p"):
        field_add(field_array([P]), field_array([1]))
    with pytest.raises(ShareError, match="uint64"):
        field_mul(np.array([1, 2], dtype=np.int64), good)
    with pytest.raises(ShareError, match="shape"):
        field_sub(good, field_array([1, 2, 3]))
    with pytest.raises(ShareError, match="field element"):
        field_mul(good, P)
    with pytest.raises(ShareError, match="field element"):
        field_mul(good, -1)
    with pytest.raises(ShareError, match="bool"):
        field_add(good, True)
    with pytest.raises(ShareError):
        field_add(good, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ShareError, match="uint64 array"):
        field_add(3, good)  # type: ignore[arg-type]


# --- ring <-> field ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(-(P // 2), P // 2), max_size=20))
def test_signed_lift_round_trip(values: list[int]) -> None:
    field = field_from_signed(np.array(values, dtype=np.int64))
    assert field.dtype == np.uint64
    assert field.tolist() == [v % P for v in values]
    assert field_to_signed(field).tolist() == values


def test_field_from_signed_reduces_and_accepts_small_dtypes() -> None:
    assert field_from_signed(np.array([-1, P, P + 5, -P], dtype=np.int64)).tolist() == [
        P - 1,
        0,
        5,
        0,
    ]
    assert field_from_signed(np.array([-3], dtype=np.int8)).tolist() == [P - 3]
    assert field_from_signed(np.array([7], dtype=np.uint32)).tolist() == [7]
    with pytest.raises(ShareError, match="ambiguous"):
        field_from_signed(np.array([1], dtype=np.uint64))
    with pytest.raises(ShareError, match="integer"):
        field_from_signed(np.array([1.0]))


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.integers(0, 2**32 - 1), max_size=20))
def test_ring32_to_field_round_trip(words: list[int]) -> None:
    array = np.array(words, dtype=np.uint32)
    field = ring_to_field(array)
    signed = [w - 2**32 if w >= 2**31 else w for w in words]
    assert field.tolist() == [s % P for s in signed]
    assert np.array_equal(field_to_ring(field, 32), array)


@settings(max_examples=100, deadline=None)
@given(signed=st.lists(st.integers(-(P // 2), P // 2), max_size=20))
def test_ring64_to_field_round_trip(signed: list[int]) -> None:
    array = np.array([s % 2**64 for s in signed], dtype=np.uint64)
    field = ring_to_field(array)
    assert field.tolist() == [s % P for s in signed]
    assert np.array_equal(field_to_ring(field, 64), array)


def test_ring_to_field_refuses_words_outside_half_p() -> None:
    for word in (P // 2 + 1, 2**63, 2**64 - P // 2 - 1, 2**63 - 1):
        with pytest.raises(ShareError, match="outside") as info:
            ring_to_field(np.array([0, word], dtype=np.uint64))
        assert "1 word(s)" in str(info.value)
        assert str(word) not in str(info.value)
    ring_to_field(np.array([P // 2, 2**64 - P // 2], dtype=np.uint64))
    with pytest.raises(ShareError, match="ring words"):
        ring_to_field(np.array([1], dtype=np.int64))
    with pytest.raises(ConfigurationError, match="ring_bits"):
        field_to_ring(field_array([1]), 16)


@pytest.mark.parametrize("ring_bits", [32, 64])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_shamir_over_encoded_vectors_is_bit_exact_in_the_ring(
    ring_bits: int, data: st.DataObject
) -> None:
    codec = FixedPoint(ring_bits=ring_bits, frac_bits=16 if ring_bits == 32 else 40, clip=8.0)
    n = data.draw(st.integers(2, 5))
    t = data.draw(st.integers(1, n))
    codec.check_capacity(n, modulus=P)
    length = data.draw(st.integers(0, 6))
    floats = st.floats(-20, 20, allow_nan=False)
    inputs = [data.draw(hnp.arrays(np.float64, length, elements=floats)) for _ in range(n)]
    words = [encode(x, codec) for x in inputs]
    points = list(range(1, n + 1))
    # member i shares its vector; member j adds the shares it receives and uploads the sum
    dealt = [
        shamir_split(ring_to_field(w), threshold=t, points=points, source=seeded(f"m{i}"))
        for i, w in enumerate(words)
    ]
    uploads = []
    for j in range(n):
        total = dealt[0][j]
        for i in range(1, n):
            total = field_add(total, dealt[i][j])
        uploads.append(total)
    chosen = data.draw(st.permutations(range(n)))[:t]
    field_sum = shamir_reconstruct(
        [uploads[j] for j in chosen], [points[j] for j in chosen], threshold=t
    )
    assert np.array_equal(field_to_ring(field_sum, ring_bits), ring_sum(words))


# --- Shamir --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    secret=st.lists(field_ints, min_size=0, max_size=8),
)
def test_every_t_subset_reconstructs(n: int, data: st.DataObject, secret: list[int]) -> None:
    t = data.draw(st.integers(1, n))
    points = data.draw(
        st.lists(st.integers(1, P - 1), min_size=n, max_size=n, unique=True)
        | st.just(list(range(1, n + 1)))
    )
    value = field_array(secret)
    shares = shamir_split(value, threshold=t, points=points, source=seeded(f"{n} {secret}"))
    assert len(shares) == n
    assert all(s.dtype == np.uint64 and s.shape == value.shape for s in shares)
    for subset in itertools.combinations(range(n), t):
        order = data.draw(st.permutations(subset))
        got = shamir_reconstruct(
            [shares[k] for k in order], [points[k] for k in order], threshold=t
        )
        assert np.array_equal(got, value)
    # more shares than needed: the first t are used
    got = shamir_reconstruct(shares, points, threshold=t)
    assert np.array_equal(got, value)


def test_shares_lie_on_a_polynomial_of_degree_t_minus_1() -> None:
    secret = field_array([5, P - 1])
    points = [1, 2, 3, 4, 5, 6]
    shares = shamir_split(secret, threshold=3, points=points, source=seeded("poly"))
    for column in range(2):
        ys = [int(s[column]) for s in shares]
        # any 3 points fix the polynomial; the other 3 must lie on it
        lam = lagrange_coefficients_at_zero(points[:3])
        assert sum(c * y for c, y in zip(lam, ys[:3], strict=True)) % P == int(secret[column])
        for x, y in zip(points[3:], ys[3:], strict=True):
            interpolated = 0
            for j, (xj, yj) in enumerate(zip(points[:3], ys[:3], strict=True)):
                num, den = 1, 1
                for m, xm in enumerate(points[:3]):
                    if m != j:
                        num = num * (x - xm) % P
                        den = den * (xj - xm) % P
                interpolated += yj * num * pow(den, -1, P)
            assert interpolated % P == y


def test_threshold_one_shares_are_the_secret() -> None:
    secret = field_array([1, 2, 3])
    shares = shamir_split(secret, threshold=1, points=[4, 9], source=OsRandom())
    assert all(np.array_equal(s, secret) for s in shares)


def test_large_vectors_cross_blocks() -> None:
    size = 3 * sharing_module._BLOCK + 17
    secret = random_below(seeded("big secret"), size, P).reshape(size)
    shares = shamir_split(secret, threshold=3, points=[3, 5, 2**40, P - 1], source=seeded("big"))
    got = shamir_reconstruct(shares[1:], [5, 2**40, P - 1], threshold=3)
    assert np.array_equal(got, secret)
    # spot-check the blocked Horner evaluation against Python ints
    for index in (0, sharing_module._BLOCK - 1, sharing_module._BLOCK, size - 1):
        lam = lagrange_coefficients_at_zero([3, 5, 2**40])
        ys = [int(s[index]) for s in shares[:3]]
        assert sum(c * y for c, y in zip(lam, ys, strict=True)) % P == int(secret[index])


def test_t_minus_1_shares_are_independent_of_the_secret_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """For fixed points x_1..x_{t-1}, the map from coefficients (c_1..c_{t-1}) to shares
    (f(x_1)..f(x_{t-1})) is s + V c with V = [x_i^k] invertible (Vandermonde of distinct
    non-zero points). So for two secrets s, s', the coefficients c' = c + V^-1 (s - s') give
    s' exactly the same t-1 shares, and c -> c' is a bijection of GF(p)^(t-1): with uniform
    coefficients both secrets give the same distribution of t-1 shares. Check that map on
    the implementation, for random c."""
    t = 4
    points = [3, 11, 2**40]  # t - 1 of them
    rng = np.random.default_rng(5)
    for _ in range(5):
        c = [int(v) for v in rng.integers(0, P, t - 1, dtype=np.uint64)]
        s, s2 = (int(v) for v in rng.integers(0, P, 2, dtype=np.uint64))
        # solve V d = (s - s2) for d in GF(p): Gaussian elimination with Python ints
        matrix = [[pow(x, k, P) for k in range(1, t)] + [(s - s2) % P] for x in points]
        for col in range(t - 1):
            pivot = next(r for r in range(col, t - 1) if matrix[r][col])
            matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
            inv = pow(matrix[col][col], -1, P)
            matrix[col] = [v * inv % P for v in matrix[col]]
            for r in range(t - 1):
                if r != col and matrix[r][col]:
                    f = matrix[r][col]
                    matrix[r] = [
                        (a - f * b) % P for a, b in zip(matrix[r], matrix[col], strict=True)
                    ]
        d = [matrix[r][-1] for r in range(t - 1)]
        c2 = [(a + b) % P for a, b in zip(c, d, strict=True)]

        def run(secret: int, coefficients: list[int]) -> list[int]:
            queue = [np.array([v], dtype=np.uint64) for v in coefficients]
            monkeypatch.setattr(sharing_module, "random_below", lambda *a: queue.pop(0))
            shares = shamir_split(
                field_array([secret]), threshold=t, points=[*points, 99], source=OsRandom()
            )
            return [int(x[0]) for x in shares[: t - 1]]  # the t - 1 shares a coalition holds

        assert run(s, c) == run(s2, c2)
        assert run(s, c) != run(s2, c)  # control: the coefficients really came from the queue


def test_t_minus_1_shares_look_uniform_for_two_secrets() -> None:
    # Fixed seeds: the statistics are fixed numbers (no flakes). The top 4 bits of one share
    # (t = 2) of secret 0 and of secret p - 1 must both look uniform.
    for secret in (0, P - 1):
        shares = shamir_split(
            field_array([secret] * 20_000), threshold=2, points=[1, 2], source=seeded("indep")
        )
        top = (shares[0] >> np.uint64(57)).astype(np.int64)
        counts = np.bincount(top, minlength=16)
        expected = counts.sum() / 16
        assert float(((counts - expected) ** 2 / expected).sum()) < 80.0


def test_lagrange_coefficients_sum_to_one_and_match_definition() -> None:
    for points in ([1], [1, 2], [1, 2, 3, 4, 5], [7, 2**40, P - 1]):
        lam = lagrange_coefficients_at_zero(points)
        assert sum(lam) % P == 1
        for j, xj in enumerate(points):
            num = den = 1
            for m, xm in enumerate(points):
                if m != j:
                    num, den = num * xm % P, den * (xm - xj) % P
            assert lam[j] == num * pow(den, -1, P) % P


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([1, 2, 2], "duplicate"),
        ([0, 1, 2], "is 0"),
        ([1, -2, 3], "0 < point < p"),
        ([1, P, 3], "0 < point < p"),
        ([1, 2.0, 3], "must be an int"),
        ([1, True, 3], "must be an int"),
        ("123", "sequence"),
    ],
)
def test_bad_points(points: object, message: str) -> None:
    secret = field_array([1])
    with pytest.raises(ShareError, match=message):
        shamir_split(secret, threshold=1, points=points, source=OsRandom())  # type: ignore[arg-type]
    if isinstance(points, list):
        with pytest.raises(ShareError, match=message):
            shamir_reconstruct([secret] * len(points), points, threshold=1)
        with pytest.raises(ShareError, match=message):
            lagrange_coefficients_at_zero(points)


@pytest.mark.parametrize("threshold", [0, -1, 4, 2.0, True])
def test_bad_threshold(threshold: object) -> None:
    with pytest.raises(ShareError, match="threshold"):
        shamir_split(field_array([1]), threshold=threshold, points=[1, 2, 3], source=OsRandom())  # type: ignore[arg-type]


def test_shamir_split_secret_errors() -> None:
    with pytest.raises(ShareError, match=">= p"):
        shamir_split(field_array([P]), threshold=1, points=[1], source=OsRandom())
    with pytest.raises(ShareError, match="uint64"):
        shamir_split(np.array([1], np.uint32), threshold=1, points=[1], source=OsRandom())
    with pytest.raises(ConfigurationError, match="RandomSource"):
        shamir_split(field_array([1]), threshold=2, points=[1, 2], source=None)  # type: ignore[arg-type]


def test_shamir_reconstruct_errors() -> None:
    shares = shamir_split(field_array([1, 2]), threshold=2, points=[1, 2, 3], source=OsRandom())
    with pytest.raises(ShareError, match="too few shares: got 1, the threshold is 2"):
        shamir_reconstruct(shares[:1], [1], threshold=2)
    with pytest.raises(ShareError, match="one point per share"):
        shamir_reconstruct(shares, [1, 2], threshold=2)
    with pytest.raises(ShareError, match="threshold must be at least 1"):
        shamir_reconstruct(shares, [1, 2, 3], threshold=0)
    with pytest.raises(ShareError, match="threshold must be an int"):
        shamir_reconstruct(shares, [1, 2, 3], threshold=2.0)  # type: ignore[arg-type]
    with pytest.raises(ShareError, match="shape"):
        shamir_reconstruct([shares[0], field_array([1, 2, 3])], [1, 2], threshold=2)
    with pytest.raises(ShareError, match=r"shares\[1\] holds 1 value"):
        shamir_reconstruct([shares[0], field_array([1, P])], [1, 2], threshold=2)
    with pytest.raises(ShareError, match="sequence of arrays"):
        shamir_reconstruct(shares[0], [1, 2], threshold=2)  # type: ignore[arg-type]
    with pytest.raises(ShareError, match="duplicate"):
        shamir_reconstruct(shares[:2], [1, 1], threshold=2)
    with pytest.raises(ShareError, match="empty"):
        lagrange_coefficients_at_zero([])


@pytest.mark.parametrize(("t", "w"), [(1, 5), (6, 5), (29, 5), (4, 300)])
def test_field_polynomial_at_takes_the_coefficients_as_one_matrix_too(t, w):
    from ssddl.hazmat.sharing import field_polynomial_at

    rng = np.random.default_rng([t, w])
    matrix = rng.integers(0, SHAMIR_PRIME, size=(t, w), dtype=np.uint64)
    points = [3, 5, 1 << 40]
    assert np.array_equal(
        field_polynomial_at(matrix, points), field_polynomial_at(list(matrix), points)
    )


def test_field_polynomial_at_names_the_bad_coefficient():
    from ssddl.hazmat.sharing import field_polynomial_at

    good = [field_array([1, 2]), field_array([3, 4]), field_array([5, 6])]
    bad = [good[0], field_array([7, P]), good[2]]
    with pytest.raises(ShareError, match=r"coefficients\[1\] holds 1 value\(s\) >= p"):
        field_polynomial_at(bad, [1, 2])
    with pytest.raises(ShareError, match=r"coefficients\[2\] must be a numpy uint64 array"):
        field_polynomial_at([*good[:2], np.array([5, 6], dtype=np.int64)], [1, 2])
    with pytest.raises(ShareError, match="1-D field arrays of one length"):
        field_polynomial_at([good[0], field_array([1, 2, 3])], [1, 2])
    with pytest.raises(ShareError, match="empty"):
        field_polynomial_at([], [1, 2])
    with pytest.raises(ShareError, match="empty"):
        field_polynomial_at(np.zeros((0, 5), dtype=np.uint64), [1, 2])
    with pytest.raises(ShareError, match="2-D"):
        field_polynomial_at(field_array([1, 2]), [1, 2])
    with pytest.raises(ShareError, match=">= p"):
        field_polynomial_at(np.stack(bad), [1, 2])


@pytest.mark.parametrize(
    ("n", "t", "w"), [(1, 1, 5), (3, 2, 5), (10, 6, 5), (40, 21, 5), (7, 4, 300)]
)
def test_field_polynomial_at_equals_python_integers(n, t, w):
    from ssddl.hazmat.sharing import field_polynomial_at

    rng = np.random.default_rng([n, t, w])
    coefficients = [rng.integers(0, SHAMIR_PRIME, size=w, dtype=np.uint64) for _ in range(t)]
    coefficients[0][:1] = SHAMIR_PRIME - 1  # the largest field element
    points = sorted({int(x) for x in rng.integers(1, 1 << 40, size=n)})
    points[0] = (1 << 31) - 1  # a point at the small-multiplier bound, and larger ones
    got = field_polynomial_at(coefficients, points)
    for row, x in zip(got, points, strict=True):
        expected = [
            sum(int(c[k]) * pow(x, i, SHAMIR_PRIME) for i, c in enumerate(coefficients))
            % SHAMIR_PRIME
            for k in range(w)
        ]
        assert row.tolist() == expected
    small = field_polynomial_at(coefficients, list(range(1, n + 1)))  # points below 2**31
    for row, x in zip(small, range(1, n + 1), strict=True):
        assert (
            int(row[-1])
            == sum(int(c[-1]) * pow(x, i, SHAMIR_PRIME) for i, c in enumerate(coefficients))
            % SHAMIR_PRIME
        )


def _horner_ints(coefficients, x):
    """f(x) mod p word by word, in Python integers (the reference)."""
    out = []
    for k in range(coefficients[0].size):
        value = 0
        for c in reversed(coefficients):
            value = (value * x + int(c[k])) % SHAMIR_PRIME
        out.append(value)
    return out


_field_words = st.one_of(
    st.integers(0, SHAMIR_PRIME - 1),
    st.sampled_from([0, 1, SHAMIR_PRIME - 1, SHAMIR_PRIME - 2, (1 << 21) - 1, 1 << 42]),
)


@settings(max_examples=150, deadline=None)
@given(
    t=st.integers(1, 40),
    w=st.integers(1, 40),  # both sides of the limb path's 32-word limit
    data=st.data(),
)
def test_field_polynomial_at_is_horner_in_integers(t, w, data):
    from ssddl.hazmat.sharing import field_polynomial_at

    coefficients = [
        np.array(data.draw(st.lists(_field_words, min_size=w, max_size=w)), dtype=np.uint64)
        for _ in range(t)
    ]
    points = data.draw(
        st.lists(
            st.one_of(st.integers(1, 200), st.integers(1, SHAMIR_PRIME - 1)),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    got = field_polynomial_at(coefficients, points)
    assert got.dtype == np.uint64 and got.shape == (len(points), w)
    assert [row.tolist() for row in got] == [_horner_ints(coefficients, x) for x in points]


@pytest.mark.parametrize("t", [511, 512, 513])  # the limb path's exactness bound, and past it
def test_field_polynomial_at_is_exact_at_the_largest_limbs(t):
    from ssddl.hazmat.sharing import field_polynomial_at

    top = SHAMIR_PRIME - 1  # every limb at its largest: 3t products near 2^42 per sum
    coefficients = [np.full(3, top, dtype=np.uint64) for _ in range(t)]
    points = [top, (1 << 61) - 3, (1 << 21) - 1]
    got = field_polynomial_at(coefficients, points)
    assert [row.tolist() for row in got] == [_horner_ints(coefficients, x) for x in points]


def test_the_point_power_tables_stay_within_their_budget(monkeypatch):
    from ssddl.hazmat import sharing

    monkeypatch.setattr(sharing, "_POWER_CACHE_BYTES", 64 << 10)
    sharing._power_cache.clear()
    c = [np.ones(5, dtype=np.uint64)] * 20
    for start in range(1, 400, 20):  # 20 tables of 20 points × 60 limbs (9.6 kB each)
        expected = [_horner_ints(c, x) for x in range(start, start + 20)]
        assert sharing.field_polynomial_at(c, list(range(start, start + 20))).tolist() == expected
    held = sum(table.nbytes for table in sharing._power_cache.values())
    assert 0 < held <= 64 << 10 and len(sharing._power_cache) < 20
    big = sharing.field_polynomial_at([np.ones(1, dtype=np.uint64)] * 300, list(range(1, 200)))
    assert big.shape == (199, 1)  # 1.4 MB: used, never kept
    assert all(table.nbytes <= 16 << 10 for table in sharing._power_cache.values())
    sharing._power_cache.clear()


def test_field_polynomial_at_refuses_bad_input():
    from ssddl.hazmat.sharing import field_polynomial_at

    c = np.zeros(5, dtype=np.uint64)
    with pytest.raises(ShareError, match="empty"):
        field_polynomial_at([], [1])
    with pytest.raises(ShareError, match="one length"):
        field_polynomial_at([c, np.zeros(4, dtype=np.uint64)], [1])
    with pytest.raises(ShareError, match="points"):
        field_polynomial_at([c], [0])
    with pytest.raises(ShareError, match="coefficients\\[1\\]"):
        field_polynomial_at([c, np.full(5, SHAMIR_PRIME, dtype=np.uint64)], [1])


@settings(max_examples=60, deadline=None)
@given(
    t=st.integers(1, 12),
    size=st.integers(1, 70),
    data=st.data(),
)
def test_the_small_reconstruction_path_equals_the_array_path(
    t: int, size: int, data: st.DataObject
) -> None:
    # any values in the field, consistent shares or not: the two paths compute the same sum
    shares = [
        field_array(data.draw(st.lists(field_ints, min_size=size, max_size=size))) for _ in range(t)
    ]
    points = data.draw(st.lists(st.integers(1, P - 1), min_size=t, max_size=t, unique=True))
    small = shamir_reconstruct(shares, points, threshold=t)
    saved = sharing_module.SMALL_WORDS
    sharing_module.SMALL_WORDS = 0  # force the numpy path
    try:
        big = shamir_reconstruct(shares, points, threshold=t)
    finally:
        sharing_module.SMALL_WORDS = saved
    assert small.dtype == big.dtype == np.uint64 and small.shape == big.shape
    assert np.array_equal(small, big)


@settings(max_examples=60, deadline=None)
@given(
    secrets=st.integers(1, 6),
    t=st.integers(1, 10),
    extra=st.integers(0, 3),
    size=st.integers(1, 8),
    data=st.data(),
)
def test_reconstructing_each_secret_from_its_own_points_equals_one_call_per_secret(
    secrets: int, t: int, extra: int, size: int, data: st.DataObject
) -> None:
    # any field values and any points per secret (the server's sparse case: every owner's
    # holders differ); shares beyond the threshold are ignored, as by shamir_reconstruct
    rows = field_array(
        data.draw(
            st.lists(field_ints, min_size=secrets * (t + extra) * size,
                     max_size=secrets * (t + extra) * size)
        )
    ).reshape(secrets, t + extra, size)  # fmt: skip
    points = [
        data.draw(st.lists(st.integers(1, P - 1), min_size=t + extra, max_size=t + extra,
                           unique=True))
        for _ in range(secrets)
    ]  # fmt: skip
    got = shamir_reconstruct_each(rows, points, threshold=t)
    assert got.dtype == np.uint64 and got.shape == (secrets, size)
    for k in range(secrets):
        one = shamir_reconstruct(list(rows[k]), points[k], threshold=t)
        assert np.array_equal(got[k], one)


def test_reconstructing_each_recovers_split_secrets_and_refuses_bad_input() -> None:
    source = seeded("each")
    secrets = [field_array([k, P - 1 - k, 7]) for k in range(4)]
    rows, points = [], []
    for k, secret in enumerate(secrets):
        xs = [10 * k + j for j in range(1, 6)]  # a different point set per secret
        shares = shamir_split(secret, threshold=3, points=xs, source=source)
        rows.append(np.stack(shares[1:4]))  # any three of the five
        points.append(xs[1:4])
    got = shamir_reconstruct_each(np.stack(rows), points, threshold=3)
    assert np.array_equal(got, np.stack(secrets))
    stacked = np.stack(rows)
    with pytest.raises(ShareError, match="3-D"):
        shamir_reconstruct_each(stacked[0], points, threshold=3)
    with pytest.raises(ShareError, match=">= p"):
        shamir_reconstruct_each(stacked + np.uint64(P), points, threshold=3)
    with pytest.raises(ShareError, match="4 secrets but 3 point"):
        shamir_reconstruct_each(stacked, points[:3], threshold=3)
    with pytest.raises(ShareError, match="threshold"):
        shamir_reconstruct_each(stacked, points, threshold=4)
    with pytest.raises(ShareError, match="duplicate"):
        shamir_reconstruct_each(stacked, [*points[:3], [1, 1, 2]], threshold=3)
    with pytest.raises(ShareError, match="points\\[1\\] has 2 points for 3 shares"):
        shamir_reconstruct_each(stacked, [points[0], points[1][:2], *points[2:]], threshold=2)
    with pytest.raises(ShareError, match="at most 64"):
        shamir_reconstruct_each(np.zeros((1, 1, 65), dtype=np.uint64), [[1]], threshold=1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, P - 1), min_size=1, max_size=40, unique=True))
def test_lagrange_coefficients_equal_the_textbook_formula(points: list[int]) -> None:
    expected = []
    for j, xj in enumerate(points):
        num = den = 1
        for m, xm in enumerate(points):
            if m != j:
                num, den = num * xm % P, den * (xm - xj) % P
        expected.append(num * pow(den, -1, P) % P)
    assert lagrange_coefficients_at_zero(points) == expected
    # kept between calls (the same holders come back every round): a caller's edit of the
    # list it got changes nothing for the next caller
    again = lagrange_coefficients_at_zero(points)
    again[0] = (again[0] + 1) % P
    assert lagrange_coefficients_at_zero(points) == expected
