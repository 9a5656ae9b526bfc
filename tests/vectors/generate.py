"""Known-answer vectors of ssddl.hazmat, written as JSON (hex) next to this script.

The files pin the outputs of the primitives: a refactor that changes any of them must fail
tests/hazmat/test_hazmat_vectors.py. Regenerate them only on purpose, when an output is
meant to change (and say so in the change log):

    python tests/vectors/generate.py            # check: do the files match the code?
    python tests/vectors/generate.py --write    # rewrite the files

Arrays are hex of their little-endian bytes; floats are ``float.hex`` strings. The RFC 7748
and RFC 8032 entries are copied from the RFCs, not computed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

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
    additive_split,
    decode,
    derive_key,
    derive_nonce,
    encode,
    exchange_key_statement,
    keystream_words,
    pair_secret,
    prf,
    random_below,
    random_words,
    ring_to_field,
    seal,
    shamir_split,
    share_associated_data,
    sign_exchange_key,
)
from ssddl.hazmat.prg import DEFAULT_CHUNK_WORDS

HERE = Path(__file__).resolve().parent


def seed(label: str) -> bytes:
    """A fixed 32-byte seed or key for a vector, named by ``label``."""
    return hashlib.sha256(b"ssddl known-answer vector: " + label.encode()).digest()


def seeded(label: str) -> InsecureSeededRandom:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomWarning)
        return InsecureSeededRandom(seed(label))


def words_hex(words: np.ndarray) -> str:
    """Hex of the little-endian bytes of an unsigned-integer array."""
    return np.ascontiguousarray(words, dtype=words.dtype.newbyteorder("<")).tobytes().hex()


# --- RFC vectors (copied from the RFCs) ----------------------------------------------------

RFC7748 = {
    "source": "RFC 7748 sections 5.2 (first vector) and 6.1",
    "scalar_mult": {
        "scalar": "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "u": "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "output": "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    },
    "diffie_hellman": {
        "alice_private": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        "alice_public": "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        "bob_private": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        "bob_public": "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        "shared": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
    },
}

RFC8032_TEST1 = {
    "source": "RFC 8032 section 7.1, TEST 1",
    "secret": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "message": "",
    "signature": (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    ),
}

# ChaCha20 block function test vector, RFC 8439 section 2.3.2 (key 00..1f, block counter 1).
RFC8439_BLOCK = {
    "source": "RFC 8439 section 2.3.2",
    "key": bytes(range(32)).hex(),
    "nonce": "000000090000004a00000000",
    "counter": 1,
    "block": (
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
    ),
}

# CTR-AES256.Encrypt, NIST SP 800-38A appendix F.5.5, first two blocks.
SP800_38A_F55 = {
    "source": "NIST SP 800-38A F.5.5 CTR-AES256.Encrypt",
    "key": "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
    "counter_block": "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
    "plaintext": "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
    "ciphertext": "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5",
}


# --- builders ------------------------------------------------------------------------------


def build_rand() -> dict[str, Any]:
    source = seeded("rand")
    first = source.random_bytes(48).hex()
    words32 = words_hex(random_words(source, 5, 32))
    words64 = words_hex(random_words(source, 5, 64))
    below_1000 = words_hex(random_below(source, 10, 1000))
    below_p = words_hex(random_below(source, 6, SHAMIR_PRIME))
    below_2_64 = words_hex(random_below(source, 3, 1 << 64))
    return {
        "about": "InsecureSeededRandom stream and samplers; draws in this order from one source",
        "seed": seed("rand").hex(),
        "random_bytes_48": first,
        "random_words_5_32": words32,
        "random_words_5_64": words64,
        "random_below_10_1000": below_1000,
        "random_below_6_p": below_p,
        "random_below_3_2pow64": below_2_64,
    }


def build_prg() -> dict[str, Any]:
    key = seed("prg key")
    nonce = derive_nonce(b"kat-session", 7, 1, 2, "mask")
    short = []
    for cipher in StreamCipher:
        for ring_bits in (32, 64):
            for k, n in ((key, nonce), (bytes(range(32)), bytes(range(12)))):
                words = keystream_words(k, n, 37, ring_bits, cipher=cipher)
                short.append(
                    {
                        "cipher": cipher.value,
                        "ring_bits": ring_bits,
                        "key": k.hex(),
                        "nonce": n.hex(),
                        "count": 37,
                        "words": words_hex(words),
                    }
                )
    long = []
    count = DEFAULT_CHUNK_WORDS + 37  # crosses the default chunk boundary
    for cipher in StreamCipher:
        for ring_bits in (32, 64):
            words = keystream_words(key, nonce, count, ring_bits, cipher=cipher)
            edge = DEFAULT_CHUNK_WORDS
            long.append(
                {
                    "cipher": cipher.value,
                    "ring_bits": ring_bits,
                    "key": key.hex(),
                    "nonce": nonce.hex(),
                    "count": count,
                    "sha256": hashlib.sha256(bytes.fromhex(words_hex(words))).hexdigest(),
                    "head": words_hex(words[:4]),
                    "around_chunk_edge": words_hex(words[edge - 4 : edge + 4]),
                    "tail": words_hex(words[-4:]),
                }
            )
    nonces = [
        {
            "session_id": session.hex(),
            "round_number": r,
            "sender": i,
            "receiver": j,
            "purpose": purpose,
            "nonce": derive_nonce(session, r, i, j, purpose).hex(),
        }
        for session, r, i, j, purpose in (
            (b"kat-session", 7, 1, 2, "mask"),
            (b"kat-session", 7, 2, 1, "mask"),
            (b"", 0, 0, 0, "self-mask"),
            (bytes(range(40)), 2**64 - 1, 2**32, 5, "mask"),
        )
    ]
    return {
        "about": (
            "keystream words: AES-256-CTR counter block nonce||BE32(counter), ChaCha20 "
            "LE32(counter)||nonce, both from counter 0; words little-endian"
        ),
        "chunk_words": DEFAULT_CHUNK_WORDS,
        "short": short,
        "long": long,
        "derive_nonce": nonces,
        "rfc8439_block": RFC8439_BLOCK,
        "sp800_38a_f55": SP800_38A_F55,
    }


def build_kdf() -> dict[str, Any]:
    session = b"kat-session"
    a = ExchangeKey.from_private_bytes(seed("exchange 3"))
    b = ExchangeKey.from_private_bytes(seed("exchange 8"))
    identity = IdentityKey.from_private_bytes(seed("identity 3"))
    secret = pair_secret(a, b.public_bytes, session, 3, 8)
    return {
        "about": "X25519 + HKDF-SHA256 pair secret, Ed25519 over exchange keys, derive_key",
        "session_id": session.hex(),
        "pair": {
            "id_a": 3,
            "private_a": seed("exchange 3").hex(),
            "public_a": a.public_bytes.hex(),
            "id_b": 8,
            "private_b": seed("exchange 8").hex(),
            "public_b": b.public_bytes.hex(),
            "pair_secret": secret.hex(),
        },
        "signature": {
            "identity_private": seed("identity 3").hex(),
            "identity_public": identity.public_bytes.hex(),
            "participant_id": 3,
            "statement": exchange_key_statement(session, 3, a.public_bytes).hex(),
            "signature": sign_exchange_key(identity, session, 3, a.public_bytes).hex(),
        },
        "derive_key": [
            {
                "secret": secret.hex(),
                "purpose": purpose.hex(),
                "context": context.hex(),
                "key": derive_key(secret, purpose, context).hex(),
            }
            for purpose, context in ((b"aead", b""), (b"aead", b"round 5"), (b"self-mask", b""))
        ],
        "rfc7748": RFC7748,
        "rfc8032_test1": RFC8032_TEST1,
    }


def build_fsprng() -> dict[str, Any]:
    start = seed("fsprng")
    state = start
    rounds = []
    generator = ForwardSecurePRNG(start)
    for r in range(6):
        key = generator.take_round_key(r)
        rounds.append({"round": r, "state": state.hex(), "round_key": key.hex()})
        state = prf(state, b"next")
    jumper = ForwardSecurePRNG(start, start_round=2)
    jumper.jump_to(9)
    return {
        "about": "k_r = HMAC-SHA256(s_r, 'mask'), s_{r+1} = HMAC-SHA256(s_r, 'next')",
        "seed": start.hex(),
        "rounds": rounds,
        "jump": {"start_round": 2, "to": 9, "round_key": jumper.round_key().hex()},
    }


def build_shamir() -> dict[str, Any]:
    secret = np.array(
        [0, 1, 2, SHAMIR_PRIME - 1, 1 << 60, 123456789, (1 << 61) - 2, 987654321987654],
        dtype=np.uint64,
    )
    cases = []
    for label, threshold, points in (
        ("shamir 3 of 5", 3, [1, 2, 3, 4, 5]),
        ("shamir 2 of 3 big points", 2, [7, 1 << 40, SHAMIR_PRIME - 1]),
        ("shamir 1 of 2", 1, [4, 9]),
        ("shamir 5 of 5", 5, [10, 20, 30, 40, 50]),
    ):
        shares = shamir_split(secret, threshold=threshold, points=points, source=seeded(label))
        cases.append(
            {
                "seed": seed(label).hex(),
                "threshold": threshold,
                "points": points,
                "shares": [words_hex(share) for share in shares],
            }
        )
    additive = []
    for ring_bits in (32, 64):
        dtype = np.uint32 if ring_bits == 32 else np.uint64
        value = np.array([0, 1, 2**ring_bits - 1, 12345, 2 ** (ring_bits - 1)], dtype=dtype)
        label = f"additive {ring_bits}"
        shares = additive_split(value, 4, seeded(label))
        additive.append(
            {
                "seed": seed(label).hex(),
                "ring_bits": ring_bits,
                "secret": words_hex(value),
                "n": 4,
                "shares": [words_hex(share) for share in shares],
            }
        )
    words = np.array([0, 1, 2**64 - 1, 2**60 - 1, 2**64 - 2**60 + 1], dtype=np.uint64)
    return {
        "about": (
            "Shamir over p = 2**61 - 1 from InsecureSeededRandom(seed); coefficients "
            "c_1..c_{t-1} drawn in order with random_below(source, size, p)"
        ),
        "secret": words_hex(secret),
        "shamir": cases,
        "additive": additive,
        "ring_to_field": {"words64": words_hex(words), "field": words_hex(ring_to_field(words))},
    }


def build_codec() -> dict[str, Any]:
    values = [0.0, 0.5, -0.5, 1.0 / 3.0, -2.75, 7.999999, -8.0, 1e6, -1e6, 2.0**-30, 0.1]
    cases = []
    for ring_bits, frac_bits, clip in ((32, 16, 8.0), (64, 40, 1000.0), (32, 0, 1.0)):
        codec = FixedPoint(ring_bits=ring_bits, frac_bits=frac_bits, clip=clip)
        words = encode(np.array(values), codec)
        cases.append(
            {
                "ring_bits": ring_bits,
                "frac_bits": frac_bits,
                "clip": clip.hex(),
                "values": [v.hex() for v in values],
                "words": words_hex(words),
                "decoded": [float(v).hex() for v in decode(words, codec)],
            }
        )
    return {"about": "nearest-rounding encode/decode", "cases": cases}


def build_aead() -> dict[str, Any]:
    key = seed("aead key")
    nonce = bytes(range(12))
    plaintext = b"ring words of one share, little-endian"
    return {
        "about": "seal(): nonce || ciphertext || tag, associated data v1",
        "key": key.hex(),
        "nonce": nonce.hex(),
        "plaintext": plaintext.hex(),
        "session_id": b"kat-session".hex(),
        "round_number": 5,
        "sender": 2,
        "receiver": 7,
        "associated_data": share_associated_data(b"kat-session", 5, 2, 7).hex(),
        "sealed": {
            algorithm.value: seal(
                key,
                plaintext,
                session_id=b"kat-session",
                round_number=5,
                sender=2,
                receiver=7,
                nonce=nonce,
                algorithm=algorithm,
            ).hex()
            for algorithm in AeadAlgorithm
        },
    }


BUILDERS = {
    "hazmat_rand.json": build_rand,
    "hazmat_prg.json": build_prg,
    "hazmat_kdf.json": build_kdf,
    "hazmat_fsprng.json": build_fsprng,
    "hazmat_shamir.json": build_shamir,
    "hazmat_codec.json": build_codec,
    "hazmat_aead.json": build_aead,
}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def build_all() -> dict[str, str]:
    """File name -> exact file text the code produces now."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomWarning)
        return {name: render(builder()) for name, builder in BUILDERS.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the vector files")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build_all().items():
        path = HERE / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if args.write:
            path.write_text(text)
    if not stale:
        print("vector files match the code")
        return 0
    if args.write:
        print("rewrote: " + ", ".join(stale))
        return 0
    print("out of date (run with --write to rewrite): " + ", ".join(stale))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
