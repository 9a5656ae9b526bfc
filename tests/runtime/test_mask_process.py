"""The mask worker process (``ssddl.runtime.masking``): the same words as this process, any
order of waiting, a killed or stopped child, its request decoder under bad and random input,
an engine that restarts or gives up on its child, and a simulation that is bit-identical with
either worker."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import signal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddl.exceptions import ConfigurationError, ShareError
from ssddl.hazmat.prg import StreamCipher, combine_keystreams, derive_nonce
from ssddl.learning import LocalTrainConfig, build_model, load_digits, model_to_vector, partition
from ssddl.protocol import ProtocolConfig
from ssddl.runtime import SimulationConfig, simulate
from ssddl.runtime.masking import MaskEngine, check_worker, engine, process
from ssddl.runtime.masking.child import serve
from ssddl.runtime.masking.framing import (
    CIPHERS,
    KIND,
    MAP,
    MASK,
    OK,
    REASON,
    REFUSED,
    REPLY,
    REQUEST,
    SEGMENT,
    STREAM,
    UNMAP,
    UNMAP_SEGMENT,
)
from ssddl.runtime.masking.process import MaskProcess


def _streams(count: int, label: bytes = b"") -> list[tuple[bytes, bytes, int]]:
    return [
        (
            hashlib.sha256(label + bytes([i])).digest(),
            derive_nonce(b"s", 2, i, 7, "mask"),
            1 if i % 3 == 0 else -1,
        )
        for i in range(count)
    ]


def _expected(size: int, dtype, streams, cipher=StreamCipher.AES_CTR) -> np.ndarray:
    out = np.empty(size, dtype=dtype)
    combine_keystreams(out, streams, cipher=cipher, workers=1)
    return out


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def worker():
    process = MaskProcess()
    yield process
    process.close()
    assert _gone(process.pid)


@pytest.mark.parametrize("cipher", list(StreamCipher))
@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
@pytest.mark.parametrize(("size", "count"), [(1, 1), (17, 4), (85_003, 10), (300_000, 3)])
def test_the_child_builds_the_words_this_process_builds(worker, cipher, dtype, size, count):
    streams = _streams(count, label=bytes([size % 256]))
    job = worker.submit(np.empty(size, dtype=dtype), streams, cipher)
    assert np.array_equal(job.result(), _expected(size, dtype, streams, cipher))


def test_jobs_can_be_waited_for_in_any_order(worker):
    shapes = [(1000, 3), (50_000, 9), (7, 1), (120_000, 2)]
    jobs = [
        worker.submit(np.empty(n, dtype=np.uint32), _streams(k, bytes([n % 251])), CIPHERS[0])
        for n, k in shapes
    ]
    for index in (2, 0, 3, 1):  # the later replies wait in their own arrays
        n, k = shapes[index]
        expected = _expected(n, np.uint32, _streams(k, bytes([n % 251])))
        assert np.array_equal(jobs[index].result(), expected)
        assert jobs[index].exception() is None


def test_many_requests_never_block_the_caller_on_a_full_pipe(worker):
    # 300 requests of 200 streams (2.7 MB of requests) before the first reply is read
    streams = _streams(200)
    jobs = [worker.submit(np.empty(64, dtype=np.uint32), streams, CIPHERS[0]) for _ in range(300)]
    expected = _expected(64, np.uint32, streams)
    assert all(np.array_equal(job.result(), expected) for job in reversed(jobs))


def test_a_killed_worker_costs_time_never_a_mask(worker):
    streams = _streams(5)
    jobs = [worker.submit(np.empty(40_000, dtype=np.uint32), streams, CIPHERS[0]) for _ in range(6)]
    os.kill(worker.pid, signal.SIGKILL)
    expected = _expected(40_000, np.uint32, streams)
    assert all(np.array_equal(job.result(), expected) for job in jobs)  # built here instead
    assert not worker.alive
    late = worker.submit(np.empty(40_000, dtype=np.uint32), streams, CIPHERS[0])
    assert np.array_equal(late.result(), expected)  # a dead worker hands every job back


def test_the_engine_restarts_its_worker_after_its_child_dies():
    with MaskEngine("process") as masks:
        first = masks.worker_process()
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        first._proc.wait()
        second = masks.worker_process()
        assert second is not None and second is not first
        assert second.alive and second.pid != first.pid
        assert masks.worker_cpu_seconds() >= 0.0
    assert _gone(first.pid) and _gone(second.pid)  # closing the engine stopped it


def test_close_stops_the_child_and_later_jobs_are_built_here(worker):
    worker.close()
    assert _gone(worker.pid) and not worker.alive
    streams = _streams(2)
    job = worker.submit(np.empty(99, dtype=np.uint64), streams, CIPHERS[1])
    assert np.array_equal(job.result(), _expected(99, np.uint64, streams, CIPHERS[1]))
    assert repr(worker).startswith("MaskProcess(pid=") and repr(job).startswith("MaskJob(")


def test_a_job_repr_holds_no_key_material(worker):
    streams = _streams(3)
    job = worker.submit(np.empty(10, dtype=np.uint32), streams, CIPHERS[0])
    text = repr(job) + repr(worker)
    assert all(key.hex()[:8] not in text for key, _, _ in streams)
    job.result()


# -- shared segments ----------------------------------------------------------------------

shared = pytest.mark.skipif(
    not process.shared_segments_available(), reason="no memfd or descriptor passing here"
)


@shared
@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
@pytest.mark.parametrize("size", [1, 85_003, 1_000_000])
def test_a_shared_mask_is_the_words_this_process_builds(worker, dtype, size):
    streams = _streams(4, label=bytes([size % 256]))
    job = worker.submit_shared(size, np.dtype(dtype), streams, CIPHERS[0])
    assert job is not None and job.segment > 0 and worker.shares_memory
    mask = job.result()
    assert mask.dtype == dtype and mask.shape == (size,) and mask.flags.writeable
    assert np.array_equal(mask, _expected(size, dtype, streams))


@shared
def test_a_segment_is_reused_only_once_no_array_refers_to_it(worker):
    one, two = _streams(3, b"one"), _streams(3, b"two")
    first = worker.submit_shared(5000, np.dtype(np.uint32), one, CIPHERS[0])
    kept = first.result()[10:]  # a view keeps the segment busy
    segment = first.segment
    del first
    second = worker.submit_shared(5000, np.dtype(np.uint32), two, CIPHERS[0])
    assert second.segment != segment
    assert np.array_equal(second.result(), _expected(5000, np.uint32, two))
    assert np.array_equal(kept, _expected(5000, np.uint32, one)[10:])  # not overwritten
    del kept, second
    third = worker.submit_shared(5000, np.dtype(np.uint32), two, CIPHERS[0])
    assert third.segment in (segment, segment + 1)  # a free one again: no third segment
    assert np.array_equal(third.result(), _expected(5000, np.uint32, two))
    assert sum(len(s) for s in worker._pool.values()) == 2


@shared
def test_a_full_pool_sends_masks_through_the_pipe(worker, monkeypatch):
    monkeypatch.setattr(process, "SHARED_MAX_SEGMENTS", 2)
    streams = _streams(2)
    held = [worker.submit_shared(700, np.dtype(np.uint32), streams, CIPHERS[0]) for _ in range(2)]
    assert worker.submit_shared(700, np.dtype(np.uint32), streams, CIPHERS[0]) is None
    masks = MaskEngine("process")
    masks._process = worker  # the engine's worker is this one, with its pool full
    pending = masks.start(700, np.dtype(np.uint32), streams, CIPHERS[0])
    assert isinstance(pending._future, process.MaskJob)  # on the process, not the thread
    assert np.array_equal(pending.take(), _expected(700, np.uint32, streams))  # by the pipe
    assert all(np.array_equal(job.result(), _expected(700, np.uint32, streams)) for job in held)
    masks.close()


@shared
def test_a_free_segment_of_another_size_makes_room(worker, monkeypatch):
    monkeypatch.setattr(process, "SHARED_MAX_SEGMENTS", 1)
    streams = _streams(2)
    small = worker.submit_shared(100, np.dtype(np.uint64), streams, CIPHERS[0])
    assert np.array_equal(small.result(), _expected(100, np.uint64, streams))
    busy = small.result()
    assert worker.submit_shared(300, np.dtype(np.uint64), streams, CIPHERS[0]) is None
    del small, busy  # now free: dropped (the child unmaps it) for the larger one
    large = worker.submit_shared(300, np.dtype(np.uint64), streams, CIPHERS[0])
    assert large is not None and list(worker._pool) == [300 * 8]
    assert np.array_equal(large.result(), _expected(300, np.uint64, streams))


@shared
def test_a_killed_worker_leaves_shared_masks_to_their_callers(worker):
    streams = _streams(6)
    jobs = [
        worker.submit_shared(60_000, np.dtype(np.uint32), streams, CIPHERS[0]) for _ in range(5)
    ]
    os.kill(worker.pid, signal.SIGKILL)
    expected = _expected(60_000, np.uint32, streams)
    assert all(np.array_equal(job.result(), expected) for job in jobs)
    assert not worker.shares_memory
    assert worker.submit_shared(60_000, np.dtype(np.uint32), streams, CIPHERS[0]) is None


def test_without_shared_segments_every_mask_comes_through_the_pipe(monkeypatch):
    monkeypatch.setattr(process, "shared_segments_available", lambda: False)
    child = MaskProcess()
    try:
        assert not child.shares_memory
        streams = _streams(2)
        assert child.submit_shared(64, np.dtype(np.uint32), streams, CIPHERS[0]) is None
        job = child.submit(np.empty(64, dtype=np.uint32), streams, CIPHERS[0])
        assert np.array_equal(job.result(), _expected(64, np.uint32, streams))
    finally:
        child.close()
    assert _gone(child.pid)


@shared
def test_serve_writes_into_a_mapped_segment_and_refuses_an_unmapped_one():
    import mmap
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = os.memfd_create("test-mask")
    try:
        os.ftruncate(fd, 40)
        socket.send_fds(ours, [b"s"], [fd])
        view = mmap.mmap(fd, 40)
        streams = _streams(2)
        requests = io.BytesIO(
            KIND.pack(MAP) + SEGMENT.pack(4, 40)
            + _request(1, 10, 4, 0, streams, segment=4)
            + _request(2, 11, 4, 0, streams, segment=4)  # the wrong size for segment 4
            + KIND.pack(UNMAP) + UNMAP_SEGMENT.pack(4)
            + _request(3, 10, 4, 0, streams, segment=4)  # unmapped by now
        )  # fmt: skip
        replies = io.BytesIO()
        assert serve(requests, replies, theirs) == 0
        data = replies.getvalue()
        assert REPLY.unpack(data[: REPLY.size]) == (1, OK)  # no words follow: they are in 4
        refused = _replies(data[REPLY.size :])
        assert [(job, status) for job, status, _ in refused] == [(2, REFUSED), (3, REFUSED)]
        assert all(b"segment 4 is not mapped" in reason for _, _, reason in refused)
        words = np.frombuffer(view, dtype="<u4").copy()
        assert np.array_equal(words, _expected(10, np.uint32, streams))
        view.close()
    finally:
        os.close(fd)
        ours.close()
        theirs.close()


# -- the child's request decoder ------------------------------------------------------------


def _request(job: int, words: int, itemsize: int, cipher: int, streams, segment: int = 0) -> bytes:
    body = b"".join(STREAM.pack(k, n, 1 if s == -1 else 0) for k, n, s in streams)
    head = REQUEST.pack(job, words, itemsize, cipher, len(streams), segment)
    return KIND.pack(MASK) + head + body


def _replies(data: bytes) -> list[tuple[int, int, bytes]]:
    replies, view = [], memoryview(data)
    while view:
        job, status = REPLY.unpack(view[: REPLY.size])
        view = view[REPLY.size :]
        if status == OK:
            raise AssertionError("use _ok_reply for replies with words")
        (size,) = REASON.unpack(view[: REASON.size])
        replies.append((job, status, bytes(view[REASON.size : REASON.size + size])))
        view = view[REASON.size + size :]
    return replies


def test_serve_refuses_a_bad_request_and_goes_on():
    streams = _streams(2)
    good = _request(9, 5, 4, 0, streams)
    requests = io.BytesIO(_request(7, 5, 3, 0, streams) + _request(8, 5, 4, 9, streams) + good)
    replies = io.BytesIO()
    assert serve(requests, replies) == 0
    data = replies.getvalue()
    refused = _replies(data[: -(REPLY.size + 20)])
    assert [(job, status) for job, status, _ in refused] == [(7, REFUSED), (8, REFUSED)]
    assert all(b"bad word size" in reason for _, _, reason in refused)
    tail = data[-(REPLY.size + 20) :]
    assert REPLY.unpack(tail[: REPLY.size]) == (9, OK)
    words = np.frombuffer(tail[REPLY.size :], dtype="<u4")
    assert np.array_equal(words, _expected(5, np.uint32, streams))


def test_serve_ends_at_a_truncated_request():
    request = _request(1, 5, 4, 0, _streams(3))
    assert serve(io.BytesIO(request[:-1]), io.BytesIO()) == 1
    assert serve(io.BytesIO(request[:5]), io.BytesIO()) == 0  # a torn header: end of input
    assert serve(io.BytesIO(b"\x07" + request[1:]), io.BytesIO()) == 1  # not this framing


def test_serve_refuses_a_mask_beyond_its_limit():
    replies = io.BytesIO()
    assert serve(io.BytesIO(_request(3, 2**32 - 1, 8, 0, _streams(1))), replies) == 0
    assert _replies(replies.getvalue())[0][:2] == (3, REFUSED)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_serve_never_raises_on_random_input(data):
    # every request is built or refused; the loop ends at the end of the input
    assert serve(io.BytesIO(data), io.BytesIO()) in (0, 1)


# -- choosing the worker ----------------------------------------------------------------------


def test_the_worker_choice_is_checked_and_the_environment_has_no_say(monkeypatch):
    with pytest.raises(ConfigurationError, match="'thread' or 'process'"):
        check_worker("fork")
    with pytest.raises(ConfigurationError, match="'thread' or 'process'"):
        MaskEngine("fork")  # type: ignore[arg-type]
    monkeypatch.setenv("SSDDL_MASK_WORKER", "thread")  # the switch of old: no env-var flags
    with MaskEngine("process") as masks:
        assert masks.worker == "process"
    assert MaskEngine().worker == "process"  # the default, whatever the environment says
    with pytest.raises(ConfigurationError, match="mask_worker must be 'thread' or 'process'"):
        SimulationConfig(mask_worker="fork")  # type: ignore[arg-type]


def test_two_engines_share_nothing_and_a_closed_one_builds_nothing():
    streams = _streams(2)
    with MaskEngine("thread") as one, MaskEngine("thread") as two:
        assert np.array_equal(
            one.start(50, np.dtype(np.uint32), streams, CIPHERS[0]).take(),
            two.start(50, np.dtype(np.uint32), streams, CIPHERS[0]).take(),
        )
        assert one._thread is not two._thread and one.ahead is not two.ahead
    with pytest.raises(ShareError, match="closed"):
        one.start(50, np.dtype(np.uint32), streams, CIPHERS[0])


def test_a_simulation_is_bit_identical_with_either_worker(monkeypatch):
    split = load_digits(seed=0)
    parts = partition(split.train.y, 4, "iid", rng=np.random.default_rng(0))
    datasets = [split.train.subset(p) for p in parts]
    config = SimulationConfig(
        protocol=ProtocolConfig(rounds=2),
        train=LocalTrainConfig(epochs=1, lr=0.05),
        validate=True,
        insecure_crypto_seed=b"\x22" * 32,
    )
    engines: list[MaskEngine] = []

    class Recorded(MaskEngine):  # the simulation's engine, and the children it started
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.children: list[MaskProcess] = []
            engines.append(self)

        def _start_process(self) -> MaskProcess:
            child = super()._start_process()
            if child not in self.children:
                self.children.append(child)
            return child

    monkeypatch.setattr("ssddl.runtime.simulator.MaskEngine", Recorded)
    weights = {}
    for kind in ("thread", "process"):
        chosen = dataclasses.replace(config, mask_worker=kind)
        with pytest.warns(UserWarning, match="insecure_crypto_seed"):
            result = simulate(build_model("mlp", (64,), 10, seed=0), datasets, chosen)
        assert [h.validated for h in result.history] == [True, True]
        masks = engines[-1]
        assert masks.worker == kind and masks._closed  # the simulation's own, closed at its end
        children = masks.children
        assert (len(children) == 1) == (kind == "process")  # it was used
        if kind == "process":
            assert _gone(children[0].pid)  # stopped with the engine
            if process.shared_segments_available():
                assert children[0]._next_segment > 1  # on shared segments
        weights[kind] = model_to_vector(result.model)
    assert np.array_equal(weights["thread"], weights["process"])


def test_a_worker_that_cannot_start_leaves_masks_to_the_thread(monkeypatch, caplog):
    def refuse() -> MaskProcess:
        raise ShareError("cannot start the mask worker process: no such file")

    monkeypatch.setattr(engine, "MaskProcess", refuse)
    streams = _streams(3)
    with MaskEngine("process") as masks:
        first = masks.start(999, np.dtype(np.uint32), streams, CIPHERS[0])
        second = masks.start(999, np.dtype(np.uint32), streams, CIPHERS[0])
        expected = _expected(999, np.uint32, streams)
        assert np.array_equal(first.take(), expected) and np.array_equal(second.take(), expected)
        assert masks._no_process and caplog.text.count("built on a thread from now on") == 1


def test_children_that_keep_dying_are_not_restarted_forever(caplog):
    streams = _streams(2)
    expected = _expected(500, np.uint32, streams)
    pids = []
    with MaskEngine("process") as masks:
        for _ in range(engine.MAX_RESTARTS + 2):
            pending = masks.start(500, np.dtype(np.uint32), streams, CIPHERS[0])
            assert np.array_equal(pending.take(), expected)  # every mask is right
            child = masks._process
            if child is not None and child.alive:
                pids.append(child.pid)
                os.kill(child.pid, signal.SIGKILL)
                child._proc.wait()
    assert len(pids) == engine.MAX_RESTARTS + 1  # the first child and three restarts
    assert masks._no_process and "no more are started" in caplog.text
    assert all(_gone(pid) for pid in pids)
