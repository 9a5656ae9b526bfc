"""A mask engine: the :class:`~ssddl.protocol.ports.MaskBuilder` that builds off the critical
path, on one background worker, and ahead of the round.

Off the critical path. A member's combined mask depends on the round keys (and its self-mask
seed) only, never on its update, so the engine builds it on its worker while LocalTrain runs;
sharing is then encode + one in-place add. When every registered member is in every group,
the next round's group is known when a round ends, so a member starts the whole mask of the
next round then (:meth:`MaskEngine.start_ahead`): the build overlaps the idle time between
rounds too. With double masking the self-mask seed's shares, sealed for the member's pairs, do
not depend on the update either: the worker process seals them next to the mask
(:meth:`MaskEngine.seal_shares`). The worker uses one CPU (the others train). A combined mask
is never part of the participant's saved state; masks built ahead of their round hold at most
``ahead_budget`` bytes an engine (:data:`AHEAD_BUDGET_BYTES` by default).

The worker is a ``thread``, or a persistent child ``process``
(:mod:`ssddl.runtime.masking.process`): a thread needs the GIL back between its short native
calls and crawls while the main thread runs Python (see that module), a process does not. On
Linux the child writes each mask straight into a shared-memory segment that the caller's
array lies on (no copy, and no page faults once a segment is reused); there, masks of any
size go to the process. Where segments are missing (or the pool is full) a mask comes back
through a pipe, one more copy on the critical path, so only masks of up to
:data:`PROCESS_MAX_BYTES` go that way and larger ones are built on the thread (through the
pipe, measured on the wide MLP, M = 994,570: the thread was 1.00-1.10x plain and the process
1.15-1.32x; on segments the two are within the machine's noise, 1.03-1.12x against
1.04-1.05x). At M = 85,002 the process wins: one step per round 1.82x against 2.05x, n = 100
3.2x against 4.2-5.1x; waiting for the ten masks of a round took 1.6 ms through the pipe and
0.35 ms on segments. Both build the same words.

An engine is an object its runtime creates, hands to its participants and closes when the
session ends (it is a context manager): no state outlives it, and two engines share nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np

from ssddl.exceptions import ConfigurationError, ShareError
from ssddl.hazmat.prg import StreamCipher, combine_keystreams
from ssddl.protocol.masks import Stream
from ssddl.protocol.ports import Companions, MaskJob, PendingMask, SealJob
from ssddl.protocol.seedshares import PendingShares, SeedShareRequest
from ssddl.runtime.masking.process import MaskProcess

__all__ = ["AHEAD_BUDGET_BYTES", "MAX_RESTARTS", "MaskEngine", "MaskWorker"]

_log = logging.getLogger(__name__)

MaskWorker = Literal["thread", "process"]
#: the most memory that masks built ahead of their round hold at once in one engine; beyond
#: it no mask is built ahead
AHEAD_BUDGET_BYTES = 256 << 20
#: with the ``process`` worker and no shared segment, larger masks are still built on the
#: thread (see above)
PROCESS_MAX_BYTES = 1 << 20
#: after this many children died in one engine, no new one is started (masks go to the
#: thread): a child that cannot live would otherwise cost a start per mask
MAX_RESTARTS = 3
#: the most jobs the worker process may have waiting for seed shares to go to it too. A
#: worker that falls behind is building masks of many streams: the complete graph at n = 100
#: (100 streams, 99 seals a member) ran its round in 0.86 s with the shares in the worker and
#: 0.62 s without, sparse pairing at n = 100 (35 streams, 34 seals) in 0.30 s with them and
#: 0.36 s without
WORKER_BACKLOG = 4


def check_worker(kind: str, where: str = "the mask worker") -> MaskWorker:
    """``kind`` if it names a worker (ConfigurationError naming ``where`` otherwise)."""
    if kind not in ("thread", "process"):
        raise ConfigurationError(f"{where} must be 'thread' or 'process', got {kind!r}")
    return kind  # type: ignore[return-value]


class _Budget:
    """Bytes held by masks built ahead of their round. Re-entrant: a mask's finaliser may
    give its bytes back from whatever the thread was doing."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.RLock()
        self.limit = limit
        self.used = 0

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.used + nbytes > self.limit:
                return False
            self.used += nbytes
            return True

    def give(self, nbytes: int) -> None:
        with self._lock:
            self.used -= nbytes

    def giver(self, nbytes: int) -> Callable[[], None]:
        return lambda: self.give(nbytes)


def _combine_into(out: np.ndarray, streams: Sequence[Stream], cipher: StreamCipher) -> np.ndarray:
    combine_keystreams(out, streams, cipher=cipher, workers=1)
    return out


