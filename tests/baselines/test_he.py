"""HE back ends: decrypted sums equal the plaintext ring sums bit for bit, overflow checks,
wire round trips, and named errors on malformed blobs. One suite runs over both back ends."""

from __future__ import annotations

import contextlib
import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssddl.baselines.he import (
    BFVBackend,
    EncryptedVector,
    HEBackend,
    HEKeyPair,
    InsecureParametersWarning,
    PaillierBackend,
    batching_prime,
    sum_encrypted,
)
from ssddl.baselines.he._common import value_bound
from ssddl.exceptions import ConfigurationError, MalformedMessage, ShareError
from ssddl.hazmat.codec import FixedPoint, encode, ring_sum
from tests.baselines.conftest import CODEC, MAX_SUMMANDS, make_paillier

BACKENDS = ["paillier", "bfv"]
HEADER = 4 + 1 + 1 + 2 + 16 + 4 + 4 + 4


@pytest.fixture(params=BACKENDS)
def scheme(request: pytest.FixtureRequest) -> tuple[HEBackend, HEKeyPair]:
    backend = request.getfixturevalue(request.param)
    keys = request.getfixturevalue(f"{request.param}_keys")
    return backend, keys


# Values in and beyond ±clip, the extremes themselves included (they clip to ±clip).
values = st.one_of(
    st.floats(-6.0, 6.0, allow_nan=False),
    st.sampled_from([CODEC.clip, -CODEC.clip, 0.0, 1e9, -1e9]),
)


@st.composite
def summand_vectors(draw: st.DrawFn) -> list[np.ndarray]:
    length = draw(st.integers(0, 50))
    count = draw(st.integers(1, MAX_SUMMANDS))
    return [
        np.array(draw(st.lists(values, min_size=length, max_size=length)), dtype=np.float64)
        for _ in range(count)
    ]


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vectors=summand_vectors())
def test_decrypted_sum_is_the_ring_sum(
    name: str, vectors: list[np.ndarray], request: pytest.FixtureRequest
) -> None:
    backend: HEBackend = request.getfixturevalue(name)
    keys: HEKeyPair = request.getfixturevalue(f"{name}_keys")
    words = [encode(v, CODEC) for v in vectors]
    blobs = [backend.ciphertext_to_bytes(backend.encrypt(keys.public, w)) for w in words]
    # The server sees bytes and the public key only.
    public = backend.public_from_bytes(backend.public_to_bytes(keys.public))
    total = sum_encrypted(backend, [backend.ciphertext_from_bytes(public, b) for b in blobs])
    assert total.summands == len(vectors)
    received = backend.ciphertext_from_bytes(keys.public, backend.ciphertext_to_bytes(total))
    decrypted = backend.decrypt(keys.secret, received)
    assert decrypted.dtype == CODEC.dtype
    np.testing.assert_array_equal(decrypted, ring_sum(words))


def test_extremes_at_full_capacity(scheme: tuple[HEBackend, HEKeyPair]) -> None:
    backend, keys = scheme
    top = np.full(7, CODEC.clip)
    words = [encode(top * sign, CODEC) for sign in (1, 1, -1, 1, 1, 1, 1, 1)]
    total = sum_encrypted(backend, [backend.encrypt(keys.public, w) for w in words])
    assert total.summands == MAX_SUMMANDS
    out = backend.decrypt(keys.secret, total)
    np.testing.assert_array_equal(out, ring_sum(words))
    assert int(out.view(np.int32)[0]) == 6 * value_bound(CODEC)


def test_several_ciphertexts_per_vector(scheme: tuple[HEBackend, HEKeyPair]) -> None:
    backend, keys = scheme
    length = 2 * backend.slots + 3
    rng = np.random.default_rng(1)
    words = [encode(rng.uniform(-4, 4, length), CODEC) for _ in range(2)]
    total = backend.add(*(backend.encrypt(keys.public, w) for w in words))
    assert len(total.parts) == 3
    np.testing.assert_array_equal(backend.decrypt(keys.secret, total), ring_sum(words))


