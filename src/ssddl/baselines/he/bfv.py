"""BFV (TenSEAL over Microsoft SEAL) with SIMD batching: exact integer sums, many values per
ciphertext.

Parameters. The ring dimension ``N = poly_modulus_degree`` (4096 by default; 8192 or 16384)
fixes the slots per ciphertext (``N``). The ciphertext modulus is SEAL's
``CoeffModulus::BFVDefault(N)`` — 109 bits (36+36+37) for N = 4096, 218 bits (43+43+44+44+44)
for 8192, 438 bits for 16384 — exactly the largest ``log2 q`` that the HomomorphicEncryption.org
security standard (Albrecht et al. 2018, table 1, uniform/ternary secret, classical attacks)
lists for **128-bit security** at that ``N``; SEAL refuses anything weaker. The plaintext
modulus ``t`` is the largest prime below ``2**plain_modulus_bits`` with ``t ≡ 1 (mod 2N)`` (what
batching needs); 40 bits by default. A larger ``t`` leaves less noise budget: fresh
ciphertexts keep about 25 bits of budget at N = 4096 and t ≈ 2**40, and a sum of ``k`` of them
spends about ``log2 k`` more, so millions of additions decrypt correctly; :meth:`decrypt`
checks the budget left and raises instead of returning a wrong sum.

Exactness. Slot values live in ``Z_t`` and decrypt as signed integers in ``(-t/2, t/2]``. The
backend refuses, when it is made, any ``max_summands`` with
``2 * max_summands * ceil(clip * 2**f) >= t`` and, as in SSDDL, any configuration whose sum
could overflow the ring Z_Q; so the decrypted aggregate is the integer sum, and its ring words
equal the ring sum of the encoded inputs bit for bit.

Randomness. Keys and encryption noise come from SEAL's default generator (Blake2xb seeded
from ``std::random_device``, the OS entropy source); nothing is seeded from Python. Encryption
is public-key (asymmetric). Ciphertexts are serialized by TenSEAL/SEAL with SEAL's default
compression, so the sizes are what a real deployment would send.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from ssddl.baselines.he._common import (
    HEKeyPair,
    HEPublicKey,
    HESecretKey,
    PackedBackend,
    key_id_of,
)
from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.hazmat.codec import FixedPoint

__all__ = ["BFV_COEFF_MODULUS_BITS", "BFVBackend", "batching_prime"]

#: SEAL's BFVDefault total coefficient-modulus bits per ring dimension (128-bit security).
BFV_COEFF_MODULUS_BITS = {4096: 109, 8192: 218, 16384: 438}
_PLAIN_BITS_RANGE = (20, 60)


def _import_tenseal() -> Any:
    try:
        import tenseal
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "the BFV backend needs the package tenseal: pip install 'ssddl[he]'"
        ) from None
    return tenseal


@functools.cache
def batching_prime(bits: int, degree: int) -> int:
    """The largest prime ``t < 2**bits`` with ``t ≡ 1 (mod 2*degree)`` (gmpy2's
    Miller-Rabin, 50 rounds; SEAL checks the batching property again)."""
    import gmpy2

    step = 2 * degree
    candidate = ((1 << bits) - 2) // step * step + 1
    while candidate > step:
        if gmpy2.is_prime(candidate, 50):
            return candidate
        candidate -= step
    raise ConfigurationError(f"no batching prime below 2**{bits} for N={degree}")


class BFVBackend(PackedBackend):
    """BFV over ``codec``'s fixed-point words, ``poly_modulus_degree`` values per ciphertext.

    ``max_summands`` is the largest number of fresh encryptions one sum may hold; it is
    checked against the plaintext modulus and the ring when the backend is made.
    """

    name: ClassVar[str] = "bfv"

    def __init__(
        self,
        codec: FixedPoint | None = None,
        *,
        max_summands: int,
        poly_modulus_degree: int = 4096,
        plain_modulus_bits: int = 40,
    ) -> None:
        self._ts = _import_tenseal()
        self._init_common(FixedPoint() if codec is None else codec, max_summands)
        if (
            isinstance(poly_modulus_degree, bool)
            or poly_modulus_degree not in BFV_COEFF_MODULUS_BITS
        ):
            raise ConfigurationError(
                "BFVBackend.poly_modulus_degree must be one of "
                f"{', '.join(map(str, BFV_COEFF_MODULUS_BITS))}, got {poly_modulus_degree!r}"
            )
        low, high = _PLAIN_BITS_RANGE
        if (
            isinstance(plain_modulus_bits, bool)
            or not isinstance(plain_modulus_bits, int)
            or not low <= plain_modulus_bits <= high
        ):
            raise ConfigurationError(
                f"BFVBackend.plain_modulus_bits must be an int in [{low}, {high}], "
                f"got {plain_modulus_bits!r}"
            )
        self.poly_modulus_degree = int(poly_modulus_degree)
        self.plain_modulus_bits = int(plain_modulus_bits)
        self.plain_modulus = batching_prime(self.plain_modulus_bits, self.poly_modulus_degree)
        self.coeff_modulus_bits = BFV_COEFF_MODULUS_BITS[self.poly_modulus_degree]
        self.codec.check_capacity(self.max_summands, modulus=self.plain_modulus)
        if 2 * self.max_summands * self.bound >= self.plain_modulus:
            raise ConfigurationError(
                f"BFVBackend.max_summands={self.max_summands} times the largest encoded value "
                f"{self.bound} does not fit the plaintext modulus (2**{self.plain_modulus_bits}"
                " signed); raise plain_modulus_bits or lower max_summands, clip or frac_bits"
            )

    def __repr__(self) -> str:
        return (
            f"BFVBackend(poly_modulus_degree={self.poly_modulus_degree}, "
            f"coeff_modulus_bits={self.coeff_modulus_bits}, plain_modulus={self.plain_modulus},"
            f" max_summands={self.max_summands}, codec={self.codec})"
        )

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree

    def keygen(self) -> HEKeyPair:
        ctx = self._ts.context(
            self._ts.SCHEME_TYPE.BFV, self.poly_modulus_degree, self.plain_modulus, n_threads=1
        )
        public_ctx = ctx.copy()
        public_ctx.make_context_public()
        payload = public_ctx.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
        key_id = key_id_of(payload)
        return HEKeyPair(
            HEPublicKey(self.name, key_id, payload, public_ctx),
            HESecretKey(self.name, key_id, ctx),
        )

    def _public_from_payload(self, payload: bytes) -> HEPublicKey:
        try:
            ctx = self._ts.context_from(payload, n_threads=1)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise MalformedMessage(f"not a TenSEAL context ({type(exc).__name__})") from None
        if not ctx.is_public() or not ctx.has_public_key():
            raise MalformedMessage(
                "a BFV public context must hold the public key and no secret key "
                "(make_context_public)"
            )
        data = ctx.seal_context().data.key_context_data()
        parms = data.parms()
        if (
            parms.scheme() != self._ts.SCHEME_TYPE.BFV.value
            or parms.poly_modulus_degree() != self.poly_modulus_degree
            or data.total_coeff_modulus_bit_count() != self.coeff_modulus_bits
            or data.plain_upper_half_threshold() != (self.plain_modulus + 1) // 2
        ):
            raise MalformedMessage(
                "the BFV public context has other parameters than this backend "
                f"(N={self.poly_modulus_degree}, log q={self.coeff_modulus_bits}, "
                f"t={self.plain_modulus})"
            )
        return HEPublicKey(self.name, key_id_of(payload), payload, ctx)

    def _encrypt_chunk(self, public: HEPublicKey, values: np.ndarray) -> Any:
        return self._ts.bfv_vector(public.native, values.tolist())

    def _add_parts(self, a: Any, b: Any) -> Any:
        return a + b

    def _decrypt_chunk(
        self, secret: HESecretKey, part: Any, count: int, summands: int
    ) -> np.ndarray:
        decryptor = secret.native.decryptor().data
        for ciphertext in part.ciphertext():
            if decryptor.invariant_noise_budget(ciphertext) <= 0:
                raise ConfigurationError(
                    f"a BFV ciphertext summing {summands} encryptions has no noise budget "
                    "left and would decrypt wrongly; use a smaller plain_modulus_bits or a "
                    "larger poly_modulus_degree"
                )
        values = part.decrypt(secret.native.secret_key())
        if len(values) != count:
            raise MalformedMessage(f"a BFV part decrypted to {len(values)} values, not {count}")
        return np.array(values, dtype=np.int64)

    def _part_to_bytes(self, part: Any) -> bytes:
        data: bytes = part.serialize()
        return data

    def _part_from_bytes(self, public: HEPublicKey, data: bytes, count: int) -> Any:
        try:
            part = self._ts.bfv_vector_from(public.native, data)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise MalformedMessage(f"not a BFV ciphertext ({type(exc).__name__})") from None
        if part.size() != count or len(part.ciphertext()) != 1:
            raise MalformedMessage(
                f"a BFV part must hold {count} values in one ciphertext, got {part.size()} "
                f"in {len(part.ciphertext())}"
            )
        return part
