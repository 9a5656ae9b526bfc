"""Mask expansion: a 256-bit key and a 96-bit nonce become M uniform ring words.

The stream is AES-256-CTR (default) or ChaCha20 from ``cryptography``, its bytes read as
little-endian words (:func:`words_from_bytes`, a bijection, so every ring value including
``2**bits - 1`` is reachable and uniform). Stream layout, fixed because vectors pin it:

* AES-256-CTR: counter block = ``nonce (12 bytes) || counter (4 bytes, big-endian)``, from 0;
* ChaCha20 (RFC 8439 block function): ``counter (4 bytes, little-endian) || nonce``, from 0.

A stream is at most 2**32 blocks (64 GiB for AES, 256 GiB for ChaCha20); longer requests are
refused rather than letting the counter run into the nonce.

Memory. :func:`accumulate_keystream` adds or subtracts the stream into an existing vector in
place, ``chunk_words`` words at a time: the keystream goes through one reusable chunk buffer
(``encryptor.update_into`` over a zero chunk), and a wrapping ``numpy.add``/``subtract`` folds
it into the matching slice of the vector. Extra memory is two chunk buffers per worker, never
an M-sized temporary.

Speed. One thread alternates keystream generation and the fold. :func:`combine_keystreams`
folds every stream's chunk into the same slice of the output before moving on, so the slice
stays in the cache and the output goes through memory once, not once per stream. The fold
still costs time the raw cipher does not spend; for vectors of at least
:data:`AUTO_PARALLEL_BYTES` the default (``workers=None``) therefore cuts the vector into
64-byte-aligned segments, each expanded from its own counter offset, the first in the calling
thread and the others in a small reused pool of helper threads (``cryptography`` and numpy
release the GIL). Any number of workers gives the same result.
An AES stream of at least :data:`GCM_MIN_BYTES` from counter block 0 is written by
``cryptography``'s AES-GCM encryptor where that is the faster on the machine (measured once per
process, :func:`keystream_engine`): GCM encrypts with this very CTR stream from its third block
on, so the bytes are the same; the first two blocks come from the CTR encryptor and the tag is
never used (:class:`_GcmKeystream`).
Results measured on the project machines are in ``benchmarks/bench_hazmat.py``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from ssddl.exceptions import ConfigurationError, ShareError
from ssddl.hazmat._checks import as_bytes, as_int, as_key, lp, u64_address
from ssddl.hazmat.rand import ring_dtype, words_from_bytes

__all__ = [
    "AUTO_PARALLEL_BYTES",
    "DEFAULT_CHUNK_WORDS",
    "GCM_MIN_BYTES",
    "MAX_AUTO_WORKERS",
    "NONCE_SIZE",
    "StreamCipher",
    "accumulate_keystream",
    "combine_keystreams",
    "derive_nonce",
    "iter_keystream_words",
    "keystream_engine",
    "keystream_into",
    "keystream_words",
    "words_from_bytes",
]

NONCE_SIZE = 12
KEY_SIZE = 32
DEFAULT_CHUNK_WORDS = 1 << 16
_MAX_BLOCKS = 1 << 32
_ALIGN_BYTES = 64  # a multiple of both block sizes: segments can start at any such offset
_NONCE_LABEL = b"ssddl/prg-nonce/v1"
#: Below this many bytes of keystream, ``workers=None`` uses one thread (handing a smaller
#: job to a helper thread costs about as much as it saves on a shared machine).
AUTO_PARALLEL_BYTES = 8 << 20
#: At most this many threads when ``workers=None``.
MAX_AUTO_WORKERS = 4


class StreamCipher(str, Enum):
    """The keystream generator behind a mask."""

    AES_CTR = "aes-256-ctr"
    CHACHA20 = "chacha20"

    @property
    def block_size(self) -> int:
        """Bytes per counter increment: 16 for AES, 64 for ChaCha20."""
        return 16 if self is StreamCipher.AES_CTR else 64


def _as_cipher(cipher: Any) -> StreamCipher:
    try:
        return StreamCipher(cipher)
    except ValueError:
        raise ConfigurationError(
            "cipher must be a StreamCipher ('aes-256-ctr' or 'chacha20')"
        ) from None


def _as_nonce(nonce: Any) -> bytes:
    value = as_bytes(nonce, "nonce")
    if len(value) != NONCE_SIZE:
        raise ConfigurationError(
            f"nonce must be exactly {NONCE_SIZE} bytes, got {len(value)}; make it with "
            "derive_nonce()"
        )
    return value


def _as_chunk_words(chunk_words: Any) -> int:
    return as_int(chunk_words, "chunk_words", low=1)


def _check_length(count: int, itemsize: int, cipher: StreamCipher) -> None:
    if count * itemsize > _MAX_BLOCKS * cipher.block_size:
        raise ConfigurationError(
            f"count is too large for one {cipher.value} stream (at most 2**32 blocks of "
            f"{cipher.block_size} bytes); split the vector and use one nonce per part"
        )


def _encryptor(key: bytes, nonce: bytes, cipher: StreamCipher, block: int = 0) -> CipherContext:
    """An encryptor positioned at counter ``block`` of the stream."""
    if cipher is StreamCipher.AES_CTR:
        return Cipher(algorithms.AES(key), modes.CTR(nonce + block.to_bytes(4, "big"))).encryptor()
    return Cipher(algorithms.ChaCha20(key, block.to_bytes(4, "little") + nonce), None).encryptor()


#: AES-GCM with a 96-bit IV encrypts with CTR from counter block ``IV || 2`` (NIST SP 800-38D,
#: GCTR from inc32(J0), J0 = IV || 0^31 || 1), so its ciphertext of zeros is this module's
#: AES-256-CTR stream from block 2 on: blocks 0 and 1 (32 bytes) come from a CTR encryptor.
_GCM_FIRST_BLOCK = 2
_GCM_HEAD_BYTES = _GCM_FIRST_BLOCK * 16
#: Shorter streams use the CTR encryptor: a GCM encryptor's set-up (its first write) costs
#: about 8 µs more, which 256 KiB of faster keystream repays on the machines measured.
GCM_MIN_BYTES = 1 << 18


class _GcmKeystream:
    """The AES-256-CTR stream from counter block 0, its bulk written by ``cryptography``'s
    AES-GCM encryptor (the tag is never computed or used: the bytes are the CTR keystream,
    checked against the CTR encryptor by the tests). Where OpenSSL has a stitched AES-GCM
    (VAES and AVX-512 on this project's machine) it writes about 10.7 GB/s warm against
    AES-CTR's 8.3, and a combined mask of n streams of M words builds in 0.93× the time at
    n = 35, M = 85,003 and 0.79× at M = 10**7. A stream is at most 2**32 blocks, so GCM's
    at most 2**32 - 2 blocks always suffice."""

    __slots__ = ("_head", "_left", "_tail")

    def __init__(self, key: bytes, nonce: bytes) -> None:
        self._head = Cipher(algorithms.AES(key), modes.CTR(nonce + bytes(4))).encryptor()
        self._tail = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        self._left = _GCM_HEAD_BYTES

    def update_into(self, data: Any, buf: Any) -> int:
        size = len(data)
        if not self._left:
            return self._tail.update_into(data, buf)
        data, buf = memoryview(data), memoryview(buf)  # slices of these write through
        head = min(self._left, size)
        self._head.update_into(data[:head], buf[:head])
        self._left -= head
        if head < size:
            self._tail.update_into(data[head:], buf[head:size])
        return size


def _gcm_is_faster() -> bool:
    """Whether this machine's AES-GCM encryptor writes keystream clearly faster (by 5% or
    more) than its AES-CTR encryptor: the best of five 256 KiB writes by each, warm, measured
    once per process (about a millisecond; the bytes are the same either way)."""
    if not _ENGINE:
        data = bytes(1 << 18)
        out = bytearray(len(data))
        key, nonce = bytes(KEY_SIZE), bytes(NONCE_SIZE)
        writers = {
            True: Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor(),
            False: _encryptor(key, nonce, StreamCipher.AES_CTR),
        }
        best = {True: float("inf"), False: float("inf")}
        for _ in range(5):
            for gcm, writer in writers.items():
                started = time.perf_counter()
                writer.update_into(data, out)
                best[gcm] = min(best[gcm], time.perf_counter() - started)
        _ENGINE.append(best[True] < 0.95 * best[False])
    return _ENGINE[0]


_ENGINE: list[bool] = []


def keystream_engine() -> str:
    """Which of ``cryptography``'s encryptors writes AES keystreams from block 0 in this
    process: ``"aes-gcm"`` or ``"aes-ctr"`` (the same bytes; see :class:`_GcmKeystream`)."""
    return "aes-gcm" if _gcm_is_faster() else "aes-ctr"


def _writer(key: bytes, nonce: bytes, cipher: StreamCipher, block: int, nbytes: int) -> Any:
    """An object whose ``update_into`` writes ``nbytes`` of the stream from counter ``block``
    on: AES-GCM's encryptor (:class:`_GcmKeystream`) for an AES stream from block 0 of at
    least :data:`GCM_MIN_BYTES` where it is the faster, else the stream's own encryptor."""
    if (
        cipher is StreamCipher.AES_CTR
        and block == 0
        and nbytes >= GCM_MIN_BYTES
        and _gcm_is_faster()
    ):
        return _GcmKeystream(key, nonce)
    return _encryptor(key, nonce, cipher, block)


