"""Low-level cryptographic primitives of ssddl. HAZARDOUS MATERIALS.

Everything here is a building block with sharp edges: pure functions over numpy arrays that
trust the caller to pick parameters, keep keys secret, never reuse a nonce, check capacity
before encoding, and pass real randomness (:class:`OsRandom`) rather than the test-only
:class:`InsecureSeededRandom`. Use the protocol layer (``ssddl.protocol``) unless you are
building such a layer yourself.

Modules: ``rand`` (randomness sources, uniform sampling), ``codec`` (fixed-point ring
encoding), ``prg`` (AES-CTR / ChaCha20 mask expansion), ``fsprng`` (forward-secure PRNG),
``keys`` (X25519, HKDF, Ed25519), ``aead`` (ChaCha20-Poly1305 / AES-GCM for shares in
transit), ``sharing`` (additive and Shamir sharing), ``noise`` (exact discrete Gaussian,
Poisson and Skellam samplers for distributed DP), ``packing`` (ring words in ``b`` bits on
the wire) and ``dp`` (L2 clipping, the randomized Hadamard rotation, conditional randomized
rounding, modular wrap-around).
"""

from ssddl.hazmat.aead import AeadAlgorithm, open_sealed, seal, share_associated_data
from ssddl.hazmat.codec import FixedPoint, decode, encode, ring_add, ring_sub, ring_sum
from ssddl.hazmat.fsprng import ForwardSecurePRNG, prf
from ssddl.hazmat.keys import (
    KEY_SIZE,
    ExchangeKey,
    IdentityKey,
    check_exchange_public,
    derive_key,
    exchange_key_statement,
    pair_secret,
    sign_exchange_key,
    verify_exchange_key,
    verify_signature,
)
from ssddl.hazmat.prg import (
    NONCE_SIZE,
    StreamCipher,
    accumulate_keystream,
    derive_nonce,
    iter_keystream_words,
    keystream_words,
    words_from_bytes,
)
from ssddl.hazmat.rand import (
    InsecureRandomWarning,
    InsecureSeededRandom,
    OsRandom,
    RandomSource,
    random_below,
    random_words,
)
from ssddl.hazmat.sharing import (
    SHAMIR_PRIME,
    additive_reconstruct,
    additive_split,
    field_add,
    field_from_signed,
    field_mul,
    field_sub,
    field_to_ring,
    field_to_signed,
    lagrange_coefficients_at_zero,
    ring_to_field,
    shamir_reconstruct,
    shamir_reconstruct_each,
    shamir_split,
)

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "SHAMIR_PRIME",
    "AeadAlgorithm",
    "ExchangeKey",
    "FixedPoint",
    "ForwardSecurePRNG",
    "IdentityKey",
    "InsecureRandomWarning",
    "InsecureSeededRandom",
    "OsRandom",
    "RandomSource",
    "StreamCipher",
    "accumulate_keystream",
    "additive_reconstruct",
    "additive_split",
    "check_exchange_public",
    "decode",
    "derive_key",
    "derive_nonce",
    "encode",
    "exchange_key_statement",
    "field_add",
    "field_from_signed",
    "field_mul",
    "field_sub",
    "field_to_ring",
    "field_to_signed",
    "iter_keystream_words",
    "keystream_words",
    "lagrange_coefficients_at_zero",
    "open_sealed",
    "pair_secret",
    "prf",
    "random_below",
    "random_words",
    "ring_add",
    "ring_sub",
    "ring_sum",
    "ring_to_field",
    "seal",
    "shamir_reconstruct",
    "shamir_reconstruct_each",
    "shamir_split",
    "share_associated_data",
    "sign_exchange_key",
    "verify_exchange_key",
    "verify_signature",
    "words_from_bytes",
]
