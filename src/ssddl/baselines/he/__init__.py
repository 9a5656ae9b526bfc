"""Additively homomorphic encryption of fixed-point vectors, for the Phong et al. baseline.

Two back ends behind one :class:`HEBackend` protocol, both from maintained libraries:

* :class:`PaillierBackend` — Paillier (``phe`` with ``gmpy2``), several fixed-point values
  packed per plaintext; 2048-bit keys by default, 3072 for 128-bit security.
* :class:`BFVBackend` — BFV with SIMD batching (TenSEAL over Microsoft SEAL), N = 4096 slots
  per ciphertext, 128-bit security per the HomomorphicEncryption.org standard; exact sums.

Both encrypt the ring words of an SSDDL :class:`~ssddl.hazmat.codec.FixedPoint` code, refuse
any configuration whose sum could overflow (the ring, a slot, or the plaintext modulus), and
decrypt a sum to exactly the ring sum of the encrypted words. Ciphertexts and public keys go
over the wire as versioned bytes (``ciphertext_to_bytes`` / ``ciphertext_from_bytes``,
``public_to_bytes`` / ``public_from_bytes``); a malformed blob raises
:class:`~ssddl.exceptions.MalformedMessage`. The packages are the ``he`` extra:
``pip install 'ssddl[he]'``; they are imported when a backend is made.
"""

from ssddl.baselines.he._common import (
    EncryptedVector,
    HEBackend,
    HEKeyPair,
    HEPublicKey,
    HESecretKey,
    InsecureParametersWarning,
    sum_encrypted,
)
from ssddl.baselines.he.bfv import BFV_COEFF_MODULUS_BITS, BFVBackend, batching_prime
from ssddl.baselines.he.paillier import PAILLIER_KEY_BITS, PAILLIER_TEST_KEY_BITS, PaillierBackend

__all__ = [
    "BFV_COEFF_MODULUS_BITS",
    "PAILLIER_KEY_BITS",
    "PAILLIER_TEST_KEY_BITS",
    "BFVBackend",
    "EncryptedVector",
    "HEBackend",
    "HEKeyPair",
    "HEPublicKey",
    "HESecretKey",
    "InsecureParametersWarning",
    "PaillierBackend",
    "batching_prime",
    "sum_encrypted",
]