def derive_nonce(
    session_id: bytes, round_number: int, sender: int, receiver: int, purpose: str
) -> bytes:
    """A 12-byte nonce bound to session, round, ordered pair and purpose.

    The first 12 bytes of SHA-256 over ``b"ssddl/prg-nonce/v1"``, the length-prefixed session
    id, round, sender and receiver (8 bytes big-endian each) and the length-prefixed UTF-8
    purpose.
    """
    if not isinstance(purpose, str) or not purpose:
        raise ConfigurationError("purpose must be a non-empty str, e.g. 'mask'")
    numbers = u64_address(round_number, sender, receiver)
    session = as_bytes(session_id, "session_id")
    encoded = b"".join((_NONCE_LABEL, lp(session), numbers, lp(purpose.encode("utf-8"))))
    return hashlib.sha256(encoded).digest()[:NONCE_SIZE]


def keystream_words(
    key: bytes,
    nonce: bytes,
    count: int,
    ring_bits: int,
    *,
    cipher: StreamCipher = StreamCipher.AES_CTR,
) -> np.ndarray:
    """The first ``count`` words of the stream as a new uint32/uint64 array."""
    key = as_key(key, "key", KEY_SIZE)
    nonce = _as_nonce(nonce)
    count = as_int(count, "count")
    dtype = ring_dtype(ring_bits)
    cipher = _as_cipher(cipher)
    _check_length(count, dtype.itemsize, cipher)
    out = np.empty(count, dtype=dtype.newbyteorder("<"))
    raw = out.view(np.uint8).data
    encryptor = _writer(key, nonce, cipher, 0, len(raw))
    step = DEFAULT_CHUNK_WORDS * dtype.itemsize
    zeros = memoryview(bytes(min(step, len(raw))))
    for start in range(0, len(raw), step):
        stop = min(start + step, len(raw))
        encryptor.update_into(zeros[: stop - start], raw[start:stop])
    return out.astype(dtype, copy=False)


