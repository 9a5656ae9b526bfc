"""Paillier encryption (``phe``, python-paillier, accelerated by ``gmpy2``) with slot packing.

Packing. A fixed-point value ``v`` (a signed integer with ``|v| <= B = ceil(clip * 2**f)``)
is stored as the non-negative ``v + B`` in a slot of ``w`` bits, and ``s`` slots are packed
into one plaintext ``P = sum_j (v_j + B) * 2**(j*w)``. Adding ``k`` ciphertexts adds the
plaintexts; each slot then holds ``sum v + k*B`` in ``[0, 2*k*B]``, so no carry crosses a slot
as long as ``2 * k * B < 2**w``. Hence

    w = bit_length(2 * max_summands * B)       (value bits + log2(summands) + 1 sign bit)
    s = (key_bits - 1) // w                    (so that P < 2**(key_bits-1) <= n)

and the decryptor subtracts ``k * B`` from each slot (``k`` travels with the ciphertext).
``add`` refuses a sum of more than ``max_summands`` encryptions, and the SSDDL capacity rule
``max_summands * clip * 2**f < Q/2`` is checked when the backend is made, so the decrypted
aggregate equals the ring sum of the encoded inputs bit for bit.

Keys. ``phe.generate_paillier_keypair`` draws each prime as
``gmpy2.next_prime(r | 2**(bits-1))`` with ``r = random.SystemRandom().getrandbits(bits)``
(``SystemRandom`` reads ``os.urandom``, the OS CSPRNG) and repeats until ``n = p*q`` has
exactly ``key_bits`` bits; the encryption nonce ``r`` comes from
``random.SystemRandom().randrange(1, n)``. phe uses ``g = n + 1``. No seed is involved, so keys
and nonces are never reproducible, also not in tests.

Security. 2048-bit keys (the default) give about 112-bit security, 3072-bit keys about 128
bits (NIST SP 800-57 Part 1, table 2, for factoring moduli). Smaller keys are accepted only
with ``insecure_test_key=True`` and warn with :class:`InsecureParametersWarning`: they exist so
tests run in seconds and must never protect real data.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ssddl.baselines.he._common import (
    HEKeyPair,
    HEPublicKey,
    HESecretKey,
    InsecureParametersWarning,
    PackedBackend,
    key_id_of,
)
from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.hazmat.codec import FixedPoint

__all__ = ["PAILLIER_KEY_BITS", "PAILLIER_TEST_KEY_BITS", "PaillierBackend"]

PAILLIER_KEY_BITS = (2048, 3072, 4096)
PAILLIER_TEST_KEY_BITS = (512, 768, 1024)


def _import_phe() -> tuple[Any, Any]:
    try:
        import gmpy2
        from phe import paillier, util
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "the Paillier backend needs the packages phe and gmpy2: pip install 'ssddl[he]'"
        ) from None
    if not util.HAVE_GMP:  # pragma: no cover - depends on the install
        raise ConfigurationError("phe does not see gmpy2; reinstall gmpy2 ('ssddl[he]')")
    return paillier, gmpy2


class PaillierBackend(PackedBackend):
    """Paillier over ``codec``'s fixed-point words, ``slots`` values per ciphertext.

    ``key_bits`` is 2048 (default), 3072 or 4096; 512, 768 or 1024 only together with
    ``insecure_test_key=True`` (tests). ``max_summands`` is the largest number of fresh
    encryptions one sum may hold (it sizes the slots).
    """

    name: ClassVar[str] = "paillier"

    def __init__(
        self,
        codec: FixedPoint | None = None,
        *,
        max_summands: int,
        key_bits: int = 2048,
        insecure_test_key: bool = False,
    ) -> None:
        self._paillier, self._gmpy2 = _import_phe()
        self._init_common(FixedPoint() if codec is None else codec, max_summands)
        if not isinstance(insecure_test_key, bool):
            raise ConfigurationError("PaillierBackend.insecure_test_key must be a bool")
        allowed = PAILLIER_KEY_BITS + (PAILLIER_TEST_KEY_BITS if insecure_test_key else ())
        if isinstance(key_bits, bool) or key_bits not in allowed:
            hint = (
                ""
                if insecure_test_key
                else f"; {', '.join(map(str, PAILLIER_TEST_KEY_BITS))} only in tests with "
                "insecure_test_key=True"
            )
            raise ConfigurationError(
                f"PaillierBackend.key_bits must be one of {', '.join(map(str, allowed))}, "
                f"got {key_bits!r}{hint}"
            )
        if key_bits in PAILLIER_TEST_KEY_BITS:
            warnings.warn(
                f"PaillierBackend with a {key_bits}-bit key is insecure: tests only",
                InsecureParametersWarning,
                stacklevel=2,
            )
        self.key_bits = int(key_bits)
        self.slot_bits = (2 * self.max_summands * self.bound).bit_length()
        self._slots = (self.key_bits - 1) // self.slot_bits
        if self._slots < 1:
            raise ConfigurationError(
                f"a {self.slot_bits}-bit slot does not fit a {self.key_bits}-bit Paillier "
                "plaintext; lower PaillierBackend.max_summands or the codec's frac_bits"
            )
        self._key_bytes = self.key_bits // 8

    def __repr__(self) -> str:
        return (
            f"PaillierBackend(key_bits={self.key_bits}, max_summands={self.max_summands}, "
            f"slot_bits={self.slot_bits}, slots={self.slots}, codec={self.codec})"
        )

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def part_bytes(self) -> int:
        """Bytes of one ciphertext on the wire: an element of Z_(n^2), big-endian."""
        return 2 * self._key_bytes

    def keygen(self) -> HEKeyPair:
        public_key, private_key = self._paillier.generate_paillier_keypair(n_length=self.key_bits)
        payload = int(public_key.n).to_bytes(self._key_bytes, "big")
        key_id = key_id_of(payload)
        return HEKeyPair(
            HEPublicKey(self.name, key_id, payload, public_key),
            HESecretKey(self.name, key_id, private_key),
        )

    def _public_from_payload(self, payload: bytes) -> HEPublicKey:
        if len(payload) != self._key_bytes:
            raise MalformedMessage(
                f"a {self.key_bits}-bit Paillier public key is {self._key_bytes} bytes, "
                f"got {len(payload)}"
            )
        n = int.from_bytes(payload, "big")
        if n.bit_length() != self.key_bits or n % 2 == 0 or self._gmpy2.is_square(n):
            raise MalformedMessage(
                f"the Paillier modulus is not an odd {self.key_bits}-bit non-square integer"
            )
        return HEPublicKey(
            self.name, key_id_of(payload), payload, self._paillier.PaillierPublicKey(n)
        )

    def _encrypt_chunk(self, public: HEPublicKey, values: np.ndarray) -> Any:
        plaintext = 0
        shift = self.slot_bits
        for value in reversed((values + self.bound).tolist()):
            plaintext = (plaintext << shift) | value
        ciphertext = public.native.raw_encrypt(plaintext)
        return self._paillier.EncryptedNumber(public.native, ciphertext, 0)

    def _add_parts(self, a: Any, b: Any) -> Any:
        # phe multiplies the ciphertexts modulo n^2 (and checks that the keys agree).
        return a + b

    def _decrypt_chunk(
        self, secret: HESecretKey, part: Any, count: int, summands: int
    ) -> np.ndarray:
        plaintext = int(secret.native.raw_decrypt(part.ciphertext(be_secure=False)))
        width = self.slot_bits
        if plaintext >> (count * width):
            raise MalformedMessage(
                "a Paillier plaintext has bits beyond its slots: the ciphertext was not made "
                "by this backend under this key"
            )
        mask = (1 << width) - 1
        slots = [(plaintext >> (j * width)) & mask for j in range(count)]
        offset = summands * self.bound
        if any(slot > 2 * offset for slot in slots):
            raise MalformedMessage(
                "a Paillier slot is out of range: the ciphertext was not made by this backend"
            )
        return np.array(slots, dtype=np.int64) - offset

    def _part_to_bytes(self, part: Any) -> bytes:
        return int(part.ciphertext(be_secure=False)).to_bytes(self.part_bytes, "big")

    def _part_from_bytes(self, public: HEPublicKey, data: bytes, count: int) -> Any:
        if len(data) != self.part_bytes:
            raise MalformedMessage(
                f"a {self.key_bits}-bit Paillier ciphertext is {self.part_bytes} bytes, "
                f"got {len(data)}"
            )
        value = int.from_bytes(data, "big")
        n = public.native.n
        if not 0 < value < public.native.nsquare or self._gmpy2.gcd(value, n) != 1:
            raise MalformedMessage("a Paillier ciphertext is not a unit modulo n^2")
        return self._paillier.EncryptedNumber(public.native, value, 0)