class MaskEngine:
    """Builds masks on one background ``worker`` (a thread, or a child process that falls
    back to the thread), and ahead of their round within ``ahead_budget`` bytes. Close it
    (or use it as a context manager): that stops the thread and the child."""

    def __init__(
        self, worker: MaskWorker = "process", *, ahead_budget: int = AHEAD_BUDGET_BYTES
    ) -> None:
        self.worker = check_worker(worker)
        self.ahead = _Budget(ahead_budget)
        self._lock = threading.Lock()
        self._thread: ThreadPoolExecutor | None = None
        self._process: MaskProcess | None = None
        self._pid = os.getpid()  #: threads and children do not survive a fork: remade after it
        self._restarts = 0
        self._no_process = worker != "process"
        self._closed = False

    def __repr__(self) -> str:
        return f"MaskEngine(worker={self.worker!r})"

    def __enter__(self) -> MaskEngine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- the port --------------------------------------------------------------------------

    def start(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        streams: Sequence[Stream],
        cipher: StreamCipher,
        *,
        seed: bytes | None = None,
        shares: PendingShares | None = None,
    ) -> PendingMask:
        """Build the mask on the worker, into an array allocated here, by the caller's
        thread (which reuses its own freed memory), or on a shared segment."""
        return PendingMask(self._job(size, dtype, streams, cipher), size, seed, shares)

    def start_ahead(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        cipher: StreamCipher,
        streams: Callable[[], tuple[Sequence[Stream], Companions]],
    ) -> PendingMask | None:
        """:meth:`start` for a mask built before its round starts, counted against the
        budget of masks built ahead; ``streams()`` is called only when the budget allows the
        build (else None: nothing drawn, nothing started)."""
        held = size * np.dtype(dtype).itemsize
        if not self.ahead.take(held):
            return None
        try:
            chosen, (seed, shares) = streams()
            job = self._job(size, dtype, chosen, cipher)
        except BaseException:
            self.ahead.give(held)
            raise
        return PendingMask(job, size, seed, shares, self.ahead.giver(held))

    def seal_shares(self, request: SeedShareRequest) -> SealJob | None:
        """The worker process splits and seals when it runs and keeps up (at most
        :data:`WORKER_BACKLOG` jobs waiting); else None: the member seals them."""
        self._check_open()
        process = self.worker_process()
        if process is not None and process.backlog() <= WORKER_BACKLOG:
            return process.submit_shares(request)
        return None

    # -- the workers -----------------------------------------------------------------------

    def _job(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        streams: Sequence[Stream],
        cipher: StreamCipher,
    ) -> MaskJob:
        self._check_open()
        job = self._process_job(size, dtype, streams, cipher)
        if job is not None:
            return job
        out = np.empty(size, dtype=dtype)
        return self._thread_pool().submit(_combine_into, out, list(streams), cipher)

    def _process_job(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        streams: Sequence[Stream],
        cipher: StreamCipher,
    ) -> MaskJob | None:
        """The mask on the worker process: on a shared segment, else through the pipe up to
        :data:`PROCESS_MAX_BYTES`; None (use the thread) when neither, or no process runs."""
        process = self.worker_process()
        if process is None:
            return None
        job = process.submit_shared(size, dtype, streams, cipher)
        if job is None and size * np.dtype(dtype).itemsize <= PROCESS_MAX_BYTES:
            job = process.submit(np.empty(size, dtype=dtype), streams, cipher)
        return job

    def _thread_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            self._check_open()
            self._after_fork()
            if self._thread is None:
                self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssddl-mask")
            return self._thread

    def worker_process(self) -> MaskProcess | None:
        """The engine's worker process, started (or restarted) if need be; None with the
        thread worker, or when no process can start (then not tried again by this engine)."""
        process = self._process
        if process is not None and process.running and self._pid == os.getpid():
            return process  # two jobs a member and round ask: no lock and no system call
        if self._no_process:
            return None
        try:
            return self._start_process()
        except ShareError as exc:
            self._no_process = True
            _log.warning("%s; masks are built on a thread from now on", exc)
            return None

    def _start_process(self) -> MaskProcess:
        if os.name != "posix":
            raise ShareError("the mask worker process needs POSIX pipes; masks use a thread")
        with self._lock:
            self._check_open()
            self._after_fork()
            if self._process is not None and self._process.alive:
                return self._process
            if self._process is not None:
                self._process.close(timeout=1.0)
                self._process = None
                self._restarts += 1
                if self._restarts > MAX_RESTARTS:
                    raise ShareError(
                        f"{self._restarts} mask worker processes exited in this engine; no "
                        "more are started"
                    )
            self._process = MaskProcess()
            return self._process

    def _after_fork(self) -> None:
        """In a forked child, forget the parent's thread and process (not ours to stop)."""
        if self._pid != os.getpid():
            self._thread, self._process, self._restarts = None, None, 0
            self._pid = os.getpid()

    def _check_open(self) -> None:
        if self._closed:
            raise ShareError("this mask engine was closed; create a new one for a new session")

    # -- the end ---------------------------------------------------------------------------

    def worker_cpu_seconds(self) -> float:
        """CPU seconds the engine's worker process has used (Linux; 0.0 elsewhere or when
        none runs), for benchmarks that count a protocol's whole CPU cost."""
        process = self._process
        if process is None or self._pid != os.getpid():
            return 0.0
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def close(self) -> None:
        """Stop the worker process and the thread (jobs still open are built by their
        callers); the engine builds nothing more."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            process, self._process = self._process, None
            ours = self._pid == os.getpid()
        if process is not None and ours:
            process.close()
        if thread is not None and ours:
            thread.shutdown(wait=True)