def iter_keystream_words(
    key: bytes,
    nonce: bytes,
    count: int,
    ring_bits: int,
    *,
    cipher: StreamCipher = StreamCipher.AES_CTR,
    chunk_words: int = DEFAULT_CHUNK_WORDS,
) -> Iterator[np.ndarray]:
    """The first ``count`` words of the stream in chunks of at most ``chunk_words`` words.

    Each chunk is a new array (safe to keep); concatenated they equal
    :func:`keystream_words`. Arguments are checked when this is called, not on first use.
    """
    key = as_key(key, "key", KEY_SIZE)
    nonce = _as_nonce(nonce)
    count = as_int(count, "count")
    ring_dtype(ring_bits)
    cipher = _as_cipher(cipher)
    chunk_words = _as_chunk_words(chunk_words)
    _check_length(count, ring_dtype(ring_bits).itemsize, cipher)
    return _iter_chunks(key, nonce, count, ring_bits, cipher, chunk_words)


def _iter_chunks(
    key: bytes, nonce: bytes, count: int, ring_bits: int, cipher: StreamCipher, chunk_words: int
) -> Iterator[np.ndarray]:
    itemsize = ring_dtype(ring_bits).itemsize
    encryptor = _encryptor(key, nonce, cipher)
    zeros = bytes(min(chunk_words, count) * itemsize)
    for start in range(0, count, chunk_words):
        size = min(chunk_words, count - start) * itemsize
        yield words_from_bytes(encryptor.update(zeros[:size]), ring_bits)


