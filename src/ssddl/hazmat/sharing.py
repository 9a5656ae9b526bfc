"""Additive n-of-n sharing in the ring Z_Q and Shamir t-of-n sharing over GF(p), p = 2**61 - 1.

Additive. ``additive_split`` draws n - 1 shares uniform over the ring and sets the last to
``secret - sum(others) mod Q``; any n - 1 shares are uniform and independent of the secret.

Shamir. Field elements are numpy uint64 values in ``[0, p)``. A share of secret s for point
x is f(x) with f(X) = s + c_1 X + ... + c_{t-1} X^{t-1}, the c_k uniform in GF(p) (rejection
sampling, :func:`ssddl.hazmat.rand.random_below`); any t shares give s by Lagrange
interpolation at 0, and any t - 1 shares are uniform and independent of s.

Randomness order (pinned by the known-answer vectors): the coefficient arrays are drawn
c_1, c_2, ..., c_{t-1}, each as ``random_below(source, secret.size, p)``.

Multiplication mod p in uint64 without overflow. With a, b < 2**61 split as
``a = a1 * 2**31 + a0`` (a1 < 2**30, a0 < 2**31), and likewise b::

    a * b = a1*b1 * 2**62 + (a1*b0 + a0*b1) * 2**31 + a0*b0

    hh  = a1*b1          < 2**60     hh * 2**62 = 2hh * 2**61 == 2hh            (< 2**61)
    mid = a1*b0 + a0*b1  < 2**62     mid * 2**31 == (mid >> 30) + (mid & (2**30-1)) << 31
                                                   (< 2**32)   (< 2**61)
    lo  = a0*b0          < 2**62     lo == (lo & p) + (lo >> 61)     (< 2**61, <= 1)

using 2**61 == 1 (mod p). The sum s of the five folded terms is below
3 * 2**61 + 2**32 + 2 < 2**63; then ``(s & p) + (s >> 61) < 2**61 + 3`` and one conditional
subtraction of p gives the result in ``[0, p)``. No intermediate reaches 2**63. For a scalar
b < 2**31 (the usual small evaluation points) b1 = 0 and the products are a1*b < 2**61 and
a0*b < 2**62, folded the same way. Sums of two field elements are below 2**62.

Ring <-> field. ``ring_to_field`` reads ring words as two's-complement signed integers and
maps them to GF(p); it refuses words whose signed value is not in (-p/2, p/2).
``field_to_ring`` maps back through the signed lift in (-p/2, p/2). If the n encoded inputs
satisfy ``FixedPoint.check_capacity(n, modulus=SHAMIR_PRIME)``, their signed sum lies in
(-p/2, p/2), so the field sum maps back to exactly the ring sum, bit for bit.
"""

from __future__ import annotations

import collections
import functools
import operator
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ssddl.exceptions import ShareError
from ssddl.hazmat.codec import ring_sum
from ssddl.hazmat.rand import RandomSource, random_below, random_words, ring_dtype

__all__ = [
    "SHAMIR_PRIME",
    "additive_reconstruct",
    "additive_split",
    "field_add",
    "field_from_signed",
    "field_mul",
    "field_polynomial_at",
    "field_sub",
    "field_to_ring",
    "field_to_signed",
    "lagrange_coefficients_at_zero",
    "ring_to_field",
    "shamir_reconstruct",
    "shamir_reconstruct_each",
    "shamir_split",
]

SHAMIR_PRIME = (1 << 61) - 1
#: up to this many words, :func:`shamir_reconstruct` works in Python integers (the same field
#: arithmetic): the server rebuilds one five-word self-mask seed per member and round, and
#: under sparse pairing every member's holders differ, so each seed is its own call
SMALL_WORDS = 64
_P = np.uint64(SHAMIR_PRIME)
_HALF = SHAMIR_PRIME // 2  # signed lifts lie in [-_HALF, _HALF], i.e. (-p/2, p/2)
_M30 = np.uint64((1 << 30) - 1)
_M31 = np.uint64((1 << 31) - 1)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S61 = np.uint64(61)
_RING_DTYPES = (np.dtype(np.uint32), np.dtype(np.uint64))


