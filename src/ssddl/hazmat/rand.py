"""Sources of randomness, and uniform sampling of ring words and bounded integers.

Every mask, share, key and nonce in ssddl comes from a :class:`RandomSource` passed in by the
caller. The default is :class:`OsRandom` (``os.urandom``). :class:`InsecureSeededRandom` is a
deterministic AES-256-CTR stream for tests and recorded transcripts only: it warns with
:class:`InsecureRandomWarning` every time one is made. Nothing here touches the global
``numpy.random`` or ``random`` state.

Bytes become ring words through :func:`words_from_bytes`, which reads them as little-endian
unsigned words. That map is a bijection from ``k * w`` bytes onto ``k`` words of ``8w`` bits,
so uniform bytes give words uniform over the *whole* ring, top value ``2**bits - 1`` included.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat._checks import as_int

__all__ = [
    "InsecureRandomWarning",
    "InsecureSeededRandom",
    "OsRandom",
    "RandomSource",
    "RewindableSource",
    "random_below",
    "random_below_rows",
    "random_words",
    "ring_dtype",
    "words_from_bytes",
]

RING_BITS = (32, 64)
_SEED_SIZE = 32


class InsecureRandomWarning(UserWarning):
    """An :class:`InsecureSeededRandom` was made: its output is predictable from its seed."""


@runtime_checkable
class RandomSource(Protocol):
    """Anything that returns ``n`` random bytes on request."""

    def random_bytes(self, n: int) -> bytes:
        """Return exactly ``n`` bytes."""
        ...


def _check_count(value: Any, name: str) -> int:
    """``value`` as a non-negative int, else ConfigurationError naming ``name``."""
    return as_int(value, name)


def ring_dtype(ring_bits: int) -> np.dtype[Any]:
    """The numpy dtype of words of the ring Z_(2**ring_bits): uint32 or uint64."""
    if isinstance(ring_bits, bool) or ring_bits not in RING_BITS:
        raise ConfigurationError(
            "ring_bits must be 32 or 64 (the ring Z_Q with Q = 2**32 or 2**64); "
            "pick ring_bits=64 if 32 bits are too few for your values"
        )
    return np.dtype(np.uint32) if ring_bits == 32 else np.dtype(np.uint64)


def words_from_bytes(data: bytes | bytearray | memoryview, ring_bits: int) -> np.ndarray:
    """Read ``data`` as little-endian unsigned words of ``ring_bits`` bits.

    A bijection: ``len(data)`` must be a multiple of ``ring_bits // 8``; the result is a new,
    writable, native-order uint32/uint64 array of ``len(data) // (ring_bits // 8)`` words.
    """
    dtype = ring_dtype(ring_bits)
    view = memoryview(data).cast("B")
    if len(view) % dtype.itemsize:
        raise ConfigurationError(
            f"data must hold a whole number of {dtype.itemsize}-byte words for "
            f"ring_bits={ring_bits}; its length is {len(view)} bytes"
        )
    little = np.frombuffer(view, dtype=dtype.newbyteorder("<"))
    return little.astype(dtype, copy=True)


class OsRandom:
    """Cryptographic randomness from the operating system (``os.urandom``). The default."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` bytes from ``os.urandom``."""
        return os.urandom(_check_count(n, "n"))

    def __repr__(self) -> str:
        return "OsRandom()"


class InsecureSeededRandom:
    """A DETERMINISTIC byte stream for tests and recorded transcripts. NOT FOR REAL USE.

    The output is the AES-256-CTR keystream under the 32-byte ``seed`` (all-zero counter
    block), so anyone who knows the seed knows every mask, share and key drawn from it.
    Construction warns with :class:`InsecureRandomWarning`.
    """

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, (bytes, bytearray, memoryview)):
            raise ConfigurationError(
                f"seed must be {_SEED_SIZE} bytes, got type {type(seed).__name__}"
            )
        if len(seed) != _SEED_SIZE:
            raise ConfigurationError(
                f"seed must be exactly {_SEED_SIZE} bytes, got {len(seed)}; "
                "derive one with hashlib.sha256(label).digest()"
            )
        warnings.warn(
            "InsecureSeededRandom is predictable from its seed; use it only in tests and "
            "transcripts, never to protect real data (use OsRandom)",
            InsecureRandomWarning,
            stacklevel=2,
        )
        cipher = Cipher(algorithms.AES(bytes(seed)), modes.CTR(bytes(16)))
        self._encryptor = cipher.encryptor()

    def random_bytes(self, n: int) -> bytes:
        """Return the next ``n`` bytes of the seeded stream."""
        return self._encryptor.update(bytes(_check_count(n, "n")))

    def __repr__(self) -> str:
        return "InsecureSeededRandom(<seed hidden>)"


class RewindableSource:
    """A :class:`RandomSource` that can take back bytes drawn from it and give them out again.

    A member draws some randomness before it knows it will need it (the seed and the share
    randomness of a round, drawn when the previous round ends). When that round never comes,
    :meth:`push_back` returns those bytes, and the next draws get them first, in the order
    they were drawn: later draws come out as if the early draw had never been made, so the
    bytes a member sends do not depend on when it drew them. :meth:`recording` collects the
    bytes drawn inside a block. The bytes kept are secret; the repr shows only their count.
    """

    __slots__ = ("_back", "_log", "source")

    def __init__(self, source: RandomSource) -> None:
        self.source = _check_source(source)
        self._back = b""
        self._log: list[bytes] | None = None

    def __repr__(self) -> str:
        return f"RewindableSource({self.source!r}, kept={len(self._back)} bytes)"

    def random_bytes(self, n: int) -> bytes:
        """The next ``n`` bytes: first those pushed back, then the source's."""
        if self._back:
            n = _check_count(n, "n")
            data, self._back = self._back[:n], self._back[n:]
            if len(data) < n:
                data += _draw(self.source, n - len(data))
        else:
            data = _draw(self.source, n)
        if self._log is not None:
            self._log.append(data)
        return data

    def push_back(self, data: bytes) -> None:
        """Give back ``data``, the bytes last drawn: the next draws return them first."""
        self._back = bytes(data) + self._back

    def clear(self) -> None:
        """Forget every byte pushed back (the session ended)."""
        self._back = b""

    def recording(self) -> _Recording:
        """A context whose ``drawn`` is the bytes drawn inside it, joined."""
        return _Recording(self)