class _HelperThreads:
    """A lazily made, reused pool of helper threads for :func:`accumulate_keystream`.

    Starting threads on every call would cost about as much as expanding a 10**6-word mask.
    The pool holds no data between calls. It is remade after ``os.fork`` (threads do not
    survive a fork) and when more helpers are asked for than it has.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._size = 0

    def get(self, helpers: int) -> ThreadPoolExecutor:
        with self._lock:
            pid = os.getpid()
            if self._pool is None or self._pid != pid or self._size < helpers:
                old = self._pool if self._pid == pid else None
                self._pool = ThreadPoolExecutor(
                    max_workers=helpers, thread_name_prefix="ssddl-keystream"
                )
                self._pid, self._size = pid, helpers
                if old is not None:
                    old.shutdown(wait=False)  # queued work still runs, then its threads end
            return self._pool


_helpers = _HelperThreads()


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not available on this platform
        return os.cpu_count() or 1


def _auto_workers(nbytes: int) -> int:
    """One worker for small vectors (a thread costs more than it saves), else one per CPU."""
    if nbytes < AUTO_PARALLEL_BYTES:
        return 1
    return max(1, min(MAX_AUTO_WORKERS, _available_cpus()))


class _Buffers(threading.local):
    """Per-thread scratch reused across calls: one keystream chunk buffer per size.

    Mask expansion runs once per pair and round; allocating (and zero-filling) a fresh
    256 KiB input and output buffer on every call cost more than the fold of a small vector.
    The zero input is shared read-only by all threads (:func:`_zeros`).
    """

    def __init__(self) -> None:
        self.stream: dict[int, bytearray] = {}

    def get(self, nbytes: int) -> bytearray:
        buffer = self.stream.get(nbytes)
        if buffer is None:
            buffer = self.stream[nbytes] = bytearray(nbytes)
        return buffer


_buffers = _Buffers()
_ZEROS: list[memoryview] = [memoryview(bytes(0))]


def _zeros(nbytes: int) -> memoryview:
    """A read-only zero buffer of at least ``nbytes`` bytes, made once and grown on need."""
    zeros = _ZEROS[0]
    if len(zeros) < nbytes:
        zeros = _ZEROS[0] = memoryview(bytes(nbytes))
    return zeros


def _write_segment(
    out: np.ndarray, key: bytes, nonce: bytes, cipher: StreamCipher, block: int, chunk_words: int
) -> None:
    """Write the stream from counter ``block`` on into the contiguous 1-D slice ``out``."""
    raw = out.view(np.uint8).data
    step = chunk_words * out.dtype.itemsize
    zeros = _zeros(min(step, len(raw)))
    update_into = _writer(key, nonce, cipher, block, len(raw)).update_into
    for start in range(0, len(raw), step):
        stop = min(start + step, len(raw))
        update_into(zeros[: stop - start], raw[start:stop])


def _check_acc(acc: Any, name: str) -> np.ndarray:
    if not isinstance(acc, np.ndarray):
        raise ShareError(f"{name} must be a numpy array of ring words (uint32 or uint64)")
    if acc.dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
        raise ShareError(f"{name} must have dtype uint32 or uint64 (ring words), got {acc.dtype}")
    if acc.ndim != 1:
        raise ShareError(f"{name} must be 1-D, got {acc.ndim} dimensions; pass {name}.reshape(-1)")
    if not acc.flags.writeable:
        raise ShareError(f"{name} must be writeable; pass a copy ({name}.copy())")
    return acc


def _check_out(out: Any) -> np.ndarray:
    """An output array of ring words that a keystream can be written into in segments."""
    out = _check_acc(out, "out")
    if not out.flags.c_contiguous:
        raise ShareError("out must be contiguous; pass np.ascontiguousarray(out)")
    return out


def _stream_args(
    words: np.ndarray, key: Any, nonce: Any, cipher: Any, chunk_words: Any
) -> tuple[bytes, bytes, StreamCipher, int]:
    """The checked stream arguments for a vector of ``words`` (length within one stream)."""
    checked = _as_cipher(cipher)
    _check_length(words.size, words.dtype.itemsize, checked)
    return as_key(key, "key", KEY_SIZE), _as_nonce(nonce), checked, _as_chunk_words(chunk_words)


def _run_segments(
    acc: np.ndarray,
    cipher: StreamCipher,
    workers: int | None,
    job: Callable[[np.ndarray, int], None],
) -> None:
    """Run ``job(segment, first_block)`` over 64-byte-aligned segments of ``acc``: the first
    in this thread, the others on the helper pool; every helper is done before return."""
    itemsize = acc.dtype.itemsize
    if workers is None:
        workers = _auto_workers(acc.size * itemsize)
    workers = as_int(workers, "workers", low=1)
    align = _ALIGN_BYTES // itemsize
    per_worker = -(-acc.size // workers)
    per_worker = -(-per_worker // align) * align
    if workers == 1 or per_worker >= acc.size:
        job(acc, 0)
        return
    jobs = [
        (acc[start : start + per_worker], start * itemsize // cipher.block_size)
        for start in range(0, acc.size, per_worker)
    ]
    pool = _helpers.get(len(jobs) - 1)
    futures = [pool.submit(job, segment, block) for segment, block in jobs[1:]]
    try:
        job(*jobs[0])
    finally:
        # every helper is done with ``acc`` before this returns or raises
        errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


def accumulate_keystream(
    acc: np.ndarray,
    key: bytes,
    nonce: bytes,
    *,
    sign: int,
    cipher: StreamCipher = StreamCipher.AES_CTR,
    chunk_words: int = DEFAULT_CHUNK_WORDS,
    workers: int | None = None,
) -> None:
    """``acc += sign * stream`` in place (mod Q), for the first ``acc.size`` stream words.

    ``acc`` must be a writeable 1-D uint32/uint64 array; ``sign`` is +1 or -1. Memory beyond
    ``acc`` is one chunk buffer per worker thread, reused across calls. ``workers`` threads
    share the work (the result is identical for any number); ``None`` picks one worker below
    :data:`AUTO_PARALLEL_BYTES` and otherwise up to :data:`MAX_AUTO_WORKERS`, one per
    available CPU.
    """
    acc = _check_acc(acc, "acc")
    if isinstance(sign, bool) or not isinstance(sign, (int, np.integer)) or sign not in (1, -1):
        raise ConfigurationError("sign must be +1 (add the stream) or -1 (subtract it)")
    key, nonce, cipher, chunk_words = _stream_args(acc, key, nonce, cipher, chunk_words)
    subtract = sign == -1

    def job(segment: np.ndarray, block: int) -> None:
        # fold onto what is there: one stream, none written straight in, no zeroing
        _combine_segment(segment, [(key, nonce, subtract)], -1, cipher, block, chunk_words,
                         overwrite=False)  # fmt: skip

    _run_segments(acc, cipher, workers, job)


def keystream_into(
    out: np.ndarray,
    key: bytes,
    nonce: bytes,
    *,
    cipher: StreamCipher = StreamCipher.AES_CTR,
    chunk_words: int = DEFAULT_CHUNK_WORDS,
    workers: int | None = None,
) -> None:
    """Overwrite ``out`` with the first ``out.size`` stream words (as :func:`keystream_words`).

    The cipher writes straight into ``out``: no fold, no buffer. This is how a combined mask
    starts (its first stream), before the others are folded in with
    :func:`accumulate_keystream`. ``out`` must be a writeable contiguous 1-D uint32/uint64
    array; ``workers`` as in :func:`accumulate_keystream`.
    """
    out = _check_out(out)
    key, nonce, cipher, chunk_words = _stream_args(out, key, nonce, cipher, chunk_words)
    if sys.byteorder != "little":  # ring words are the stream read little-endian
        out.fill(0)
        accumulate_keystream(out, key, nonce, sign=1, cipher=cipher, workers=workers)
        return

    def job(segment: np.ndarray, block: int) -> None:
        _write_segment(segment, key, nonce, cipher, block, chunk_words)

    _run_segments(out, cipher, workers, job)


def combine_keystreams(
    out: np.ndarray,
    streams: Sequence[tuple[bytes, bytes, int]],
    *,
    cipher: StreamCipher = StreamCipher.AES_CTR,
    chunk_words: int = DEFAULT_CHUNK_WORDS,
    workers: int | None = None,
) -> None:
    """Overwrite ``out`` with Σ sign · stream (mod Q) over ``streams`` of (key, nonce, sign).

    Equal to zeroing ``out`` and calling :func:`accumulate_keystream` once per stream, but the
    work is split once: each worker builds one 64-byte-aligned segment of ``out`` from every
    stream (the first +1 stream written straight in, no fold), so small vectors with many
    streams also use every CPU. ``workers=None`` decides by the total keystream bytes.
    """
    out = _check_out(out)
    checked = []
    for key, nonce, sign in streams:
        if isinstance(sign, bool) or sign not in (1, -1):
            raise ConfigurationError("each stream's sign must be +1 or -1")
        key, nonce, cipher, chunk_words = _stream_args(out, key, nonce, cipher, chunk_words)
        checked.append((key, nonce, sign == -1))
    first = next((i for i, (_, _, subtract) in enumerate(checked) if not subtract), -1)
    if sys.byteorder != "little":
        first = -1  # ring words are the stream read little-endian: fold every stream
    if workers is None:
        workers = _auto_workers(out.size * out.dtype.itemsize * max(len(checked), 1))
    ciph = _as_cipher(cipher)

    def job(segment: np.ndarray, block: int) -> None:
        _combine_segment(segment, checked, first, ciph, block, chunk_words)

    _run_segments(out, ciph, workers, job)


def _combine_segment(
    segment: np.ndarray,
    streams: Sequence[tuple[bytes, bytes, bool]],
    first: int,
    cipher: StreamCipher,
    block: int,
    chunk_words: int,
    *,
    overwrite: bool = True,
) -> None:
    """Overwrite the contiguous 1-D slice ``segment`` with Σ ± stream from counter ``block``
    on, chunk by chunk: every stream's chunk is folded into the same slice of ``segment``
    while it is still in the cache, so the vector goes through memory once, not once per
    stream. Stream ``first`` (an added one; −1: none) is written straight in, no fold. With
    ``overwrite=False`` (and ``first`` −1) the streams are folded onto what ``segment`` holds."""
    count = segment.size
    if count == 0:
        return
    itemsize = segment.dtype.itemsize
    chunk_words = min(chunk_words, count)
    zeros = _zeros(chunk_words * itemsize)
    buffer = _buffers.get(chunk_words * itemsize)
    keystream = np.frombuffer(buffer, dtype=segment.dtype.newbyteorder("<"))
    length = count * itemsize
    direct = _writer(*streams[first][:2], cipher, block, length).update_into if first >= 0 else None
    raw = segment.view(np.uint8).data if direct is not None else None  # contiguous then
    folds = [
        (
            _writer(key, nonce, cipher, block, length).update_into,
            np.subtract if subtract else np.add,
        )
        for index, (key, nonce, subtract) in enumerate(streams)
        if index != first
    ]
    for start in range(0, count, chunk_words):
        size = min(chunk_words, count - start)
        nbytes = size * itemsize
        row = segment[start : start + size]
        if direct is not None and raw is not None:
            direct(zeros[:nbytes], raw[start * itemsize : start * itemsize + nbytes])
        elif overwrite:
            row.fill(0)
        target = buffer if size == chunk_words else memoryview(buffer)[:nbytes]
        words = keystream if size == chunk_words else keystream[:size]
        for update_into, fold in folds:
            update_into(zeros[:nbytes], target)
            fold(row, words, out=row)
