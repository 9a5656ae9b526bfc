"""Mask expansion: layout against raw `cryptography`, chunking, accumulation, errors, range."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import ConfigurationError, InvalidKey, ShareError
from ssddl.hazmat import (
    NONCE_SIZE,
    StreamCipher,
    accumulate_keystream,
    derive_nonce,
    iter_keystream_words,
    keystream_words,
    prg,
    ring_add,
    words_from_bytes,
)
from ssddl.hazmat.prg import AUTO_PARALLEL_BYTES, DEFAULT_CHUNK_WORDS, _auto_workers, _encryptor

KEY = hashlib.sha256(b"prg test key").digest()
NONCE = derive_nonce(b"prg-test", 3, 1, 4, "mask")
CIPHERS = list(StreamCipher)
RINGS = [32, 64]


def raw_stream(cipher: StreamCipher, key: bytes, nonce: bytes, nbytes: int) -> bytes:
    """The keystream computed straight from `cryptography`, independently of ssddl."""
    if cipher is StreamCipher.AES_CTR:
        context = Cipher(algorithms.AES(key), modes.CTR(nonce + bytes(4))).encryptor()
    else:
        context = Cipher(algorithms.ChaCha20(key, bytes(4) + nonce), None).encryptor()
    return context.update(bytes(nbytes))


def dtype_of(ring_bits: int) -> type:
    return np.uint32 if ring_bits == 32 else np.uint64


# --- layout --------------------------------------------------------------------------------


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize("ring_bits", RINGS)
def test_keystream_matches_raw_cryptography(cipher: StreamCipher, ring_bits: int) -> None:
    count = 1000
    words = keystream_words(KEY, NONCE, count, ring_bits, cipher=cipher)
    expected = np.frombuffer(raw_stream(cipher, KEY, NONCE, count * ring_bits // 8), "<u8")
    if ring_bits == 32:
        expected = np.frombuffer(expected.tobytes(), "<u4")
    assert words.dtype == np.dtype(dtype_of(ring_bits))
    assert np.array_equal(words, expected)


def test_chacha20_layout_matches_rfc8439_block() -> None:
    # RFC 8439 2.3.2: key 00..1f, nonce 000000090000004a00000000, block counter 1.
    nonce = bytes.fromhex("000000090000004a00000000")
    block_1 = bytes.fromhex(
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
    )
    words = keystream_words(bytes(range(32)), nonce, 32, 32, cipher=StreamCipher.CHACHA20)
    assert words[16:].astype("<u4").tobytes() == block_1


def test_aes_ctr_counter_block_matches_sp800_38a() -> None:
    # NIST SP 800-38A F.5.5: counter block f0..ff is nonce f0..fb with counter 0xfcfdfeff.
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    nonce = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafb")
    plain = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    expected = bytes.fromhex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5")
    assert _encryptor(key, nonce, StreamCipher.AES_CTR, 0xFCFDFEFF).update(plain) == expected


@pytest.mark.parametrize("cipher", CIPHERS)
def test_ring_64_words_are_pairs_of_ring_32_words(cipher: StreamCipher) -> None:
    w32 = keystream_words(KEY, NONCE, 64, 32, cipher=cipher)
    w64 = keystream_words(KEY, NONCE, 32, 64, cipher=cipher)
    assert w32.astype("<u4").tobytes() == w64.astype("<u8").tobytes()


def test_different_keys_nonces_ciphers_give_different_streams() -> None:
    base = keystream_words(KEY, NONCE, 8, 64)
    assert not np.array_equal(base, keystream_words(bytes(32), NONCE, 8, 64))
    assert not np.array_equal(base, keystream_words(KEY, bytes(12), 8, 64))
    assert not np.array_equal(base, keystream_words(KEY, NONCE, 8, 64, cipher="chacha20"))


# --- chunking and accumulation -------------------------------------------------------------


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize("ring_bits", RINGS)
@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, 600), chunk=st.integers(1, 200))
def test_chunked_iteration_equals_one_stream(
    cipher: StreamCipher, ring_bits: int, count: int, chunk: int
) -> None:
    whole = keystream_words(KEY, NONCE, count, ring_bits, cipher=cipher)
    parts = list(
        iter_keystream_words(KEY, NONCE, count, ring_bits, cipher=cipher, chunk_words=chunk)
    )
    assert all(0 < part.size <= chunk for part in parts)
    joined = np.concatenate(parts) if parts else np.zeros(0, whole.dtype)
    assert np.array_equal(joined, whole)


def test_iter_chunks_are_independent_arrays() -> None:
    parts = list(iter_keystream_words(KEY, NONCE, 10, 32, chunk_words=4))
    before = [p.copy() for p in parts]
    parts[0][:] = 0
    assert np.array_equal(parts[1], before[1])


def test_stream_crossing_the_default_chunk_boundary() -> None:
    count = DEFAULT_CHUNK_WORDS + 5
    whole = keystream_words(KEY, NONCE, count, 32)
    default_chunks = list(iter_keystream_words(KEY, NONCE, count, 32))
    assert [c.size for c in default_chunks] == [DEFAULT_CHUNK_WORDS, 5]
    assert np.array_equal(np.concatenate(default_chunks), whole)
    acc = np.zeros(count, dtype=np.uint32)
    accumulate_keystream(acc, KEY, NONCE, sign=1)
    assert np.array_equal(acc, whole)


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize("ring_bits", RINGS)
@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(0, 700),
    chunk=st.integers(1, 300),
    workers=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_accumulate_adds_and_subtracts_the_stream(
    cipher: StreamCipher, ring_bits: int, count: int, chunk: int, workers: int, seed: int
) -> None:
    dtype = dtype_of(ring_bits)
    start = np.random.default_rng(seed).integers(0, 2**ring_bits, count, dtype=dtype)
    stream = keystream_words(KEY, NONCE, count, ring_bits, cipher=cipher)
    acc = start.copy()
    accumulate_keystream(acc, KEY, NONCE, sign=1, cipher=cipher, chunk_words=chunk, workers=workers)
    assert np.array_equal(acc, ring_add(start, stream))
    accumulate_keystream(
        acc, KEY, NONCE, sign=-1, cipher=cipher, chunk_words=chunk, workers=workers
    )
    assert np.array_equal(acc, start)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_parallel_segments_start_at_the_right_counter(workers: int) -> None:
    for cipher in CIPHERS:
        for ring_bits in RINGS:
            count = 10_007
            acc = np.zeros(count, dtype=dtype_of(ring_bits))
            accumulate_keystream(
                acc, KEY, NONCE, sign=1, cipher=cipher, chunk_words=999, workers=workers
            )
            assert np.array_equal(acc, keystream_words(KEY, NONCE, count, ring_bits, cipher=cipher))


def test_accumulate_into_a_strided_view() -> None:
    base = np.zeros(40, dtype=np.uint64)
    view = base[::2]
    accumulate_keystream(view, KEY, NONCE, sign=1, chunk_words=3)
    assert np.array_equal(base[::2], keystream_words(KEY, NONCE, 20, 64))
    assert not base[1::2].any()


@pytest.mark.parametrize("workers", [1, 2])
def test_accumulate_memory_is_bounded_by_the_chunk(workers: int) -> None:
    acc = np.zeros(1 << 20, dtype=np.uint64)  # 8 MiB
    chunk = 1 << 14
    tracemalloc.start()
    try:
        accumulate_keystream(acc, KEY, NONCE, sign=1, chunk_words=chunk, workers=workers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # two chunk buffers (zeros + keystream) per worker, plus small change; not the vector
    assert peak < workers * 2 * chunk * 8 + 128 * 1024


def test_keystream_words_allocates_only_the_output_and_one_chunk() -> None:
    tracemalloc.start()
    try:
        words = keystream_words(KEY, NONCE, 1 << 20, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < words.nbytes + DEFAULT_CHUNK_WORDS * 8 + 128 * 1024


def test_default_workers_are_automatic_and_give_the_same_result() -> None:
    count = AUTO_PARALLEL_BYTES // 4 + 1000  # above the threshold: threads are used
    assert _auto_workers(count * 4) >= 1
    assert _auto_workers(AUTO_PARALLEL_BYTES - 1) == 1
    acc = np.zeros(count, dtype=np.uint32)
    accumulate_keystream(acc, KEY, NONCE, sign=1)
    assert np.array_equal(acc, keystream_words(KEY, NONCE, count, 32))


def test_worker_failure_is_reraised(monkeypatch: pytest.MonkeyPatch) -> None:
    import ssddl.hazmat.prg as prg_module

    calls = []

    def failing(segment: np.ndarray, *args: object, **kwargs: object) -> None:
        calls.append(segment.size)
        if len(calls) == 2:
            raise RuntimeError("worker broke")

    monkeypatch.setattr(prg_module, "_combine_segment", failing)
    with pytest.raises(RuntimeError, match="worker broke"):
        accumulate_keystream(np.zeros(1000, np.uint32), KEY, NONCE, sign=1, workers=2)
    assert len(calls) == 2


# --- full range ----------------------------------------------------------------------------


@pytest.mark.parametrize("ring_bits", RINGS)
def test_top_value_is_reachable(ring_bits: int) -> None:
    width = ring_bits // 8
    assert words_from_bytes(b"\xff" * width, ring_bits).tolist() == [2**ring_bits - 1]


@pytest.mark.parametrize("cipher", CIPHERS)
def test_keystream_bytes_are_uniform(cipher: StreamCipher) -> None:
    # Fixed key and nonce: the statistic is one fixed number; the limit is far beyond the
    # p = 1e-6 critical value of chi-square with 255 degrees of freedom (about 370).
    words = keystream_words(KEY, NONCE, 1 << 16, 32, cipher=cipher)
    counts = np.bincount(words.view(np.uint8), minlength=256)
    expected = counts.sum() / 256
    assert float(((counts - expected) ** 2 / expected).sum()) < 420.0
    top_bits = np.bincount((words >> np.uint32(24)).astype(np.int64), minlength=256)
    assert top_bits.size == 256 and top_bits.min() > 0  # every top byte occurs
    assert int(words.max()) > 2**32 - 2**20  # the top of the ring is reached


# --- nonces --------------------------------------------------------------------------------


def test_derive_nonce_binds_every_field() -> None:
    base = derive_nonce(b"s", 1, 2, 3, "mask")
    assert len(base) == NONCE_SIZE
    variants = {
        derive_nonce(b"t", 1, 2, 3, "mask"),
        derive_nonce(b"s", 2, 2, 3, "mask"),
        derive_nonce(b"s", 1, 3, 2, "mask"),
        derive_nonce(b"s", 1, 2, 4, "mask"),
        derive_nonce(b"s", 1, 2, 3, "self-mask"),
        derive_nonce(b"s1", 1, 2, 3, "mask"),
    }
    assert base not in variants
    assert len(variants) == 6
    assert derive_nonce(bytearray(b"s"), 1, 2, 3, "mask") == base


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("s", 1, 2, 3, "mask"), "session_id"),
        ((b"s", -1, 2, 3, "mask"), "round_number"),
        ((b"s", 2**64, 2, 3, "mask"), "round_number"),
        ((b"s", 1.0, 2, 3, "mask"), "round_number"),
        ((b"s", 1, -2, 3, "mask"), "sender"),
        ((b"s", 1, 2, True, "mask"), "receiver"),
        ((b"s", 1, 2, 3, ""), "purpose"),
        ((b"s", 1, 2, 3, b"mask"), "purpose"),
    ],
)
def test_derive_nonce_errors(args: tuple[object, ...], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        derive_nonce(*args)  # type: ignore[arg-type]


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [bytes(31), bytes(33), b"", "k" * 32, None])
def test_bad_key_raises_invalid_key_without_echoing_it(key: object) -> None:
    for call in (
        lambda: keystream_words(key, NONCE, 4, 32),  # type: ignore[arg-type]
        lambda: iter_keystream_words(key, NONCE, 4, 32),  # type: ignore[arg-type]
        lambda: accumulate_keystream(np.zeros(4, np.uint32), key, NONCE, sign=1),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidKey, match="key must be") as info:
            call()
        if isinstance(key, bytes) and key:
            assert key.hex() not in str(info.value)


@pytest.mark.parametrize("nonce", [bytes(11), bytes(16), "n" * 12])
def test_bad_nonce(nonce: object) -> None:
    with pytest.raises(ConfigurationError, match="nonce"):
        keystream_words(KEY, nonce, 4, 32)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="nonce"):
        accumulate_keystream(np.zeros(4, np.uint32), KEY, nonce, sign=1)  # type: ignore[arg-type]


def test_keystream_argument_errors() -> None:
    with pytest.raises(ConfigurationError, match="count"):
        keystream_words(KEY, NONCE, -1, 32)
    with pytest.raises(ConfigurationError, match="ring_bits"):
        keystream_words(KEY, NONCE, 4, 16)
    with pytest.raises(ConfigurationError, match="cipher"):
        keystream_words(KEY, NONCE, 4, 32, cipher="rc4")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="chunk_words"):
        iter_keystream_words(KEY, NONCE, 4, 32, chunk_words=0)
    with pytest.raises(ConfigurationError, match="ring_bits"):
        iter_keystream_words(KEY, NONCE, 4, 8)


def test_streams_longer_than_the_counter_are_refused_before_allocating() -> None:
    with pytest.raises(ConfigurationError, match="2\\*\\*32 blocks"):
        keystream_words(KEY, NONCE, 2**34 + 1, 32)  # one word past 2**32 AES blocks
    with pytest.raises(ConfigurationError, match="2\\*\\*32 blocks"):
        iter_keystream_words(KEY, NONCE, 2**35 + 1, 64, cipher=StreamCipher.CHACHA20)


def test_accumulate_argument_errors() -> None:
    acc = np.zeros(8, dtype=np.uint32)
    with pytest.raises(ShareError, match="numpy array"):
        accumulate_keystream([0] * 8, KEY, NONCE, sign=1)  # type: ignore[arg-type]
    with pytest.raises(ShareError, match="uint32 or uint64"):
        accumulate_keystream(np.zeros(8, np.int64), KEY, NONCE, sign=1)
    with pytest.raises(ShareError, match="1-D"):
        accumulate_keystream(np.zeros((2, 4), np.uint32), KEY, NONCE, sign=1)
    readonly = np.zeros(8, np.uint32)
    readonly.flags.writeable = False
    with pytest.raises(ShareError, match="writeable"):
        accumulate_keystream(readonly, KEY, NONCE, sign=1)
    for sign in (0, 2, True, 1.0):
        with pytest.raises(ConfigurationError, match="sign"):
            accumulate_keystream(acc, KEY, NONCE, sign=sign)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="chunk_words"):
        accumulate_keystream(acc, KEY, NONCE, sign=1, chunk_words=0)
    with pytest.raises(ConfigurationError, match="workers"):
        accumulate_keystream(acc, KEY, NONCE, sign=1, workers=0)
    with pytest.raises(ConfigurationError, match="cipher"):
        accumulate_keystream(acc, KEY, NONCE, sign=1, cipher="aes")  # type: ignore[arg-type]
    assert not acc.any()  # nothing was touched by the failed calls


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_parallel_expansion_still_works_in_a_forked_child() -> None:
    count = 5000
    expected = keystream_words(KEY, NONCE, count, 32)
    acc = np.zeros(count, dtype=np.uint32)
    accumulate_keystream(acc, KEY, NONCE, sign=1, workers=2)  # the helper pool now exists
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's helper threads are gone; the pool must be remade
        code = 1
        try:
            child = np.zeros(count, dtype=np.uint32)
            accumulate_keystream(child, KEY, NONCE, sign=1, workers=2)
            os.write(write_end, hashlib.sha256(child.tobytes()).digest())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    digest = os.read(read_end, 32)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert digest == hashlib.sha256(expected.tobytes()).digest()


# --- AES-GCM's encryptor as the AES-CTR keystream writer -----------------------------------


@pytest.fixture(params=[True, False], ids=["gcm-engine", "ctr-engine"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test with the AES keystream written by the GCM encryptor, then by the CTR one,
    whatever this machine's calibration picked."""
    monkeypatch.setattr(prg, "_ENGINE", [request.param])
    return bool(request.param)


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_the_gcm_writer_gives_the_aes_ctr_stream_for_any_cut(
    key: bytes, nonce: bytes, cuts: list[int]
) -> None:
    # writes of any lengths, including inside and across GCM's first counter block (byte 32)
    total = sum(cuts) + 100
    writer = prg._GcmKeystream(key, nonce)
    written = bytearray()
    for size in [*cuts, 100]:
        out = bytearray(size)
        assert writer.update_into(bytes(size), out) == size
        written += out
    assert bytes(written) == raw_stream(StreamCipher.AES_CTR, key, nonce, total)


