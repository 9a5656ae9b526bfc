"""X25519 + HKDF pair secrets, Ed25519 over exchange keys, small-order points, derive_key."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

import ssddl.hazmat.keys as keys_module
from ssddl.exceptions import ConfigurationError, InvalidKey, InvalidSignature
from ssddl.hazmat import (
    KEY_SIZE,
    ExchangeKey,
    IdentityKey,
    InsecureSeededRandom,
    check_exchange_public,
    derive_key,
    exchange_key_statement,
    pair_secret,
    sign_exchange_key,
    verify_exchange_key,
    verify_signature,
)
from ssddl.hazmat.keys import LOW_ORDER_POINTS

pytestmark = pytest.mark.filterwarnings("ignore::ssddl.hazmat.InsecureRandomWarning")

P25519 = 2**255 - 19
SESSION = b"keys-test-session"


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def low_order_encodings() -> list[bytes]:
    """Every 32-byte encoding of a small-order point: u, u + p where it fits in 255 bits,
    and each of those with bit 255 set (X25519 ignores that bit)."""
    out = set()
    for point in LOW_ORDER_POINTS:
        u = int.from_bytes(point, "little")
        for value in (u, u + P25519):
            if value < 2**255:
                out.add(value.to_bytes(32, "little"))
                out.add((value + 2**255).to_bytes(32, "little"))
    return sorted(out)


ALICE = ExchangeKey.from_private_bytes(h("alice"))
BOB = ExchangeKey.from_private_bytes(h("bob"))


# --- RFC sanity checks of the wrapping -----------------------------------------------------


def test_rfc7748_x25519() -> None:
    scalar = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    out = bytes.fromhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    assert ExchangeKey.from_private_bytes(scalar)._shared(u) == out
    alice = ExchangeKey.from_private_bytes(
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    bob = ExchangeKey.from_private_bytes(
        bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    )
    assert alice.public_bytes.hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert bob.public_bytes.hex() == (
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    )
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert alice._shared(bob.public_bytes).hex() == shared
    assert bob._shared(alice.public_bytes).hex() == shared


def test_rfc8032_ed25519_test1() -> None:
    identity = IdentityKey.from_private_bytes(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert identity.public_bytes == public
    assert identity.sign(b"") == signature
    verify_signature(public, b"", signature)
    with pytest.raises(InvalidSignature):
        verify_signature(public, b"\x00", signature)


# --- key objects ---------------------------------------------------------------------------


def test_generate_from_a_source_is_deterministic_and_default_is_random() -> None:
    a = ExchangeKey.generate(InsecureSeededRandom(h("s")))
    b = ExchangeKey.generate(InsecureSeededRandom(h("s")))
    assert a.public_bytes == b.public_bytes
    assert ExchangeKey.generate().public_bytes != ExchangeKey.generate().public_bytes
    i = IdentityKey.generate(InsecureSeededRandom(h("s")))
    j = IdentityKey.generate(InsecureSeededRandom(h("s")))
    assert i.public_bytes == j.public_bytes
    assert IdentityKey.generate().public_bytes != IdentityKey.generate().public_bytes
    assert len(a.public_bytes) == len(i.public_bytes) == KEY_SIZE


def test_repr_shows_only_public_keys() -> None:
    secret = h("alice")
    assert secret.hex() not in repr(ALICE)
    assert ALICE.public_bytes.hex() in repr(ALICE)
    identity = IdentityKey.from_private_bytes(secret)
    assert secret.hex() not in repr(identity)


@pytest.mark.parametrize("private", [bytes(31), bytes(33), b"", "x" * 32])
def test_bad_private_keys(private: object) -> None:
    for cls in (ExchangeKey, IdentityKey):
        with pytest.raises(InvalidKey, match="private key") as info:
            cls.from_private_bytes(private)  # type: ignore[arg-type]
        if isinstance(private, bytes) and private:
            assert private.hex() not in str(info.value)


def test_wrong_wrapped_types() -> None:
    with pytest.raises(InvalidKey, match="Ed25519PrivateKey"):
        IdentityKey(X25519PrivateKey.generate())  # type: ignore[arg-type]
    with pytest.raises(InvalidKey, match="X25519PrivateKey"):
        ExchangeKey("key")  # type: ignore[arg-type]


def test_short_random_source_is_refused() -> None:
    class Short:
        def random_bytes(self, n: int) -> bytes:
            return bytes(n - 1)

    with pytest.raises(ConfigurationError, match="wrong number of bytes"):
        ExchangeKey.generate(Short())


# --- small-order points --------------------------------------------------------------------


@pytest.mark.parametrize("point", low_order_encodings(), ids=lambda b: b.hex()[:8] + b.hex()[-4:])
def test_small_order_points_are_rejected(point: bytes) -> None:
    with pytest.raises(InvalidKey, match="small-order"):
        check_exchange_public(point)
    with pytest.raises(InvalidKey):
        pair_secret(ALICE, point, SESSION, 1, 2)


def test_the_list_is_what_x25519_itself_refuses() -> None:
    for point in low_order_encodings():
        with pytest.raises(ValueError):
            X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(point))


def test_all_zero_shared_secret_is_caught_even_without_the_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys_module, "check_exchange_public", lambda b: None)
    with pytest.raises(InvalidKey, match="all-zero shared secret"):
        pair_secret(ALICE, bytes(32), SESSION, 1, 2)


@pytest.mark.parametrize("public", [bytes(31), bytes(33), b"", "p" * 32, None])
def test_wrong_length_exchange_keys(public: object) -> None:
    with pytest.raises(InvalidKey, match=r"exchange public key|peer_public"):
        check_exchange_public(public)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        pair_secret(ALICE, public, SESSION, 1, 2)  # type: ignore[arg-type]


def test_ordinary_keys_pass() -> None:
    check_exchange_public(BOB.public_bytes)
    check_exchange_public((9).to_bytes(32, "little"))  # the base point


# --- pair secrets --------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, 2**64 - 1), j=st.integers(0, 2**64 - 1), session=st.binary(max_size=40))
def test_pair_secret_is_symmetric(i: int, j: int, session: bytes) -> None:
    if i == j:
        return
    ab = pair_secret(ALICE, BOB.public_bytes, session, i, j)
    ba = pair_secret(BOB, ALICE.public_bytes, session, j, i)
    assert ab == ba
    assert len(ab) == KEY_SIZE


def test_pair_secret_is_bound_to_session_and_ids() -> None:
    base = pair_secret(ALICE, BOB.public_bytes, SESSION, 1, 2)
    others = {
        pair_secret(ALICE, BOB.public_bytes, SESSION + b"x", 1, 2),
        pair_secret(ALICE, BOB.public_bytes, SESSION, 1, 3),
        pair_secret(ALICE, BOB.public_bytes, SESSION, 0, 2),
        pair_secret(ALICE, BOB.public_bytes, SESSION, 2, 1),  # roles swapped: other pair keys
        pair_secret(ALICE, ExchangeKey.from_private_bytes(h("carol")).public_bytes, SESSION, 1, 2),
    }
    assert base not in others
    assert len(others) == 5


def test_pair_secret_errors() -> None:
    with pytest.raises(InvalidKey, match="distinct"):
        pair_secret(ALICE, BOB.public_bytes, SESSION, 4, 4)
    with pytest.raises(InvalidKey, match="own exchange key"):
        pair_secret(ALICE, ALICE.public_bytes, SESSION, 1, 2)
    with pytest.raises(InvalidKey, match="ExchangeKey"):
        pair_secret(h("alice"), BOB.public_bytes, SESSION, 1, 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="own_id"):
        pair_secret(ALICE, BOB.public_bytes, SESSION, -1, 2)
    with pytest.raises(ConfigurationError, match="peer_id"):
        pair_secret(ALICE, BOB.public_bytes, SESSION, 1, 2**64)
    with pytest.raises(ConfigurationError, match="session_id"):
        pair_secret(ALICE, BOB.public_bytes, "session", 1, 2)  # type: ignore[arg-type]


# --- signatures over exchange keys ---------------------------------------------------------


IDENTITY = IdentityKey.from_private_bytes(h("identity"))


def signed() -> bytes:
    return sign_exchange_key(IDENTITY, SESSION, 5, ALICE.public_bytes)


def test_sign_and_verify_exchange_key() -> None:
    signature = signed()
    assert len(signature) == 64
    verify_exchange_key(IDENTITY.public_bytes, SESSION, 5, ALICE.public_bytes, signature)
    statement = exchange_key_statement(SESSION, 5, ALICE.public_bytes)
    verify_signature(IDENTITY.public_bytes, statement, signature)


def test_statement_is_unambiguous() -> None:
    a = exchange_key_statement(b"ab", 1, ALICE.public_bytes)
    b = exchange_key_statement(b"a", 1, ALICE.public_bytes)
    assert a != b
    assert a.startswith(b"ssddl/exchange-key/v1")


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_tampered_signature_is_rejected(index: int) -> None:
    signature = bytearray(signed())
    signature[index] ^= 0x01
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_exchange_key(IDENTITY.public_bytes, SESSION, 5, ALICE.public_bytes, bytes(signature))


@pytest.mark.parametrize(
    ("session", "participant", "exchange"),
    [
        (SESSION + b"!", 5, ALICE.public_bytes),
        (SESSION, 6, ALICE.public_bytes),
        (SESSION, 5, BOB.public_bytes),
    ],
)
def test_signature_is_bound_to_session_participant_and_key(
    session: bytes, participant: int, exchange: bytes
) -> None:
    with pytest.raises(InvalidSignature):
        verify_exchange_key(IDENTITY.public_bytes, session, participant, exchange, signed())


def test_signature_under_another_identity_is_rejected() -> None:
    other = IdentityKey.from_private_bytes(h("mallory"))
    with pytest.raises(InvalidSignature):
        verify_exchange_key(other.public_bytes, SESSION, 5, ALICE.public_bytes, signed())


@pytest.mark.parametrize("signature", [b"", bytes(63), bytes(65), "s" * 64])
def test_malformed_signatures(signature: object) -> None:
    with pytest.raises(InvalidSignature):
        verify_exchange_key(
            IDENTITY.public_bytes,
            SESSION,
            5,
            ALICE.public_bytes,
            signature,  # type: ignore[arg-type]
        )


def test_malformed_keys_in_verification() -> None:
    with pytest.raises(InvalidKey, match="identity public key"):
        verify_exchange_key(bytes(31), SESSION, 5, ALICE.public_bytes, signed())
    with pytest.raises(InvalidKey, match="small-order"):
        verify_exchange_key(IDENTITY.public_bytes, SESSION, 5, bytes(32), signed())
    with pytest.raises(InvalidKey, match="small-order"):
        sign_exchange_key(IDENTITY, SESSION, 5, bytes(32))
    with pytest.raises(InvalidKey, match="IdentityKey"):
        sign_exchange_key(ALICE, SESSION, 5, ALICE.public_bytes)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="message"):
        IDENTITY.sign("text")  # type: ignore[arg-type]


# --- derive_key ----------------------------------------------------------------------------


def test_derive_key_separates_domains() -> None:
    secret = pair_secret(ALICE, BOB.public_bytes, SESSION, 1, 2)
    keys = {
        derive_key(secret, b"aead"),
        derive_key(secret, b"aead", b"round 1"),
        derive_key(secret, b"aead", b"round 2"),
        derive_key(secret, b"self-mask"),
        derive_key(secret, b"aea", b"d"),  # length prefixes keep these apart
    }
    assert len(keys) == 5
    assert all(len(k) == KEY_SIZE for k in keys)
    assert derive_key(secret, b"aead") == derive_key(bytearray(secret), b"aead")


def test_derive_key_errors() -> None:
    with pytest.raises(InvalidKey, match="at least 32 bytes"):
        derive_key(bytes(16), b"aead")
    with pytest.raises(ConfigurationError, match="purpose"):
        derive_key(bytes(32), b"")
    with pytest.raises(ConfigurationError, match="purpose"):
        derive_key(bytes(32), "aead")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="context"):
        derive_key(bytes(32), b"aead", "ctx")  # type: ignore[arg-type]


def test_a_verified_advert_is_not_checked_again_and_a_forged_one_always_is(monkeypatch):
    calls = []
    real = keys_module.verify_signature

    def counting(identity_public, message, signature):
        calls.append(signature)
        real(identity_public, message, signature)

    monkeypatch.setattr(keys_module, "verify_signature", counting)
    monkeypatch.setattr(keys_module, "_verified_adverts", {})
    identity = IdentityKey.generate(InsecureSeededRandom(h("memo")))
    public = ExchangeKey.generate(InsecureSeededRandom(h("memo-x"))).public_bytes
    good = sign_exchange_key(identity, SESSION, 5, public)
    for _ in range(3):  # N members of one simulated process check the same advert
        verify_exchange_key(identity.public_bytes, SESSION, 5, public, good)
    assert calls == [good]
    forged = bytes([good[0] ^ 1]) + good[1:]
    for _ in range(2):
        with pytest.raises(InvalidSignature):
            verify_exchange_key(identity.public_bytes, SESSION, 5, public, forged)
    # the same signature under another id or session is another statement: checked, refused
    with pytest.raises(InvalidSignature):
        verify_exchange_key(identity.public_bytes, SESSION, 6, public, good)
    with pytest.raises(InvalidSignature):
        verify_exchange_key(identity.public_bytes, SESSION + b"x", 5, public, good)
    assert calls == [good, forged, forged, good, good]


def test_the_verified_adverts_stay_bounded(monkeypatch):
    monkeypatch.setattr(keys_module, "_verified_adverts", {})
    monkeypatch.setattr(keys_module, "VERIFIED_ADVERTS_MAX", 3)
    identity = IdentityKey.generate(InsecureSeededRandom(h("bound")))
    public = ExchangeKey.generate(InsecureSeededRandom(h("bound-x"))).public_bytes
    for pid in range(1, 7):
        signature = sign_exchange_key(identity, SESSION, pid, public)
        verify_exchange_key(identity.public_bytes, SESSION, pid, public, signature)
    kept = list(keys_module._verified_adverts)
    assert len(kept) == 3  # the newest three
    assert [k[1] for k in kept] == [
        keys_module.exchange_key_statement(SESSION, pid, public) for pid in (4, 5, 6)
    ]


def test_identity_derive_key_is_per_key_and_per_purpose() -> None:
    from ssddl.hazmat.keys import IdentityKey, derive_key

    seed = bytes(range(32))
    key = IdentityKey.from_private_bytes(seed)
    state = key.derive_key(b"flower-state")
    assert len(state) == 32 and state == key.derive_key(b"flower-state")
    assert state == derive_key(seed, b"flower-state")  # HKDF of the Ed25519 seed
    assert state != key.derive_key(b"other") and state != key.derive_key(b"flower-state", b"x")
    other = IdentityKey.from_private_bytes(bytes(range(1, 33)))
    assert other.derive_key(b"flower-state") != state and seed not in state