def test_ciphertext_bytes_are_real_sizes(
    paillier: PaillierBackend, paillier_keys: HEKeyPair, bfv: BFVBackend, bfv_keys: HEKeyPair
) -> None:
    words = encode(np.linspace(-1, 1, 100), CODEC)
    c = paillier.encrypt(paillier_keys.public, words)
    parts = -(-100 // paillier.slots)
    assert paillier.ciphertext_bytes(c) == HEADER + parts * (4 + 2 * 512 // 8)
    d = bfv.encrypt(bfv_keys.public, words)
    size = bfv.ciphertext_bytes(d)
    assert size == len(bfv.ciphertext_to_bytes(d))
    # A BFV ciphertext is two polynomials of degree 4096 modulo a 109-bit q, compressed.
    assert 40_000 < size < 2 * 4096 * 109 // 8 + 1000


# --- overflow and range checks -------------------------------------------------------------


def test_add_refuses_more_than_max_summands(scheme: tuple[HEBackend, HEKeyPair]) -> None:
    backend, keys = scheme
    one = backend.encrypt(keys.public, encode(np.ones(3), CODEC))
    total = sum_encrypted(backend, [one] * MAX_SUMMANDS)
    with pytest.raises(ConfigurationError, match="max_summands"):
        backend.add(total, one)


def test_paillier_slot_width_follows_value_bits_and_summands() -> None:
    backend = make_paillier(max_summands=8)
    # B = 4 * 2**16 = 2**18; 2 * 8 * 2**18 = 2**22 needs 23 bits.
    assert backend.slot_bits == 23
    assert backend.slots == 511 // 23
    assert make_paillier(max_summands=15).slot_bits == 23  # 2 * 15 * 2**18 < 2**23
    assert make_paillier(max_summands=16).slot_bits == 24


def test_ring_capacity_is_checked_when_the_backend_is_made() -> None:
    # 2**31 / 2**18 = 8192 summands would reach Q/2.
    with pytest.raises(ConfigurationError, match="summands"):
        make_paillier(max_summands=8192)
    with pytest.raises(ConfigurationError, match="summands"):
        BFVBackend(CODEC, max_summands=8192)
    make_paillier(max_summands=8191)


def test_bfv_plain_modulus_capacity_names_the_field() -> None:
    wide = FixedPoint(ring_bits=64, frac_bits=30, clip=4.0)  # B = 2**32
    with pytest.raises(ConfigurationError, match="summands"):
        BFVBackend(wide, max_summands=2**7, plain_modulus_bits=40)
    BFVBackend(wide, max_summands=2**5, plain_modulus_bits=40)


def test_encrypt_refuses_words_outside_the_codec_range(
    scheme: tuple[HEBackend, HEKeyPair],
) -> None:
    backend, keys = scheme
    words = encode(np.zeros(4), CODEC)
    words[2] = value_bound(CODEC) + 1
    with pytest.raises(ShareError, match=r"words\[2\]"):
        backend.encrypt(keys.public, words)
    with pytest.raises(ShareError, match="ring words"):
        backend.encrypt(keys.public, np.zeros(4, dtype=np.uint64))


def test_bfv_exact_or_refuses_when_noise_runs_out() -> None:
    # t close to 2**60 leaves a few bits of noise budget at N = 4096: doubling a ciphertext
    # spends about one bit each time, so decryption must stay exact, then refuse.
    backend = BFVBackend(CODEC, max_summands=2**12, plain_modulus_bits=60)
    keys = backend.keygen()
    words = encode(np.array([1.5, -2.25, 4.0]), CODEC)
    c = backend.encrypt(keys.public, words)
    expected = words.view(np.int32).astype(np.int64)
    for doublings in range(1, 13):
        c = backend.add(c, c)
        try:
            out = backend.decrypt(keys.secret, c)
        except ConfigurationError as exc:
            assert "noise budget" in str(exc)
            break
        np.testing.assert_array_equal(out.view(np.int32), expected << doublings)
    else:
        pytest.fail("the noise budget never ran out in 12 doublings")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"key_bits": 1024}, "key_bits"),
        ({"key_bits": 1000, "insecure_test_key": True}, "key_bits"),
        ({"key_bits": True}, "key_bits"),
        ({"insecure_test_key": 1}, "insecure_test_key"),
        ({"max_summands": 0}, "max_summands"),
    ],
)
def test_paillier_bad_configuration(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"max_summands": 4, **kwargs}
    with pytest.raises(ConfigurationError, match=field):
        PaillierBackend(CODEC, **args)  # type: ignore[arg-type]


