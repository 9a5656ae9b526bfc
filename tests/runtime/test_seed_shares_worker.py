"""The mask worker process seals a member's seed shares (``ssddl.runtime.masking``): the
same bytes as this process, a killed child, its decoder under bad requests, the backlog that
decides whether shares go to it, and an engine that keeps them while its worker is behind."""

from __future__ import annotations

import io
import os
import signal

import numpy as np
import pytest

from ssddl.hazmat.aead import AeadAlgorithm
from ssddl.protocol.ports import InlineMaskBuilder
from ssddl.protocol.seedshares import SealedSeedShares, seal_seed_shares
from ssddl.runtime.masking import MaskEngine, engine
from ssddl.runtime.masking.child import serve
from ssddl.runtime.masking.framing import (
    CIPHERS,
    KIND,
    OK,
    REFUSED,
    REPLY,
    SHARES,
    SHARES_REPLY,
    SHARES_REQUEST,
)
from ssddl.runtime.masking.process import MaskProcess
from tests.protocol.test_seed_shares import SEED, _request


@pytest.fixture
def worker():
    process = MaskProcess()
    yield process
    process.close()


def test_the_child_seals_what_this_process_seals(worker):
    requests = [_request(label=str(k)) for k in range(5)]
    requests.append(_request(tuple(range(1, 101)), 40, 34, AeadAlgorithm.AES_256_GCM))
    jobs = [worker.submit_shares(r) for r in requests]
    for request, job in reversed(list(zip(requests, jobs, strict=True))):
        assert job.result() == seal_seed_shares(request)
    assert repr(jobs[0]).startswith("ShareJob(") and SEED.hex() not in repr(jobs[0])


def test_a_killed_child_leaves_the_shares_to_their_caller(worker):
    request = _request()
    jobs = [worker.submit_shares(request) for _ in range(4)]
    os.kill(worker.pid, signal.SIGKILL)
    assert all(job.result() == seal_seed_shares(request) for job in jobs)
    late = worker.submit_shares(request)
    assert late.result() == seal_seed_shares(request)


def _shares_request(job_id: int, body: bytes) -> bytes:
    return KIND.pack(SHARES) + SHARES_REQUEST.pack(job_id, len(body)) + body


def test_serve_seals_refuses_a_malformed_request_and_goes_on():
    good = _request()
    requests = io.BytesIO(_shares_request(1, b"junk") + _shares_request(2, good.to_bytes()))
    replies = io.BytesIO()
    assert serve(requests, replies) == 0
    data = replies.getvalue()
    assert REPLY.unpack_from(data, 0) == (1, REFUSED)
    reason_size = int.from_bytes(data[REPLY.size : REPLY.size + 2], "little")
    assert data[REPLY.size + 2 : REPLY.size + 2 + reason_size] == b"MalformedMessage"
    rest = data[REPLY.size + 2 + reason_size :]
    assert REPLY.unpack_from(rest, 0) == (2, OK)
    (size,) = SHARES_REPLY.unpack_from(rest, REPLY.size)
    body = rest[REPLY.size + SHARES_REPLY.size :]
    assert len(body) == size and SealedSeedShares.parse(body, 3) == seal_seed_shares(good)


def test_serve_ends_at_a_cut_or_oversized_shares_request():
    request = _shares_request(1, _request().to_bytes())
    assert serve(io.BytesIO(request[:-1]), io.BytesIO()) == 1
    assert serve(io.BytesIO(request[:6]), io.BytesIO()) == 1
    huge = KIND.pack(SHARES) + SHARES_REQUEST.pack(1, 2**31)
    replies = io.BytesIO()
    assert serve(io.BytesIO(huge + request), replies) == 1
    assert replies.getvalue() == b""  # nothing after a request it cannot frame is trusted


def test_the_backlog_counts_the_jobs_the_child_has_not_answered(worker):
    from tests.runtime.test_mask_process import _streams

    assert worker.backlog() == 0
    jobs = [worker.submit(np.empty(300_000, dtype=np.uint32), _streams(20), CIPHERS[0])]
    jobs += [worker.submit_shares(_request()) for _ in range(3)]
    assert 0 < worker.backlog() <= 4  # the first mask takes a while
    for job in jobs:
        job.result()
    assert worker.backlog() == 0
    os.kill(worker.pid, signal.SIGKILL)
    worker._proc.wait()
    late = worker.submit_shares(_request())
    assert worker.backlog() == 0  # a dead child is behind on nothing: its jobs come here
    assert late.result() == seal_seed_shares(_request())


def test_seed_shares_stay_with_their_caller_while_the_worker_is_behind(monkeypatch):
    from ssddl.protocol import seedshares

    class Behind:
        def backlog(self):
            return engine.WORKER_BACKLOG + 1

        def submit_shares(self, request):
            raise AssertionError("a worker that is behind gets no seed shares")

    masks = MaskEngine("process")
    monkeypatch.setattr(masks, "worker_process", lambda: Behind())
    request = _request()
    pending = seedshares.start_seed_shares(request, b"drawn", masks)
    assert pending._job is None and pending.drawn == b"drawn"
    assert pending.result() == seal_seed_shares(request)  # done here, when first asked for
    inline = seedshares.start_seed_shares(request, b"drawn", InlineMaskBuilder())
    assert inline._job is None and inline.result() == seal_seed_shares(request)
    masks.close()
