"""AEAD for shares in transit: round trip, tampering, truncation, misaddressing, errors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import ConfigurationError, InvalidCiphertext, InvalidKey
from ssddl.hazmat import AeadAlgorithm, open_sealed, seal, share_associated_data
from ssddl.hazmat.aead import NONCE_SIZE, TAG_SIZE, open_sealed_each

KEY = hashlib.sha256(b"aead test key").digest()
NONCE = bytes(range(12))
PLAINTEXT = b"one share of member 2 for member 7, as ring words"
ADDRESS: dict[str, Any] = {"session_id": b"session", "round_number": 4, "sender": 2, "receiver": 7}
ALGORITHMS = list(AeadAlgorithm)


def sealed(algorithm: AeadAlgorithm, plaintext: bytes = PLAINTEXT) -> bytes:
    return seal(KEY, plaintext, nonce=NONCE, algorithm=algorithm, **ADDRESS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=300), nonce=st.binary(min_size=12, max_size=12))
def test_round_trip(algorithm: AeadAlgorithm, plaintext: bytes, nonce: bytes) -> None:
    blob = seal(KEY, plaintext, nonce=nonce, algorithm=algorithm, **ADDRESS)
    assert len(blob) == NONCE_SIZE + len(plaintext) + TAG_SIZE
    assert blob[:NONCE_SIZE] == nonce
    assert open_sealed(KEY, blob, algorithm=algorithm, **ADDRESS) == plaintext


def test_default_is_chacha20_poly1305_and_algorithms_differ() -> None:
    default = seal(KEY, PLAINTEXT, nonce=NONCE, **ADDRESS)
    assert default == sealed(AeadAlgorithm.CHACHA20_POLY1305)
    assert default != sealed(AeadAlgorithm.AES_256_GCM)
    assert open_sealed(KEY, default, **ADDRESS) == PLAINTEXT
    with pytest.raises(InvalidCiphertext):
        open_sealed(KEY, default, algorithm=AeadAlgorithm.AES_256_GCM, **ADDRESS)
    assert open_sealed(KEY, sealed(AeadAlgorithm.AES_256_GCM), algorithm="aes-256-gcm", **ADDRESS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "region",
    ["nonce-first", "nonce-last", "ciphertext-first", "ciphertext-last", "tag-first", "tag-last"],
)
def test_flipping_any_region_is_detected(algorithm: AeadAlgorithm, region: str) -> None:
    blob = bytearray(sealed(algorithm))
    positions = {
        "nonce-first": 0,
        "nonce-last": NONCE_SIZE - 1,
        "ciphertext-first": NONCE_SIZE,
        "ciphertext-last": len(blob) - TAG_SIZE - 1,
        "tag-first": len(blob) - TAG_SIZE,
        "tag-last": len(blob) - 1,
    }
    blob[positions[region]] ^= 0x80
    with pytest.raises(InvalidCiphertext, match="failed to authenticate") as info:
        open_sealed(KEY, bytes(blob), algorithm=algorithm, **ADDRESS)
    assert PLAINTEXT.hex() not in str(info.value)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_truncation_and_extension_is_detected(algorithm: AeadAlgorithm) -> None:
    blob = sealed(algorithm, b"short share")
    for length in range(len(blob)):
        with pytest.raises(InvalidCiphertext):
            open_sealed(KEY, blob[:length], algorithm=algorithm, **ADDRESS)
    with pytest.raises(InvalidCiphertext):
        open_sealed(KEY, blob + b"\x00", algorithm=algorithm, **ADDRESS)


def test_truncated_below_nonce_and_tag_has_its_own_message() -> None:
    with pytest.raises(InvalidCiphertext, match="truncated"):
        open_sealed(KEY, bytes(NONCE_SIZE + TAG_SIZE - 1), **ADDRESS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "change",
    [
        {"session_id": b"session2"},
        {"session_id": b""},
        {"round_number": 5},
        {"round_number": 3},
        {"sender": 3},
        {"receiver": 6},
        {"sender": 7, "receiver": 2},  # the reply direction
    ],
)
def test_misaddressed_ciphertexts_fail(algorithm: AeadAlgorithm, change: dict[str, Any]) -> None:
    blob = sealed(algorithm)
    with pytest.raises(InvalidCiphertext):
        open_sealed(KEY, blob, algorithm=algorithm, **{**ADDRESS, **change})


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_key_fails(algorithm: AeadAlgorithm) -> None:
    with pytest.raises(InvalidCiphertext):
        open_sealed(bytes(32), sealed(algorithm), algorithm=algorithm, **ADDRESS)


def test_associated_data_layout() -> None:
    ad = share_associated_data(b"sid", 1, 2, 3)
    assert ad == (
        b"SSDDL-AD"
        + b"\x01"
        + (3).to_bytes(4, "big")
        + b"sid"
        + (1).to_bytes(8, "big")
        + (2).to_bytes(8, "big")
        + (3).to_bytes(8, "big")
    )
    # length prefixing: moving bytes between session id and the integers changes the data
    assert share_associated_data(b"ab", 1, 2, 3) != share_associated_data(b"a", 1, 2, 3)
    assert share_associated_data(b"s", 1, 2, 3) != share_associated_data(b"s", 1, 3, 2)


def test_associated_data_with_a_context_is_version_2_and_length_prefixed() -> None:
    ad = share_associated_data(b"sid", 1, 2, 3, context=b"model")
    assert ad == (
        b"SSDDL-AD"
        + b"\x02"
        + (3).to_bytes(4, "big")
        + b"sid"
        + (5).to_bytes(4, "big")
        + b"model"
        + (1).to_bytes(8, "big")
        + (2).to_bytes(8, "big")
        + (3).to_bytes(8, "big")
    )
    assert share_associated_data(b"sid", 1, 2, 3, context=b"") == share_associated_data(
        b"sid", 1, 2, 3
    )
    assert share_associated_data(b"sida", 1, 2, 3, context=b"b") != share_associated_data(
        b"sid", 1, 2, 3, context=b"ab"
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_blob_opens_only_under_the_context_it_was_sealed_with(algorithm: AeadAlgorithm) -> None:
    nonce = bytes(range(12))
    blob = seal(KEY, b"share", nonce=nonce, algorithm=algorithm, context=b"A" * 32, **ADDRESS)
    assert open_sealed(KEY, blob, algorithm=algorithm, context=b"A" * 32, **ADDRESS) == b"share"
    for other in (b"B" * 32, b""):
        with pytest.raises(InvalidCiphertext, match="context"):
            open_sealed(KEY, blob, algorithm=algorithm, context=other, **ADDRESS)
    with pytest.raises(InvalidCiphertext):  # and a blob sealed without one needs none
        open_sealed(KEY, sealed(algorithm), algorithm=algorithm, context=b"A" * 32, **ADDRESS)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("s", 1, 2, 3), "session_id"),
        ((b"s", -1, 2, 3), "round_number"),
        ((b"s", 1, 2**64, 3), "sender"),
        ((b"s", 1, 2, None), "receiver"),
    ],
)
def test_associated_data_errors(args: tuple[object, ...], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        share_associated_data(*args)  # type: ignore[arg-type]


def test_seal_errors() -> None:
    for key in (bytes(16), bytes(33), "k" * 32):
        with pytest.raises(InvalidKey, match="key must be") as info:
            seal(key, PLAINTEXT, nonce=NONCE, **ADDRESS)  # type: ignore[arg-type]
        assert "0000" not in str(info.value)
    for nonce in (bytes(8), bytes(24), "n" * 12):
        with pytest.raises(ConfigurationError, match="nonce"):
            seal(KEY, PLAINTEXT, nonce=nonce, **ADDRESS)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="algorithm"):
        seal(KEY, PLAINTEXT, nonce=NONCE, algorithm="xsalsa20", **ADDRESS)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="plaintext"):
        seal(KEY, "text", nonce=NONCE, **ADDRESS)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="round_number"):
        seal(KEY, PLAINTEXT, nonce=NONCE, **{**ADDRESS, "round_number": -1})


def test_open_errors() -> None:
    blob = sealed(AeadAlgorithm.CHACHA20_POLY1305)
    with pytest.raises(InvalidKey):
        open_sealed(bytes(31), blob, **ADDRESS)
    with pytest.raises(InvalidCiphertext, match="blob must be bytes"):
        open_sealed(KEY, blob.hex(), **ADDRESS)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="algorithm"):
        open_sealed(KEY, blob, algorithm="none", **ADDRESS)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sender"):
        open_sealed(KEY, blob, **{**ADDRESS, "sender": -1})


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_open_sealed_each_opens_each_blob_for_its_own_sender(algorithm: AeadAlgorithm) -> None:
    where = {k: v for k, v in ADDRESS.items() if k != "sender"}
    senders = (2, 3, 9)
    keys = [hashlib.sha256(bytes([s])).digest() for s in senders]
    plains = [bytes([s]) * (10 + s) for s in senders]
    blobs = [
        seal(k, p, nonce=NONCE, algorithm=algorithm, sender=s, **where)
        for k, p, s in zip(keys, plains, senders, strict=True)
    ]
    assert open_sealed_each(keys, blobs, senders, algorithm=algorithm, **where) == plains
    assert open_sealed_each([], [], [], algorithm=algorithm, **where) == []
    # a blob relayed under another sender's name, a swapped key, a cut blob: each refused
    for bad in (
        (keys, blobs, (2, 9, 3)),
        ((keys[1], keys[0], keys[2]), blobs, senders),
        (keys, (blobs[0], blobs[1], blobs[2][:20]), senders),
    ):
        with pytest.raises(InvalidCiphertext):
            open_sealed_each(*bad, algorithm=algorithm, **where)
    with pytest.raises(ConfigurationError, match="same length"):
        open_sealed_each(keys, blobs[:2], senders, algorithm=algorithm, **where)