def test_paillier_small_key_warns() -> None:
    with pytest.warns(InsecureParametersWarning, match="tests only"):
        PaillierBackend(CODEC, max_summands=2, key_bits=512, insecure_test_key=True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"poly_modulus_degree": 2048}, "poly_modulus_degree"),
        ({"plain_modulus_bits": 61}, "plain_modulus_bits"),
        ({"plain_modulus_bits": 40.0}, "plain_modulus_bits"),
        ({"max_summands": -1}, "max_summands"),
    ],
)
def test_bfv_bad_configuration(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"max_summands": 4, **kwargs}
    with pytest.raises(ConfigurationError, match=field):
        BFVBackend(CODEC, **args)  # type: ignore[arg-type]


def test_batching_prime_is_prime_and_batches() -> None:
    import gmpy2

    for bits, degree in [(40, 4096), (33, 8192), (60, 4096)]:
        t = batching_prime(bits, degree)
        assert t < 2**bits and t % (2 * degree) == 1 and gmpy2.is_prime(t)
        assert not any(gmpy2.is_prime(c) for c in range(t + 2 * degree, 2**bits, 2 * degree))


# --- keys and wire format ------------------------------------------------------------------


def test_decrypt_with_another_key_is_refused(scheme: tuple[HEBackend, HEKeyPair]) -> None:
    backend, keys = scheme
    other = backend.keygen()
    c = backend.encrypt(keys.public, encode(np.ones(2), CODEC))
    with pytest.raises(ConfigurationError, match="another key"):
        backend.decrypt(other.secret, c)
    with pytest.raises(MalformedMessage, match="another key"):
        backend.ciphertext_from_bytes(other.public, backend.ciphertext_to_bytes(c))
    with pytest.raises(ConfigurationError, match="different keys"):
        backend.add(c, backend.encrypt(other.public, encode(np.ones(2), CODEC)))


def test_mixing_schemes_is_refused(
    paillier: PaillierBackend, paillier_keys: HEKeyPair, bfv: BFVBackend, bfv_keys: HEKeyPair
) -> None:
    c = paillier.encrypt(paillier_keys.public, encode(np.ones(2), CODEC))
    with pytest.raises(ConfigurationError, match="bfv"):
        bfv.decrypt(bfv_keys.secret, c)
    with pytest.raises(ConfigurationError, match="bfv"):
        bfv.encrypt(paillier_keys.public, encode(np.ones(2), CODEC))
    with pytest.raises(MalformedMessage, match="scheme"):
        bfv.ciphertext_from_bytes(bfv_keys.public, paillier.ciphertext_to_bytes(c))
    with pytest.raises(MalformedMessage, match="scheme"):
        bfv.public_from_bytes(paillier.public_to_bytes(paillier_keys.public))


def test_reprs_hold_no_secret(scheme: tuple[HEBackend, HEKeyPair]) -> None:
    backend, keys = scheme
    assert "<secret>" in repr(keys.secret)
    assert "native" not in repr(keys.secret)
    assert "parts" not in repr(backend.encrypt(keys.public, encode(np.ones(1), CODEC)))


def _blob(backend: HEBackend, keys: HEKeyPair, length: int = 30) -> bytes:
    words = encode(np.linspace(-3, 3, length), CODEC)
    return backend.ciphertext_to_bytes(backend.encrypt(keys.public, words))


def test_truncated_blobs_raise(scheme: tuple[HEBackend, HEKeyPair]) -> None:
    backend, keys = scheme
    blob = _blob(backend, keys)
    for cut in (0, 3, HEADER - 1, HEADER, HEADER + 2, len(blob) // 2, len(blob) - 1):
        with pytest.raises(MalformedMessage):
            backend.ciphertext_from_bytes(keys.public, blob[:cut])
    with pytest.raises(MalformedMessage, match="trailing"):
        backend.ciphertext_from_bytes(keys.public, blob + b"\x00")


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (0, b"X", "magic"),
        (4, b"\x02", "version"),
        (6, b"\x01", "reserved"),
        (8, None, "another key"),  # one key-id byte flipped
        (24, struct.pack("<I", 10**6), "parts"),
        (28, struct.pack("<I", 0), "summands"),
        (28, struct.pack("<I", MAX_SUMMANDS + 1), "summands"),
        (32, struct.pack("<I", 7), "parts"),
    ],
)
def test_tampered_headers_raise(
    scheme: tuple[HEBackend, HEKeyPair], offset: int, value: bytes | None, match: str
) -> None:
    backend, keys = scheme
    blob = bytearray(_blob(backend, keys))
    if value is None:
        blob[offset] ^= 0xFF
    else:
        blob[offset : offset + len(value)] = value
    with pytest.raises(MalformedMessage, match=match):
        backend.ciphertext_from_bytes(keys.public, bytes(blob))


