"""Known-answer tests: the implementation against the vector files in tests/vectors.

The files were written once by tests/vectors/generate.py; a change of any output fails here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ssddl.hazmat import (
    SHAMIR_PRIME,
    AeadAlgorithm,
    ExchangeKey,
    FixedPoint,
    ForwardSecurePRNG,
    IdentityKey,
    InsecureRandomWarning,
    InsecureSeededRandom,
    StreamCipher,
    accumulate_keystream,
    additive_reconstruct,
    additive_split,
    decode,
    derive_key,
    derive_nonce,
    encode,
    exchange_key_statement,
    iter_keystream_words,
    keystream_words,
    open_sealed,
    pair_secret,
    prf,
    random_below,
    random_words,
    ring_to_field,
    seal,
    shamir_reconstruct,
    shamir_split,
    share_associated_data,
    sign_exchange_key,
    verify_exchange_key,
)

pytestmark = pytest.mark.filterwarnings("ignore::ssddl.hazmat.InsecureRandomWarning")

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@cache
def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def source(seed_hex: str) -> InsecureSeededRandom:
    return InsecureSeededRandom(bytes.fromhex(seed_hex))


def words(hex_text: str, ring_bits: int = 64) -> np.ndarray:
    dtype = np.dtype("<u4" if ring_bits == 32 else "<u8")
    native = np.uint32 if ring_bits == 32 else np.uint64
    return np.frombuffer(bytes.fromhex(hex_text), dtype=dtype).astype(native)


def as_hex(array: np.ndarray) -> str:
    return array.astype(array.dtype.newbyteorder("<")).tobytes().hex()


# --- rand ----------------------------------------------------------------------------------


def test_rand_vectors() -> None:
    v = load("hazmat_rand.json")
    s = source(v["seed"])
    assert s.random_bytes(48).hex() == v["random_bytes_48"]
    assert as_hex(random_words(s, 5, 32)) == v["random_words_5_32"]
    assert as_hex(random_words(s, 5, 64)) == v["random_words_5_64"]
    assert as_hex(random_below(s, 10, 1000)) == v["random_below_10_1000"]
    assert as_hex(random_below(s, 6, SHAMIR_PRIME)) == v["random_below_6_p"]
    assert as_hex(random_below(s, 3, 2**64)) == v["random_below_3_2pow64"]


def test_insecure_seeded_random_is_aes_ctr_of_the_seed() -> None:
    v = load("hazmat_rand.json")
    raw = Cipher(algorithms.AES(bytes.fromhex(v["seed"])), modes.CTR(bytes(16))).encryptor()
    assert raw.update(bytes(48)).hex() == v["random_bytes_48"]


# --- prg -----------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(8))
def test_prg_short_vectors(index: int) -> None:
    case = load("hazmat_prg.json")["short"][index]
    key, nonce = bytes.fromhex(case["key"]), bytes.fromhex(case["nonce"])
    cipher, bits = StreamCipher(case["cipher"]), case["ring_bits"]
    got = keystream_words(key, nonce, case["count"], bits, cipher=cipher)
    assert as_hex(got) == case["words"]


def test_prg_aes_vectors_cross_checked_with_raw_cryptography() -> None:
    for case in load("hazmat_prg.json")["short"]:
        key, nonce = bytes.fromhex(case["key"]), bytes.fromhex(case["nonce"])
        nbytes = case["count"] * case["ring_bits"] // 8
        if case["cipher"] == "aes-256-ctr":
            ctx = Cipher(algorithms.AES(key), modes.CTR(nonce + bytes(4))).encryptor()
        else:
            ctx = Cipher(algorithms.ChaCha20(key, bytes(4) + nonce), None).encryptor()
        assert ctx.update(bytes(nbytes)).hex() == case["words"]


@pytest.mark.parametrize("index", range(4))
def test_prg_long_vectors_crossing_the_chunk_boundary(index: int) -> None:
    v = load("hazmat_prg.json")
    case = v["long"][index]
    key, nonce = bytes.fromhex(case["key"]), bytes.fromhex(case["nonce"])
    cipher, bits, count = StreamCipher(case["cipher"]), case["ring_bits"], case["count"]
    assert count > v["chunk_words"]
    edge = v["chunk_words"]

    def check(stream: np.ndarray) -> None:
        assert hashlib.sha256(bytes.fromhex(as_hex(stream))).hexdigest() == case["sha256"]
        assert as_hex(stream[:4]) == case["head"]
        assert as_hex(stream[edge - 4 : edge + 4]) == case["around_chunk_edge"]
        assert as_hex(stream[-4:]) == case["tail"]

    check(keystream_words(key, nonce, count, bits, cipher=cipher))
    check(np.concatenate(list(iter_keystream_words(key, nonce, count, bits, cipher=cipher))))
    acc = np.zeros(count, dtype=np.uint32 if bits == 32 else np.uint64)
    accumulate_keystream(acc, key, nonce, sign=1, cipher=cipher)
    check(acc)
    acc[:] = 0
    accumulate_keystream(acc, key, nonce, sign=1, cipher=cipher, chunk_words=4093, workers=2)
    check(acc)


def test_derive_nonce_vectors() -> None:
    for case in load("hazmat_prg.json")["derive_nonce"]:
        nonce = derive_nonce(
            bytes.fromhex(case["session_id"]),
            case["round_number"],
            case["sender"],
            case["receiver"],
            case["purpose"],
        )
        assert nonce.hex() == case["nonce"]


def test_prg_external_vectors_recorded() -> None:
    v = load("hazmat_prg.json")
    block = v["rfc8439_block"]
    words32 = keystream_words(
        bytes.fromhex(block["key"]), bytes.fromhex(block["nonce"]), 32, 32, cipher="chacha20"
    )
    assert as_hex(words32[16:]) == block["block"]  # block counter 1 = bytes 64..127


# --- kdf -----------------------------------------------------------------------------------


def test_pair_secret_vector() -> None:
    v = load("hazmat_kdf.json")
    pair = v["pair"]
    session = bytes.fromhex(v["session_id"])
    a = ExchangeKey.from_private_bytes(bytes.fromhex(pair["private_a"]))
    b = ExchangeKey.from_private_bytes(bytes.fromhex(pair["private_b"]))
    assert a.public_bytes.hex() == pair["public_a"]
    assert b.public_bytes.hex() == pair["public_b"]
    ids = pair["id_a"], pair["id_b"]
    assert pair_secret(a, b.public_bytes, session, *ids).hex() == pair["pair_secret"]
    assert pair_secret(b, a.public_bytes, session, *reversed(ids)).hex() == pair["pair_secret"]


def test_signature_vector() -> None:
    v = load("hazmat_kdf.json")
    sig = v["signature"]
    session = bytes.fromhex(v["session_id"])
    identity = IdentityKey.from_private_bytes(bytes.fromhex(sig["identity_private"]))
    exchange = bytes.fromhex(v["pair"]["public_a"])
    assert identity.public_bytes.hex() == sig["identity_public"]
    pid = sig["participant_id"]
    assert exchange_key_statement(session, pid, exchange).hex() == sig["statement"]
    assert sign_exchange_key(identity, session, pid, exchange).hex() == sig["signature"]
    verify_exchange_key(
        bytes.fromhex(sig["identity_public"]),
        session,
        pid,
        exchange,
        bytes.fromhex(sig["signature"]),
    )


def test_derive_key_vectors() -> None:
    for case in load("hazmat_kdf.json")["derive_key"]:
        key = derive_key(
            bytes.fromhex(case["secret"]),
            bytes.fromhex(case["purpose"]),
            bytes.fromhex(case["context"]),
        )
        assert key.hex() == case["key"]


def test_rfc_vectors_in_the_file() -> None:
    v = load("hazmat_kdf.json")
    dh = v["rfc7748"]["diffie_hellman"]
    alice = ExchangeKey.from_private_bytes(bytes.fromhex(dh["alice_private"]))
    bob = ExchangeKey.from_private_bytes(bytes.fromhex(dh["bob_private"]))
    assert alice.public_bytes.hex() == dh["alice_public"]
    assert bob.public_bytes.hex() == dh["bob_public"]
    assert alice._shared(bob.public_bytes).hex() == dh["shared"]
    mult = v["rfc7748"]["scalar_mult"]
    scalar_key = ExchangeKey.from_private_bytes(bytes.fromhex(mult["scalar"]))
    assert scalar_key._shared(bytes.fromhex(mult["u"])).hex() == mult["output"]
    ed = v["rfc8032_test1"]
    identity = IdentityKey.from_private_bytes(bytes.fromhex(ed["secret"]))
    assert identity.public_bytes.hex() == ed["public"]
    assert identity.sign(bytes.fromhex(ed["message"])).hex() == ed["signature"]


# --- fsprng --------------------------------------------------------------------------------


def test_fsprng_chain_vector() -> None:
    v = load("hazmat_fsprng.json")
    seed = bytes.fromhex(v["seed"])
    generator = ForwardSecurePRNG(seed)
    for case in v["rounds"]:
        assert generator.round == case["round"]
        assert bytes(generator._state).hex() == case["state"]
        assert prf(bytes.fromhex(case["state"]), b"mask").hex() == case["round_key"]
        assert generator.take_round_key(case["round"]).hex() == case["round_key"]
    jump = v["jump"]
    jumper = ForwardSecurePRNG(seed, start_round=jump["start_round"])
    assert jumper.take_round_key(jump["to"]).hex() == jump["round_key"]
    # the same key as round (to - start_round) of the chain from round 0
    assert (
        ForwardSecurePRNG(seed).take_round_key(jump["to"] - jump["start_round"]).hex()
        == (jump["round_key"])
    )


# --- sharing -------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(4))
def test_shamir_vectors(index: int) -> None:
    v = load("hazmat_shamir.json")
    case = v["shamir"][index]
    secret = words(v["secret"])
    shares = shamir_split(
        secret, threshold=case["threshold"], points=case["points"], source=source(case["seed"])
    )
    assert [as_hex(s) for s in shares] == case["shares"]
    recorded = [words(s) for s in case["shares"]]
    t, points = case["threshold"], case["points"]
    for start in range(len(points) - t + 1):
        chosen = list(range(start, start + t))[::-1]
        got = shamir_reconstruct(
            [recorded[k] for k in chosen], [points[k] for k in chosen], threshold=t
        )
        assert as_hex(got) == v["secret"]


@pytest.mark.parametrize("index", range(2))
def test_additive_vectors(index: int) -> None:
    case = load("hazmat_shamir.json")["additive"][index]
    bits = case["ring_bits"]
    secret = words(case["secret"], bits)
    shares = additive_split(secret, case["n"], source(case["seed"]))
    assert [as_hex(s) for s in shares] == case["shares"]
    assert as_hex(additive_reconstruct([words(s, bits) for s in case["shares"]])) == case["secret"]


def test_ring_to_field_vector() -> None:
    case = load("hazmat_shamir.json")["ring_to_field"]
    assert as_hex(ring_to_field(words(case["words64"]))) == case["field"]


# --- codec, aead ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(3))
def test_codec_vectors(index: int) -> None:
    case = load("hazmat_codec.json")["cases"][index]
    codec = FixedPoint(
        ring_bits=case["ring_bits"], frac_bits=case["frac_bits"], clip=float.fromhex(case["clip"])
    )
    values = np.array([float.fromhex(x) for x in case["values"]])
    encoded = encode(values, codec)
    assert as_hex(encoded) == case["words"]
    assert [float(x).hex() for x in decode(encoded, codec)] == case["decoded"]


@pytest.mark.parametrize("algorithm", list(AeadAlgorithm))
def test_aead_vectors(algorithm: AeadAlgorithm) -> None:
    v = load("hazmat_aead.json")
    address = {
        "session_id": bytes.fromhex(v["session_id"]),
        "round_number": v["round_number"],
        "sender": v["sender"],
        "receiver": v["receiver"],
    }
    assert share_associated_data(**address).hex() == v["associated_data"]
    key, plaintext = bytes.fromhex(v["key"]), bytes.fromhex(v["plaintext"])
    blob = seal(key, plaintext, nonce=bytes.fromhex(v["nonce"]), algorithm=algorithm, **address)
    assert blob.hex() == v["sealed"][algorithm.value]
    assert open_sealed(
        key, bytes.fromhex(v["sealed"][algorithm.value]), algorithm=algorithm, **address
    ) == (plaintext)


# --- the generator reproduces every file byte for byte -------------------------------------


def test_vector_files_are_reproduced_exactly() -> None:
    spec = importlib.util.spec_from_file_location("ssddl_vector_generator", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomWarning)
        built = generator.build_all()
    assert sorted(built) == sorted(p.name for p in VECTORS.glob("hazmat_*.json"))
    for name, text in built.items():
        assert (VECTORS / name).read_text() == text, f"{name} differs from the code's output"