class _Recording:
    __slots__ = ("_log", "_source", "drawn")

    def __init__(self, source: RewindableSource) -> None:
        self._source = source
        self._log: list[bytes] = []
        self.drawn = b""

    def __enter__(self) -> _Recording:
        if self._source._log is not None:
            raise ConfigurationError("a RewindableSource records one block at a time")
        self._source._log = self._log
        return self

    def __exit__(self, *exc: object) -> None:
        self._source._log = None
        self.drawn = b"".join(self._log)


def _check_source(source: Any) -> RandomSource:
    if not callable(getattr(source, "random_bytes", None)):
        raise ConfigurationError(
            "source must be a RandomSource (an object with random_bytes(n)); pass OsRandom()"
        )
    return source


def _draw(source: RandomSource, n: int) -> bytes:
    data = source.random_bytes(n)
    if len(data) != n:
        raise ConfigurationError(
            f"source.random_bytes({n}) returned {len(data)} bytes; a RandomSource must "
            "return exactly the number of bytes asked for"
        )
    return data


def random_words(source: RandomSource, count: int, ring_bits: int) -> np.ndarray:
    """``count`` words uniform over the whole ring Z_(2**ring_bits), as uint32/uint64."""
    count = _check_count(count, "count")
    dtype = ring_dtype(ring_bits)
    return words_from_bytes(_draw(_check_source(source), count * dtype.itemsize), ring_bits)


def random_below_rows(source: RandomSource, rows: int, count: int, bound: int) -> np.ndarray:
    """A (rows, count) uint64 array whose rows are as from ``rows`` successive
    :func:`random_below` calls, in one draw.

    The candidates of every row are drawn at once (as many per row as :func:`random_below`
    draws first), so from a source that is one stream (:class:`OsRandom`,
    :class:`InsecureSeededRandom`) the rows equal those successive calls byte for byte —
    unless a row has too few candidates below ``bound``, which for a bound just below a power
    of two (the Shamir field) needs about ``count`` rejections of probability 2**-61 each;
    that row is then completed by a further draw (still uniform, in another order).
    """
    rows = _check_count(rows, "rows")
    count = _check_count(count, "count")
    bound = _check_count(bound, "bound")
    if not 1 <= bound <= 1 << 64:
        raise ConfigurationError("bound must satisfy 1 <= bound <= 2**64")
    source = _check_source(source)
    if rows == 0 or bound == 1 or count == 0:
        return np.zeros((rows, count), dtype=np.uint64)
    span = 1 << (bound - 1).bit_length()
    draw = _first_draw(count, span, bound)
    words = words_from_bytes(_draw(source, 8 * draw * rows), 64).reshape(rows, draw)
    words &= np.uint64(span - 1)
    if span == bound or bool((words[:, :count] < np.uint64(bound)).all()):
        return words[:, :count].copy()
    out = []
    for row in words:
        kept = row[row < np.uint64(bound)][:count]
        if kept.size < count:
            kept = np.concatenate([kept, random_below(source, count - kept.size, bound)])
        out.append(kept)
    return np.stack(out)


def _first_draw(need: int, span: int, bound: int) -> int:
    """Candidates to draw for ``need`` values below ``bound`` (masked to ``span``): enough to
    finish in one draw most of the time — the expected number of rejects, a quarter more,
    and a few spare unless nothing is ever rejected."""
    expected_rejects = -(-need * (span - bound) // bound)
    return need + expected_rejects + expected_rejects // 4 + (8 if span != bound else 0)


def random_below(source: RandomSource, count: int, bound: int) -> np.ndarray:
    """``count`` integers uniform in ``[0, bound)``, as uint64, by rejection sampling.

    Each candidate is 8 bytes read little-endian and masked to ``(bound - 1).bit_length()``
    bits; candidates ``>= bound`` are dropped, so at least half are kept. ``bound`` may be
    anything from 1 to ``2**64``; for ``bound == 1`` nothing is drawn.
    """
    count = _check_count(count, "count")
    bound = _check_count(bound, "bound")
    if not 1 <= bound <= 1 << 64:
        raise ConfigurationError("bound must satisfy 1 <= bound <= 2**64")
    source = _check_source(source)
    out = np.zeros(count, dtype=np.uint64)
    if bound == 1 or count == 0:
        return out
    bits = (bound - 1).bit_length()
    span = 1 << bits
    mask = np.uint64(span - 1)
    filled = 0
    while filled < count:
        draw = _first_draw(count - filled, span, bound)
        candidates = words_from_bytes(_draw(source, 8 * draw), 64)
        candidates &= mask
        if span != bound:
            candidates = candidates[candidates < np.uint64(bound)]
        take = min(count - filled, candidates.size)
        out[filled : filled + take] = candidates[:take]
        filled += take
    return out