# --- additive sharing in Z_Q ---------------------------------------------------------------


def _check_ring_array(value: Any, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype not in _RING_DTYPES:
        raise ShareError(f"{name} must be a numpy array of ring words (uint32 or uint64)")
    return value


def _as_share_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ShareError(f"{name} must be an int")
    return int(value)


def additive_split(secret: np.ndarray, n: int, source: RandomSource) -> list[np.ndarray]:
    """``n`` shares in the ring of ``secret`` (uint32/uint64, any shape) summing to it mod Q."""
    secret = _check_ring_array(secret, "secret")
    n = _as_share_count(n, "n")
    if n < 1:
        raise ShareError("n must be at least 1 (the number of shares)")
    ring_bits = secret.dtype.itemsize * 8
    shares = [
        random_words(source, secret.size, ring_bits).reshape(secret.shape) for _ in range(n - 1)
    ]
    last = np.array(secret, copy=True)
    for share in shares:
        np.subtract(last, share, out=last)
    shares.append(last)
    return shares


def additive_reconstruct(shares: Sequence[np.ndarray]) -> np.ndarray:
    """The sum of all shares mod Q (every share is needed)."""
    return ring_sum(shares)


# --- the field GF(2**61 - 1) ---------------------------------------------------------------


def _check_field(value: Any, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype != np.dtype(np.uint64):
        raise ShareError(f"{name} must be a numpy uint64 array of field elements (< 2**61 - 1)")
    too_big = int(np.count_nonzero(value >= _P))
    if too_big:
        raise ShareError(
            f"{name} holds {too_big} value(s) >= p = 2**61 - 1; reduce them with "
            "field_from_signed or ring_to_field first"
        )
    return value


def _as_operand(value: Any, name: str) -> np.ndarray | int:
    """An array of field elements, or a Python int scalar in [0, p)."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return _check_field(value, name)
    if isinstance(value, bool):
        raise ShareError(f"{name} must be a field element, not a bool")
    if isinstance(value, np.ndarray):
        value = _check_field(value, name)[()]
    if isinstance(value, (int, np.integer)):
        number = int(value)
        if not 0 <= number < SHAMIR_PRIME:
            raise ShareError(f"{name} must be a field element in [0, 2**61 - 1)")
        return number
    raise ShareError(f"{name} must be a numpy uint64 array or an int in [0, 2**61 - 1)")


def _operands(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray | int]:
    left = _check_field(a, "a")
    right = _as_operand(b, "b")
    if isinstance(right, np.ndarray) and right.shape != left.shape:
        raise ShareError(f"field operands differ in shape ({left.shape} vs {right.shape})")
    return left, right


def _reduce_once(s: np.ndarray) -> np.ndarray:
    """[0, 2p) -> [0, p) in place: where s < p, s - p wraps above s and the minimum is s."""
    np.minimum(s, s - _P, out=s)
    return s


def _add(a: np.ndarray, b: np.ndarray | np.uint64) -> np.ndarray:
    s = np.add(a, b, out=np.empty(a.shape, dtype=np.uint64))  # < 2**62
    return _reduce_once(s)


def _sub(a: np.ndarray, b: np.ndarray | np.uint64) -> np.ndarray:
    s = np.add(a, _P, out=np.empty(a.shape, dtype=np.uint64))  # a + p - b in (0, 2p)
    np.subtract(s, b, out=s)
    return _reduce_once(s)


def _fold(s: np.ndarray) -> np.ndarray:
    """s < 2**63 -> s mod p, in place: (s & p) + (s >> 61) < 2**61 + 3, then one subtraction."""
    high = s >> _S61
    np.bitwise_and(s, _P, out=s)
    s += high
    return _reduce_once(s)


def _mul_small(a: np.ndarray, b: int | np.ndarray) -> np.ndarray:
    """a * b mod p for 0 <= b < 2**31: a scalar, or a uint64 array that broadcasts against
    ``a`` (see the module docstring for the bounds)."""
    scalar = b if isinstance(b, np.ndarray) else np.uint64(b)
    u = (a >> _S31) * scalar  # < 2**30 * 2**31 = 2**61
    lo = (a & _M31) * scalar  # < 2**31 * 2**31 = 2**62
    s = u >> _S30  # < 2**31
    np.bitwise_and(u, _M30, out=u)
    np.left_shift(u, _S31, out=u)  # < 2**61
    s += u
    s += lo >> _S61  # <= 1
    np.bitwise_and(lo, _P, out=lo)  # < 2**61
    s += lo  # < 2**31 + 2**61 + 1 + 2**61 < 2**63
    return _fold(s)


def _mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """a * b mod p, a an array and b an array of the same shape or an int, all in [0, p)."""
    if a.ndim != 1:
        flat_b = b if isinstance(b, int) else b.reshape(-1)
        return _mul(a.reshape(-1), flat_b).reshape(a.shape)
    if isinstance(b, int) and b < 1 << 31:
        return _mul_small(a, b)
    if isinstance(b, int):
        b1: np.ndarray | np.uint64 = np.uint64(b >> 31)
        b0: np.ndarray | np.uint64 = np.uint64(b & ((1 << 31) - 1))
    else:
        b1 = b >> _S31
        b0 = b & _M31
    a1 = a >> _S31  # < 2**30
    a0 = a & _M31  # < 2**31
    mid = a1 * b0
    mid += a0 * b1  # < 2**62
    np.multiply(a1, b1, out=a1)  # hh < 2**60
    np.multiply(a0, b0, out=a0)  # lo < 2**62
    s = a1 + a1  # 2hh < 2**61
    s += mid >> _S30  # < 2**32
    np.bitwise_and(mid, _M30, out=mid)
    np.left_shift(mid, _S31, out=mid)  # < 2**61
    s += mid
    s += a0 >> _S61  # <= 1
    np.bitwise_and(a0, _P, out=a0)  # < 2**61
    s += a0  # total < 3 * 2**61 + 2**32 + 2 < 2**63
    return _fold(s)


def field_add(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """(a + b) mod p elementwise; ``b`` may be an int in [0, p)."""
    left, right = _operands(a, b)
    return _add(left, right if isinstance(right, np.ndarray) else np.uint64(right))


def field_sub(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """(a - b) mod p elementwise; ``b`` may be an int in [0, p)."""
    left, right = _operands(a, b)
    return _sub(left, right if isinstance(right, np.ndarray) else np.uint64(right))


def field_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """(a * b) mod p elementwise; ``b`` may be an int in [0, p)."""
    left, right = _operands(a, b)
    return _mul(left, right)


def field_from_signed(values: np.ndarray) -> np.ndarray:
    """Signed integers (any signed dtype, or unsigned of at most 32 bits) -> GF(p) as uint64.

    Every value is reduced mod p (so ``-1`` becomes ``p - 1``).
    """
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu":
        raise ShareError("values must be a numpy integer array (int64 signed lifts)")
    if values.dtype.kind == "u" and values.dtype.itemsize == 8:
        raise ShareError(
            "values has dtype uint64, which is ambiguous here: use ring_to_field for ring "
            "words, or values.view(np.int64) for signed lifts"
        )
    signed = values.astype(np.int64)
    return np.mod(signed, np.int64(SHAMIR_PRIME)).astype(np.uint64)


def field_to_signed(values: np.ndarray) -> np.ndarray:
    """GF(p) -> int64 signed lift in (-p/2, p/2)."""
    field = _check_field(values, "values")
    signed = field.astype(np.int64)
    signed[signed > _HALF] -= SHAMIR_PRIME
    return signed


def ring_to_field(words: np.ndarray) -> np.ndarray:
    """Ring words (uint32/uint64, two's complement) -> GF(p), via their signed value.

    Raises ShareError for words whose signed value is not in (-p/2, p/2) (only possible for
    uint64); keep ``n * clip * 2**f < p/2`` with ``FixedPoint.check_capacity``.
    """
    words = _check_ring_array(words, "words")
    if words.dtype == np.dtype(np.uint32):
        signed = words.view(np.int32).astype(np.int64)
    else:
        signed = np.array(words.view(np.int64), copy=True)
        outside = int(np.count_nonzero((signed > _HALF) | (signed < -_HALF)))
        if outside:
            raise ShareError(
                f"words holds {outside} word(s) whose signed value is outside (-p/2, p/2) for "
                "p = 2**61 - 1; use fewer frac_bits or a smaller clip "
                "(FixedPoint.check_capacity(n, modulus=SHAMIR_PRIME))"
            )
    signed[signed < 0] += SHAMIR_PRIME
    return signed.view(np.uint64)


def field_to_ring(values: np.ndarray, ring_bits: int) -> np.ndarray:
    """GF(p) -> ring words: the signed lift in (-p/2, p/2) taken mod 2**ring_bits."""
    dtype = ring_dtype(ring_bits)
    signed = field_to_signed(values)
    if dtype == np.dtype(np.uint64):
        return signed.view(np.uint64)
    signed &= np.int64(0xFFFFFFFF)
    return signed.astype(np.uint32)


# --- Shamir --------------------------------------------------------------------------------


def _check_points(points: Any) -> list[int]:
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
        raise ShareError("points must be a sequence of ints (the evaluation points)")
    checked: list[int] = []
    for index, point in enumerate(points):
        if isinstance(point, bool) or not isinstance(point, (int, np.integer)):
            raise ShareError(f"points[{index}] must be an int")
        value = int(point)
        if value == 0:
            raise ShareError(
                f"points[{index}] is 0: the secret sits at 0, so 0 is never a share point; use 1..n"
            )
        if not 0 < value < SHAMIR_PRIME:
            raise ShareError(f"points[{index}] must satisfy 0 < point < p = 2**61 - 1")
        checked.append(value)
    if len(set(checked)) != len(checked):
        raise ShareError("points holds a duplicate; every share needs its own point")
    return checked


def _check_threshold(threshold: Any, available: int) -> int:
    t = _as_share_count(threshold, "threshold")
    if not 1 <= t <= available:
        raise ShareError(
            f"threshold must satisfy 1 <= threshold <= number of points ({available}); got {t}"
        )
    return t


def lagrange_coefficients_at_zero(points: Sequence[int]) -> list[int]:
    """lambda_j = prod_{m != j} x_m / (x_m - x_j) mod p, so that f(0) = sum lambda_j f(x_j)."""
    xs = _check_points(points)
    if not xs:
        raise ShareError("points is empty; interpolation needs at least one point")
    return list(_lagrange_at_zero(tuple(xs)))


@functools.lru_cache(maxsize=256)
def _lagrange_at_zero(xs: tuple[int, ...]) -> tuple[int, ...]:
    """:func:`lagrange_coefficients_at_zero` of checked points, kept for the next call: the
    server rebuilds every member's seed each round from the same holders' points."""
    p = SHAMIR_PRIME
    product = 1  # prod_m x_m; then lambda_j = product / (x_j * prod_{m != j} (x_m - x_j))
    for xm in xs:
        product = product * xm % p
    denominators = []
    for j, xj in enumerate(xs):
        denominator = xj
        for m, xm in enumerate(xs):
            if m != j:
                denominator = denominator * (xm - xj) % p
        denominators.append(denominator)
    inverses = _batch_inverse(denominators)
    return tuple(product * inverse % p for inverse in inverses)


def _batch_inverse(values: Sequence[int]) -> list[int]:
    """The inverses mod p of nonzero ``values`` with one modular inversion (Montgomery's
    trick: prefix products, one inverse, then back)."""
    p = SHAMIR_PRIME
    prefix = [1]
    for v in values:
        prefix.append(prefix[-1] * v % p)
    running = pow(prefix[-1], -1, p)
    inverses = [0] * len(values)
    for index in range(len(values) - 1, -1, -1):
        inverses[index] = running * prefix[index] % p
        running = running * values[index] % p
    return inverses


class _Scratch:
    """Three reusable uint64 buffers of ``block`` words for the in-place kernels below."""

    __slots__ = ("buffers",)

    def __init__(self, block: int) -> None:
        self.buffers = tuple(np.empty(block, dtype=np.uint64) for _ in range(3))

    def views(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t1, t2, t3 = self.buffers
        return t1[:size], t2[:size], t3[:size]


def _mul_scalar_inplace(a: np.ndarray, b: int, scratch: _Scratch) -> None:
    """a <- a * b mod p in place, a 1-D block of field elements, 0 <= b < p (same bounds as
    :func:`_mul`, without allocating)."""
    t1, t2, t3 = scratch.views(a.size)
    np.right_shift(a, _S31, out=t1)  # a1 < 2**30
    np.bitwise_and(a, _M31, out=t2)  # a0 < 2**31
    if b < 1 << 31:
        scalar = np.uint64(b)
        t1 *= scalar  # u = a1*b < 2**61
        t2 *= scalar  # lo = a0*b < 2**62
        np.right_shift(t1, _S30, out=a)  # < 2**31
        t1 &= _M30
        t1 <<= _S31  # < 2**61
        a += t1
    else:
        b1 = np.uint64(b >> 31)
        b0 = np.uint64(b & ((1 << 31) - 1))
        np.multiply(t1, b0, out=t3)  # a1*b0 < 2**61
        np.multiply(t2, b1, out=a)  # a0*b1 < 2**61
        t3 += a  # mid < 2**62
        t1 *= b1  # hh < 2**60
        t2 *= b0  # lo < 2**62
        np.add(t1, t1, out=a)  # 2hh < 2**61
        np.right_shift(t3, _S30, out=t1)  # < 2**32
        a += t1
        t3 &= _M30
        t3 <<= _S31  # < 2**61
        a += t3
    np.right_shift(t2, _S61, out=t1)  # <= 1
    a += t1
    t2 &= _P  # < 2**61
    a += t2  # < 3 * 2**61 + 2**32 + 2 < 2**63
    np.right_shift(a, _S61, out=t1)
    a &= _P
    a += t1  # < 2**61 + 3
    np.subtract(a, _P, out=t1)
    np.minimum(a, t1, out=a)


def _add_inplace(a: np.ndarray, b: np.ndarray, scratch: _Scratch) -> None:
    """a <- a + b mod p in place (both < p, so the sum is < 2**62)."""
    t1 = scratch.views(a.size)[0]
    a += b
    np.subtract(a, _P, out=t1)
    np.minimum(a, t1, out=a)


_BLOCK = 1 << 14  # words per block: a few block-sized buffers stay in the L2 cache


#: the largest threshold the limb-product path takes (its float sums stay exact, see below)
_LIMB_MAX_TERMS = 512
#: ... and the longest secrets (words) it takes: beyond, Horner's rule is faster
_LIMB_MAX_WORDS = 32
_LIMB_BITS = 21  #: three limbs of at most 21 bits hold a field element (61 bits)
_LIMB_MASK = np.uint64((1 << _LIMB_BITS) - 1)
_LIMB_OFFSETS = np.array([0, 21, 42], dtype=np.uint64)[:, None, None]
#: 2^(21 s) ≡ 2^(21 s mod 61) (mod p = 2^61 − 1), s = 0 .. 4
_FOLD_SHIFTS = np.array([0, 21, 42, 63 % 61, 84 % 61], dtype=np.uint64)[:, None]
_FOLD_HIGH = np.uint64(61) - _FOLD_SHIFTS


#: bytes of point-power tables kept between calls (the same members' points come back
#: every round); the least recently used go first
_POWER_CACHE_BYTES = 16 << 20
_power_cache: collections.OrderedDict[tuple[tuple[int, ...], int], np.ndarray] = (
    collections.OrderedDict()
)
_power_cache_lock = threading.Lock()


def _power_limbs(xs: tuple[int, ...], terms: int) -> np.ndarray:
    """Row j: the 21-bit limbs of xs[j]^0 .. xs[j]^(terms-1) mod p, as float64
    [low limbs | middle limbs | high limbs] (n × 3·terms); kept for the next call."""
    key = (xs, terms)
    with _power_cache_lock:
        table = _power_cache.get(key)
        if table is not None:
            _power_cache.move_to_end(key)
            return table
    table = _power_table(xs, terms)
    if table.nbytes <= _POWER_CACHE_BYTES // 4:
        with _power_cache_lock:
            _power_cache[key] = table
            held = sum(t.nbytes for t in _power_cache.values())
            while held > _POWER_CACHE_BYTES:
                held -= _power_cache.popitem(last=False)[1].nbytes
    return table


def _power_table(xs: tuple[int, ...], terms: int) -> np.ndarray:
    rows = []
    for x in xs:
        value = 1
        for _ in range(terms):
            rows.append(value)
            value = value * x % SHAMIR_PRIME
    words = np.array(rows, dtype=np.uint64).reshape(len(xs), 1, terms)
    limbs = ((words >> _LIMB_OFFSETS.reshape(1, 3, 1)) & _LIMB_MASK).astype(np.float64)
    limbs = limbs.reshape(len(xs), 3 * terms)
    limbs.flags.writeable = False
    return limbs


def _polynomial_by_limbs(checked: np.ndarray, xs: Sequence[int]) -> np.ndarray:
    """f(x) at every point as one matrix product of 21-bit limbs, exact in float64.

    With c = Σ_a c_a 2^(21a) and x^k = Σ_b v_b 2^(21b) (limbs below 2^21),
    f(x) = Σ_s 2^(21s) S_s with S_s = Σ_(a+b=s) Σ_k v_b[x, k] c_a[k]. One product of the
    points' limbs (n × 3t) by the coefficients' limbs placed at a + b (3t × 5w) gives every
    S_s: at most 3t terms below 2^42, so below 2^53 for t <= 512, and every float operation
    is on integers that float64 holds exactly, whatever order the BLAS adds in. Then
    2^(21s) ≡ 2^(21s mod 61) and y·2^k ≡ (y·2^k mod 2^61) + ⌊y·2^k / 2^61⌋ fold the five
    sums into the field.
    """
    t, w = checked.shape  # the coefficients c_0 .. c_(t-1), one row each
    limbs = ((checked[None] >> _LIMB_OFFSETS) & _LIMB_MASK).astype(np.float64)
    placed = np.zeros((3, t, 5, w), dtype=np.float64)  # [b, k, s, :] = c_(s-b)[k]
    spread = limbs.transpose(1, 0, 2)  # k, a, :
    for b in range(3):
        placed[b, :, b : b + 3, :] = spread
    sums = _power_limbs(tuple(xs), t) @ placed.reshape(3 * t, 5 * w)
    exact = sums.astype(np.uint64).reshape(len(xs), 5, w)  # each < 2^53
    terms = ((exact << _FOLD_SHIFTS) & _P) + (exact >> _FOLD_HIGH)  # < 2^61 + 2^42
    total = terms.sum(axis=1, dtype=np.uint64)  # < 5 · (2^61 + 2^42) < 2^64
    total = (total & _P) + (total >> _S61)  # < 2^61 + 3
    return np.where(total >= _P, total - _P, total)


def _stack_coefficients(coefficients: Any) -> np.ndarray:
    """Field arrays of one 1-D shape, c_0 first, as one t × w matrix, checked in one pass."""
    if not isinstance(coefficients, Sequence):
        raise ShareError("coefficients must be a sequence of field arrays, c_0 first")
    if not coefficients:
        raise ShareError("coefficients is empty: a polynomial needs at least c_0")
    for index, c in enumerate(coefficients):
        if not isinstance(c, np.ndarray) or c.dtype != np.dtype(np.uint64):
            _check_field(c, f"coefficients[{index}]")  # raises, naming the coefficient
    shape = coefficients[0].shape
    if len(shape) != 1 or any(c.shape != shape for c in coefficients):
        raise ShareError("coefficients must be 1-D field arrays of one length")
    stacked = np.stack(coefficients)  # one range check for all, not one per array
    if (stacked >= _P).any():
        for index, c in enumerate(coefficients):
            _check_field(c, f"coefficients[{index}]")  # raises, naming the first too large
    return stacked


def field_polynomial_at(
    coefficients: Sequence[np.ndarray] | np.ndarray, points: Sequence[int]
) -> np.ndarray:
    """f(x) mod p at every point, f(x) = c_0 + c_1 x + ... + c_{t-1} x^{t-1} word by word.

    ``coefficients`` are t >= 1 field arrays of one shape (w,), or one t × w field array
    (row k is c_k); the result has one row of w field elements per point. For short secrets
    (up to 32 words, up to 512 coefficients) it is one exact matrix product of 21-bit limbs
    (:func:`_polynomial_by_limbs`; the share computation of many-point splits of seeds: 10
    points and 6 coefficients of 5 words in ~37 µs, 100 and 34 in ~140, against 77 and 900
    before); otherwise Horner's rule on all points at once (2(t − 1) vector operations, not
    O(n·t)).
    """
    if isinstance(coefficients, np.ndarray):  # already the t × w matrix, c_0 first
        if coefficients.ndim != 2:
            raise ShareError("coefficients given as one array must be 2-D: t rows of w words")
        stacked = _check_field(coefficients, "coefficients")
        if not stacked.shape[0]:
            raise ShareError("coefficients is empty: a polynomial needs at least c_0")
    else:
        stacked = _stack_coefficients(coefficients)
    shape = stacked.shape[1:]
    xs = _check_points(points)
    if not xs or shape[0] == 0:
        return np.zeros((len(xs), shape[0]), dtype=np.uint64)
    if stacked.shape[0] <= _LIMB_MAX_TERMS and shape[0] <= _LIMB_MAX_WORDS:
        return _polynomial_by_limbs(stacked, xs)
    checked = list(stacked)
    column = np.array(xs, dtype=np.uint64)[:, None]
    small = max(xs) < 1 << 31
    values = np.broadcast_to(checked[-1], (len(xs), shape[0])).copy()
    for addend in reversed(checked[:-1]):
        if small:
            values = _mul_small(values, column)
        else:
            values = _mul(values, np.broadcast_to(column, values.shape).copy())
        values = _add(values, addend)
    return values


def shamir_split(
    secret: np.ndarray, *, threshold: int, points: Sequence[int], source: RandomSource
) -> list[np.ndarray]:
    """One share of ``secret`` (uint64 field elements, any shape) per point, threshold t.

    Share j is f(points[j]), evaluated by Horner's rule block by block in place.
    """
    secret = _check_field(secret, "secret")
    xs = _check_points(points)
    t = _check_threshold(threshold, len(xs))
    size = secret.size
    coefficients = [random_below(source, size, SHAMIR_PRIME) for _ in range(t - 1)]
    flat_secret = secret.reshape(-1)
    shares = [np.empty(size, dtype=np.uint64) for _ in xs]
    scratch = _Scratch(min(_BLOCK, max(size, 1)))
    # Horner: f(x) = (...((c_{t-1} x + c_{t-2}) x + ...) x + c_1) x + s
    for start in range(0, size, _BLOCK):
        stop = min(start + _BLOCK, size)
        addends = [c[start:stop] for c in reversed(coefficients[:-1])]
        addends.append(flat_secret[start:stop])
        for x, share in zip(xs, shares, strict=True):
            out = share[start:stop]
            if not coefficients:
                out[...] = addends[-1]
                continue
            out[...] = coefficients[-1][start:stop]
            for addend in addends:
                _mul_scalar_inplace(out, x, scratch)
                _add_inplace(out, addend, scratch)
    return [share.reshape(secret.shape) for share in shares]


def shamir_reconstruct(
    shares: Sequence[np.ndarray], points: Sequence[int], *, threshold: int
) -> np.ndarray:
    """The secret from the first ``threshold`` of the given shares (Lagrange at 0).

    ``shares[i]`` belongs to ``points[i]``. Shares beyond the first ``threshold`` are not
    used (and not checked for consistency).
    """
    if isinstance(shares, np.ndarray) or not isinstance(shares, Sequence):
        raise ShareError("shares must be a sequence of arrays, one per point")
    xs = _check_points(points)
    if len(shares) != len(xs):
        raise ShareError(f"got {len(shares)} shares but {len(xs)} points; give one point per share")
    t = _as_share_count(threshold, "threshold")
    if t < 1:
        raise ShareError("threshold must be at least 1")
    if len(shares) < t:
        raise ShareError(
            f"too few shares: got {len(shares)}, the threshold is {t}; wait for more members"
        )
    used = [_check_field(share, f"shares[{index}]") for index, share in enumerate(shares[:t])]
    shape = used[0].shape
    for index, share in enumerate(used):
        if share.shape != shape:
            raise ShareError(
                f"shares[{index}] has shape {share.shape}, expected {shape} like shares[0]"
            )
    lambdas = lagrange_coefficients_at_zero(xs[:t])
    size = used[0].size
    flats = [share.reshape(-1) for share in used]
    if size <= SMALL_WORDS:  # a seed's few words: one numpy call per operation costs more
        columns = [flat.tolist() for flat in flats]
        words = [
            sum(lam * column[w] for lam, column in zip(lambdas, columns, strict=True))
            % SHAMIR_PRIME
            for w in range(size)
        ]
        return np.array(words, dtype=np.uint64).reshape(shape)
    total = np.empty(size, dtype=np.uint64)
    term = np.empty(min(_BLOCK, max(size, 1)), dtype=np.uint64)
    scratch = _Scratch(term.size)
    for start in range(0, size, _BLOCK):
        stop = min(start + _BLOCK, size)
        out = total[start:stop]
        out[...] = flats[0][start:stop]
        _mul_scalar_inplace(out, lambdas[0], scratch)
        block = term[: stop - start]
        for flat, coefficient in zip(flats[1:], lambdas[1:], strict=True):
            block[...] = flat[start:stop]
            _mul_scalar_inplace(block, coefficient, scratch)
            _add_inplace(out, block, scratch)
    return total.reshape(shape)


def shamir_reconstruct_each(
    rows: np.ndarray, points: Sequence[Sequence[int]], *, threshold: int
) -> np.ndarray:
    """Many small secrets, each interpolated at 0 from its own points: ``rows[k, j]`` is the
    share of secret k at ``points[k][j]``; returns one row of words per secret.

    ``rows`` is a (secrets, shares, words) uint64 array with at most :data:`SMALL_WORDS`
    words and at least ``threshold`` shares per secret (the first ``threshold`` are used).
    The same words as :func:`shamir_reconstruct` secret by secret, checked once for all and
    summed in Python integers: the server rebuilds every member's seed each round, and under
    sparse pairing every member's holders differ.
    """
    if not isinstance(rows, np.ndarray) or rows.ndim != 3:
        raise ShareError("rows must be a 3-D array: secrets x shares x words")
    _check_field(rows, "rows")
    secrets, available, size = rows.shape
    if size > SMALL_WORDS:
        raise ShareError(
            f"rows holds secrets of {size} words; at most {SMALL_WORDS} here "
            "(use shamir_reconstruct for long secrets)"
        )
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
        raise ShareError("points must be a sequence of point sequences, one per secret")
    if len(points) != secrets:
        raise ShareError(f"got {secrets} secrets but {len(points)} point sequences")
    t = _check_threshold(threshold, available)
    out = []
    for index, (secret, xs) in enumerate(zip(rows.tolist(), points, strict=True)):
        if len(xs) != available:
            raise ShareError(f"points[{index}] has {len(xs)} points for {available} shares")
        lambdas = _lagrange_at_zero(tuple(_check_points(xs)[:t]))
        # word by word: Σ_j λ_j · share_j[w] mod p (exact, in Python integers)
        out.append([sum(map(operator.mul, lambdas, column)) % SHAMIR_PRIME
                    for column in zip(*secret[:t], strict=True)])  # fmt: skip
    return np.array(out, dtype=np.uint64).reshape(secrets, size)