def test_the_gcm_writer_writes_into_a_view_and_leaves_the_rest_alone() -> None:
    out = bytearray(b"\xaa" * 80)
    view = memoryview(out)[8:48]
    prg._GcmKeystream(KEY, NONCE).update_into(bytes(40), view)
    assert bytes(out[8:48]) == raw_stream(StreamCipher.AES_CTR, KEY, NONCE, 40)
    assert out[:8] == b"\xaa" * 8 and out[48:] == b"\xaa" * 32


@pytest.mark.parametrize("ring_bits", RINGS)
@pytest.mark.parametrize("workers", [1, 2])
def test_every_expansion_gives_the_same_words_with_either_engine(
    engine: bool, ring_bits: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []

    class Spy(prg._GcmKeystream):
        def __init__(self, key: bytes, nonce: bytes) -> None:
            made.append(1)
            super().__init__(key, nonce)

    monkeypatch.setattr(prg, "_GcmKeystream", Spy)
    # counts below, at and above the size from which the GCM writer is used, and a chunk
    # size that cuts the stream inside its first two blocks
    itemsize = ring_bits // 8
    for count in (3, prg.GCM_MIN_BYTES // itemsize, prg.GCM_MIN_BYTES // itemsize * 3 + 5):
        expected = np.frombuffer(
            raw_stream(StreamCipher.AES_CTR, KEY, NONCE, count * itemsize), f"<u{itemsize}"
        )
        assert np.array_equal(keystream_words(KEY, NONCE, count, ring_bits), expected)
        out: np.ndarray = np.empty(count, dtype_of(ring_bits))
        prg.keystream_into(out, KEY, NONCE, workers=workers)
        assert np.array_equal(out, expected)
        acc: np.ndarray = np.zeros(count, dtype_of(ring_bits))
        accumulate_keystream(acc, KEY, NONCE, sign=1, workers=workers, chunk_words=5)
        assert np.array_equal(acc, expected)
        other = keystream_words(bytes(32), NONCE, count, ring_bits)
        prg.combine_keystreams(
            out, [(bytes(32), NONCE, -1), (KEY, NONCE, 1)], workers=workers, chunk_words=7
        )
        assert np.array_equal(out, expected - other)
    assert bool(made) is engine  # the GCM writer ran exactly when it was the engine


def test_the_engine_is_measured_once_and_named() -> None:
    assert prg.keystream_engine() in {"aes-gcm", "aes-ctr"}
    assert prg.keystream_engine() == prg.keystream_engine()
    assert len(prg._ENGINE) == 1