def test_paillier_ciphertext_outside_the_group_raises(
    paillier: PaillierBackend, paillier_keys: HEKeyPair
) -> None:
    blob = bytearray(_blob(paillier, paillier_keys, length=3))
    blob[HEADER + 4 : HEADER + 4 + paillier.part_bytes] = b"\xff" * paillier.part_bytes
    with pytest.raises(MalformedMessage, match="n\\^2"):
        paillier.ciphertext_from_bytes(paillier_keys.public, bytes(blob))
    blob[HEADER + 4 : HEADER + 4 + paillier.part_bytes] = b"\x00" * paillier.part_bytes
    with pytest.raises(MalformedMessage, match="n\\^2"):
        paillier.ciphertext_from_bytes(paillier_keys.public, bytes(blob))


def test_paillier_forged_plaintext_out_of_slots_raises(
    paillier: PaillierBackend, paillier_keys: HEKeyPair
) -> None:
    # Malleability is the point of HE, but a plaintext no encoder could produce is caught.
    public = paillier_keys.public.native
    forged = paillier._paillier.EncryptedNumber(public, public.raw_encrypt(public.n - 1), 0)
    c = EncryptedVector("paillier", paillier_keys.public.key_id, 3, 1, (forged,))
    with pytest.raises(MalformedMessage, match="slots"):
        paillier.decrypt(paillier_keys.secret, c)


def test_bfv_corrupt_part_raises(bfv: BFVBackend, bfv_keys: HEKeyPair) -> None:
    blob = bytearray(_blob(bfv, bfv_keys))
    blob[HEADER + 4] ^= 0xFF
    with pytest.raises(MalformedMessage, match="BFV"):
        bfv.ciphertext_from_bytes(bfv_keys.public, bytes(blob))


def test_public_key_round_trip_and_checks(scheme: tuple[HEBackend, HEKeyPair]) -> None:
    backend, keys = scheme
    data = backend.public_to_bytes(keys.public)
    again = backend.public_from_bytes(data)
    assert again.key_id == keys.public.key_id
    for bad in (b"", data[:5], b"XXXX" + data[4:], data[:8] + b"\x00" * 16):
        with pytest.raises(MalformedMessage):
            backend.public_from_bytes(bad)


def test_bfv_public_context_must_be_public_and_match(bfv: BFVBackend) -> None:
    keys = bfv.keygen()
    secret_ctx = keys.secret.native.serialize(save_secret_key=True)
    header = bfv.public_to_bytes(keys.public)[:8]
    with pytest.raises(MalformedMessage, match="no secret key"):
        bfv.public_from_bytes(header + secret_ctx)
    other = BFVBackend(CODEC, max_summands=MAX_SUMMANDS, plain_modulus_bits=33)
    with pytest.raises(MalformedMessage, match="other parameters"):
        bfv.public_from_bytes(other.public_to_bytes(other.keygen().public))


_FUZZ_BLOBS: dict[str, bytes] = {}


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_blobs_raise_only_named_errors(
    name: str, data: st.DataObject, request: pytest.FixtureRequest
) -> None:
    backend: HEBackend = request.getfixturevalue(name)
    keys: HEKeyPair = request.getfixturevalue(f"{name}_keys")
    # One blob per backend: BFV sizes vary between encryptions, and the draws must not.
    if name not in _FUZZ_BLOBS:
        _FUZZ_BLOBS[name] = _blob(backend, keys, length=5)
    blob = bytearray(_FUZZ_BLOBS[name])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        c = backend.ciphertext_from_bytes(keys.public, bytes(blob[:cut]))
    except MalformedMessage:
        return
    # What parses is a well-formed vector; decrypting it gives words or a named error.
    with contextlib.suppress(MalformedMessage, ConfigurationError):
        out = backend.decrypt(keys.secret, c)
        assert out.dtype == CODEC.dtype and out.shape == (c.length,)


def test_paillier_default_key_is_2048_bits() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend = PaillierBackend(CODEC, max_summands=4)
    assert backend.key_bits == 2048
    assert PaillierBackend(CODEC, max_summands=4, key_bits=3072).key_bits == 3072
