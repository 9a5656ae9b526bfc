"""Combined masks built in a persistent child process, outside the interpreter that trains.

Why a process and not a thread. :func:`~ssddl.hazmat.prg.combine_keystreams` builds a mask in
many short native calls — one AES call and one numpy fold per stream and 256 KiB chunk — and
between two calls a background thread must take the GIL back. While the main thread runs
Python (the training loop, the protocol), each hand-over waits for the interpreter's switch
interval (5 ms). Measured on the 2-core machine: a mask of 35 streams of 85,003 words took
2.1 ms alone and 479 ms on a thread next to a busy Python thread. A child process has its own
interpreter and builds the mask at full speed on another CPU.

The child is ``python -m ssddl.runtime.masking.child`` (:mod:`.child`), started by the
engine that owns it (:class:`~ssddl.runtime.masking.engine.MaskEngine`) on first use and
stopped when that engine closes. It talks to its parent over its stdin and stdout pipes, in the
binary framing below (fixed fields, no serialised Python objects); it prints nothing.
Requests, parent to child, each led by a kind byte::

    0 (mask):  job id u64 | words u32 | word bytes u8 (4 or 8) | cipher u8 | streams u16
               | segment u32 (0: reply with the words)
               then per stream: key (32 bytes) | nonce (12 bytes) | subtract u8 (0 or 1)
    1 (map):   segment u32 | bytes u64  (the segment's file descriptor comes on the fd socket)
    2 (unmap): segment u32
    3 (seed shares): job id u64 | body bytes u32 | body (a
               :class:`~ssddl.protocol.seedshares.SeedShareRequest`, a record of the wire format)

Reply to a mask or seed shares, child to parent, in request order::

    job id u64 | status u8 (0: ok, 1: refused) | ok, segment 0: the mask's words, little-endian
                                               | ok, segment s: nothing (the words are in s)
                                               | ok, seed shares: u32 length | the sealed
                                                 shares (a ``SealedSeedShares`` record)
                                               | refused: u16 length | reason (ASCII)

Seed shares. Splitting a member's self-mask seed and sealing the shares for its pairs does not
depend on its update either (:mod:`ssddl.protocol.seedshares`): the child does it next to the
member's mask, and the seed, the pairs' share keys and the resulting AEAD keys cross the pipe
as the round keys do. A request the child refuses (it never should) or loses is done by the
caller, with the same bytes.

Shared segments (Linux). Read from a pipe, a mask costs one more copy on the critical path
(and the pipe's 64 KiB turns: 4 MB take 60 of them), which made the process slower than the
thread for large models. Where ``os.memfd_create`` and ``socket.send_fds`` exist, the parent
keeps a pool of shared-memory segments, one per mask-sized array: it creates a segment with
``memfd_create``, maps it, passes its descriptor to the child over a Unix socket (the child
maps it too) and hands the caller an array *on* the segment. The child writes the mask there
and replies with its job id only: no copy, and a reused segment's pages are already mapped in
both processes, so no page faults either. A segment is reused once no array refers to it any
more (its reference count tells), so a caller keeps the array as long as it likes; the pool
holds at most :data:`SHARED_MAX_BYTES` in :data:`SHARED_MAX_SEGMENTS` segments, and a mask
that finds no room goes through the pipe. A process forked while it holds such an array
shares its pages with its parent: ssddl never forks while a mask is out.

Keys cross a pipe between two processes of the same user on the same machine, as they cross
memory between two threads; the child zeroes each mask once written. No helper thread: a
request is written at once as far as the (non-blocking) pipe takes it and the rest is kept;
whoever waits for a job (:meth:`MaskJob.result`) sends what is kept and reads replies,
earlier ones first, multiplexing both pipes so that neither side can block the other. If the
child dies (or cannot start), the masks it had are built in this process instead, bit for bit
the same, and the engine's next job starts a new child (at most
:data:`~ssddl.runtime.masking.engine.MAX_RESTARTS` times an engine; then, or where there are
no POSIX pipes, masks go to the engine's thread): a lost worker costs time, never a round.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import socket
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ssddl.exceptions import MalformedMessage, ShareError
from ssddl.hazmat.prg import StreamCipher, combine_keystreams
from ssddl.protocol.seedshares import SealedSeedShares, SeedShareRequest, seal_seed_shares
from ssddl.runtime.masking.framing import (
    CIPHERS,
    KIND,
    MAP,
    MASK,
    MAX_SHARES_BYTES,
    OK,
    REPLY,
    REQUEST,
    SEGMENT,
    SHARES,
    SHARES_REPLY,
    SHARES_REQUEST,
    STREAM,
    UNMAP,
    UNMAP_SEGMENT,
    WORD_TYPES,
    Streams,
    read_exact,
    read_into,
    read_reason,
)

__all__ = ["MaskJob", "MaskProcess", "ShareJob", "shared_segments_available"]

_log = logging.getLogger(__name__)

#: the child's output pipe is grown to this (Linux), so a small mask is written whole
PIPE_BYTES = 1 << 20
#: the most bytes and segments the pool of shared masks holds (see above)
SHARED_MAX_BYTES = 512 << 20
SHARED_MAX_SEGMENTS = 256
#: ``sys.getrefcount`` of a free segment's array: its segment's reference and the argument
_FREE_REFS = 2


def shared_segments_available() -> bool:
    """Whether masks can come back on shared memory (Linux: memfd and descriptor passing)."""
    return (
        hasattr(os, "memfd_create") and hasattr(socket, "send_fds") and hasattr(sys, "getrefcount")
    )


class _WorkerJob(ABC):
    """A job of the child's: :meth:`exception` waits for the child's reply, or does the work
    here when the job was lost with its worker, refused, or never sent."""

    __slots__ = ("_done", "_error", "_owner", "id", "segment")

    def __init__(self, owner: MaskProcess | None, job_id: int) -> None:
        self._owner = owner
        self.id = job_id
        self._done = False
        self._error: Exception | None = None
        self.segment = 0  #: the shared segment the result lies on (0: none, the reply carries it)

    def exception(self) -> Exception | None:
        if not self._done and self._owner is not None:
            self._owner.wait(self)
        if not self._done:
            try:
                self._work_here()
            except Exception as exc:
                self._error = exc
            self._finish()
        return self._error

    def _raise(self) -> None:
        error = self.exception()
        if error is not None:
            raise error

    @abstractmethod
    def _work_here(self) -> None:
        """Do the job in this process (its child was lost, refused it, or never got it)."""

    def _finish(self) -> None:
        self._done = True


class MaskJob(_WorkerJob):
    """One mask being built by the child: :meth:`result` waits for it (a secret array)."""

    __slots__ = ("_cipher", "_streams", "out")

    def __init__(
        self, owner: MaskProcess | None, job_id: int, out: np.ndarray, streams: Streams,
        cipher: StreamCipher,
    ) -> None:  # fmt: skip
        super().__init__(owner, job_id)
        self.out = out
        self._streams: Streams | None = streams  #: kept until done, to build it here if lost
        self._cipher = cipher

    def __repr__(self) -> str:
        return f"MaskJob(id={self.id}, words={self.out.size})"

    def result(self) -> np.ndarray:
        self._raise()
        return self.out

    def _work_here(self) -> None:
        combine_keystreams(self.out, self._streams or (), cipher=self._cipher, workers=1)

    def _finish(self) -> None:
        self._done = True
        self._streams = None


class ShareJob(_WorkerJob):
    """One member's seed shares being split and sealed by the child: :meth:`result` waits
    for them (a secret)."""

    __slots__ = ("_request", "_result")

    def __init__(self, owner: MaskProcess | None, job_id: int, request: SeedShareRequest) -> None:
        super().__init__(owner, job_id)
        self._request: SeedShareRequest | None = request  #: kept until done (lost: done here)
        self._result: SealedSeedShares | None = None

    def __repr__(self) -> str:
        return f"ShareJob(id={self.id})"

    @property
    def receivers(self) -> int:
        return len(self._request.holders) - 1 if self._request is not None else 0

    def result(self) -> SealedSeedShares:
        self._raise()
        assert self._result is not None
        return self._result

    def _work_here(self) -> None:
        if self._request is not None:
            self._result = seal_seed_shares(self._request)

    def _finish(self) -> None:
        self._done = True
        self._request = None


class _Segment:
    """One shared-memory segment of the pool: its mapping and the bytes on it."""

    __slots__ = ("id", "raw")

    def __init__(self, segment_id: int, mapping: mmap.mmap) -> None:
        self.id = segment_id
        #: every array handed out views it; the mapping lives as long as an array on it
        self.raw = np.frombuffer(mapping, dtype=np.uint8)

    def free(self) -> bool:
        return sys.getrefcount(self.raw) <= _FREE_REFS


class MaskProcess:
    """The parent's end of one child process."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        args = [sys.executable, "-m", "ssddl.runtime.masking.child"]
        ours: socket.socket | None = None
        theirs: socket.socket | None = None
        if shared_segments_available():
            with contextlib.suppress(OSError):
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                args += ["--fd-socket", str(theirs.fileno())]
        try:
            self._proc = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
                env=env,
                pass_fds=(theirs.fileno(),) if theirs is not None else (),
            )
        except OSError as exc:
            for end in (ours, theirs):
                if end is not None:
                    end.close()
            raise ShareError(f"cannot start the mask worker process: {exc.strerror}") from None
        finally:
            if theirs is not None:
                theirs.close()  # the child has its own copy
        # from here on the child exists: ``close`` (or exit) stops it
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdout: BinaryIO = self._proc.stdout  # type: ignore[assignment]
        with contextlib.suppress(AttributeError, OSError):
            import fcntl

            fcntl.fcntl(self._stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.pid = self._proc.pid
        self._stdin = self._proc.stdin.fileno()
        os.set_blocking(self._stdin, False)
        self._lock = threading.RLock()  # the job table, the kept requests, the pipes, the pool
        self._jobs: dict[int, _WorkerJob] = {}
        self._next = 1
        self._dead: str | None = None
        self._unsent = bytearray()  #: requests the input pipe did not take yet
        self._fd_socket = ours  #: None: no shared segments, every mask comes through the pipe
        self._pool: dict[int, deque[_Segment]] = {}  #: segments by size in bytes, oldest first
        self._pool_bytes = 0
        self._pool_count = 0
        self._next_segment = 1

    def __repr__(self) -> str:
        return f"MaskProcess(pid={self.pid}, jobs={len(self._jobs)})"

    @property
    def running(self) -> bool:
        """Whether the child is believed to run, without a system call (one that died
        unnoticed is found at its next reply, and its jobs are built by their callers)."""
        return self._dead is None and self._proc.returncode is None

    @property
    def alive(self) -> bool:
        return self._dead is None and self._proc.poll() is None

    @property
    def shares_memory(self) -> bool:
        """Whether masks come back on shared segments (else through the pipe)."""
        return self._fd_socket is not None and self._dead is None

    def submit(
        self, out: np.ndarray, streams: Sequence[tuple[bytes, bytes, int]], cipher: StreamCipher
    ) -> MaskJob:
        """Have the child build Σ sign · stream into ``out`` (1-D ring words), sent back
        through the pipe."""
        if out.ndim != 1 or out.dtype.itemsize not in WORD_TYPES or out.dtype.kind != "u":
            raise ShareError("the mask must be a 1-D array of uint32 or uint64 words")
        return self._submit(out, streams, cipher, None)

    def submit_shared(
        self,
        size: int,
        dtype: np.dtype[np.unsignedinteger],
        streams: Sequence[tuple[bytes, bytes, int]],
        cipher: StreamCipher,
    ) -> MaskJob | None:
        """Have the child build the mask into a new ``size``-word array on a shared segment
        (the job's ``out``); None when there are no shared segments or the pool is full."""
        dtype = np.dtype(dtype)
        if dtype.itemsize not in WORD_TYPES or dtype.kind != "u" or size < 1:
            raise ShareError("the mask must be at least one uint32 or uint64 word")
        with self._lock:
            if not self.shares_memory:
                return None
            segment = self._segment(size * dtype.itemsize)
            if segment is None:
                return None
            return self._submit(segment.raw.view(dtype), streams, cipher, segment)

    def _submit(
        self,
        out: np.ndarray,
        streams: Sequence[tuple[bytes, bytes, int]],
        cipher: StreamCipher,
        segment: _Segment | None,
    ) -> MaskJob:
        if out.size >= 1 << 32 or len(streams) >= 1 << 16:
            raise ShareError("a mask for the worker process has < 2^32 words and < 2^16 streams")
        code = CIPHERS.index(cipher)
        streams_bytes = b"".join(
            STREAM.pack(key, nonce, 1 if sign == -1 else 0) for key, nonce, sign in streams
        )
        where = segment.id if segment is not None else 0
        with self._lock:
            if self._dead is not None:
                return MaskJob(None, 0, out, streams, cipher)  # built by the caller
            job = MaskJob(self, self._next, out, streams, cipher)
            job.segment = where
            self._next += 1
            self._jobs[job.id] = job
            head = KIND.pack(MASK) + REQUEST.pack(
                job.id, out.size, out.dtype.itemsize, code, len(streams), where
            )
            self._unsent += head + streams_bytes
            self._send()
        return job

    def submit_shares(self, request: SeedShareRequest) -> ShareJob:
        """Have the child split and seal one member's seed shares (a secret request)."""
        body = request.to_bytes()
        if len(body) > MAX_SHARES_BYTES:
            return ShareJob(None, 0, request)  # done by the caller
        with self._lock:
            if self._dead is not None:
                return ShareJob(None, 0, request)
            job = ShareJob(self, self._next, request)
            self._next += 1
            self._jobs[job.id] = job
            self._unsent += KIND.pack(SHARES) + SHARES_REQUEST.pack(job.id, len(body)) + body
            self._send()
        return job

    def _segment(self, nbytes: int) -> _Segment | None:
        """A free segment of ``nbytes`` from the pool, or a new one (None: no room)."""
        same = self._pool.get(nbytes)
        if same:
            for _ in range(len(same)):  # the oldest first: the likeliest to be free again
                segment = same[0]
                same.rotate(-1)  # it goes last, used or not
                if segment.free():
                    return segment
        while (
            self._pool_bytes + nbytes > SHARED_MAX_BYTES or self._pool_count >= SHARED_MAX_SEGMENTS
        ):
            if not self._evict_one(keep=nbytes):
                return None
        assert self._fd_socket is not None
        segment_id, self._next_segment = self._next_segment, self._next_segment + 1
        try:
            fd = os.memfd_create("ssddl-mask")
        except OSError:
            return None
        try:
            os.ftruncate(fd, nbytes)
            mapping = mmap.mmap(fd, nbytes)
            socket.send_fds(self._fd_socket, [b"s"], [fd])
        except OSError as exc:
            _log.warning("no shared segment for a mask (%s); masks come through the pipe", exc)
            self._fd_socket.close()
            self._fd_socket = None
            return None
        finally:
            os.close(fd)
        self._unsent += KIND.pack(MAP) + SEGMENT.pack(segment_id, nbytes)
        segment = _Segment(segment_id, mapping)
        self._pool.setdefault(nbytes, deque()).append(segment)
        self._pool_bytes += nbytes
        self._pool_count += 1
        return segment

    def _evict_one(self, *, keep: int) -> bool:
        """Drop one free segment of another size than ``keep`` (the child unmaps it too)."""
        for nbytes, segments in self._pool.items():
            if nbytes == keep:
                continue
            for segment in segments:
                if segment.free():
                    segments.remove(segment)
                    if not segments:
                        del self._pool[nbytes]
                    self._pool_bytes -= nbytes
                    self._pool_count -= 1
                    self._unsent += KIND.pack(UNMAP) + UNMAP_SEGMENT.pack(segment.id)
                    return True  # this process's mapping goes with the last reference
        return False

    def _send(self) -> None:
        """Write what the input pipe takes now, without blocking."""
        try:
            while self._unsent:
                del self._unsent[: os.write(self._stdin, self._unsent)]
        except BlockingIOError:
            pass
        except OSError:
            self._unsent.clear()  # the child is gone: reading finds out and refuses the jobs

    def wait(self, job: _WorkerJob) -> None:
        """Send what is kept and read replies until ``job``'s has arrived (earlier ones go
        into their own arrays)."""
        with self._lock:
            while not job._done and job._owner is self:
                if self._dead is not None:
                    self._lose_all()
                    break
                try:
                    writable = [self._stdin] if self._unsent else []
                    readable, ready, _ = select.select([self._stdout], writable, [])
                    if ready:
                        self._send()
                    if readable:
                        self._read_one()
                except (OSError, ValueError, EOFError, MalformedMessage):
                    self._die("exited")

    def backlog(self) -> int:
        """The jobs sent and not answered yet, once the replies that have arrived are read
        (without waiting for more): how far behind the child is."""
        with self._lock:
            if self._dead is not None:
                return 0
            try:
                self._send()
                while self._jobs and select.select([self._stdout], [], [], 0)[0]:
                    self._read_one()
            except (OSError, ValueError, EOFError, MalformedMessage):
                self._die("exited")
                return 0
            return len(self._jobs)

    def _read_one(self) -> None:
        head = read_exact(self._stdout, REPLY.size)
        if head is None:
            raise EOFError
        job_id, status = REPLY.unpack(head)
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            raise ValueError(f"a reply for unknown job {job_id}")
        if isinstance(job, ShareJob):
            self._read_shares(job, status)
            return
        assert isinstance(job, MaskJob)
        if status == OK:
            if not job.segment and read_into(self._stdout, job.out) is None:
                job.out.fill(0)
                raise EOFError
        elif job.segment:  # a segment the child could not map: build it here, pipe from now on
            read_reason(self._stdout)
            if self._fd_socket is not None:
                _log.warning("the mask worker could not use a shared segment; pipe from now on")
                self._fd_socket.close()
                self._fd_socket = None
            job._owner = None
            return
        else:
            text = read_reason(self._stdout)
            job._error = ShareError(f"the mask worker process refused a mask: {text}")
        job._finish()

    def _read_shares(self, job: ShareJob, status: int) -> None:
        """The reply to seed shares: the sealed shares, or a refusal (then done here)."""
        if status != OK:
            read_reason(self._stdout)
            job._owner = None
            return
        head = read_exact(self._stdout, SHARES_REPLY.size)
        size = SHARES_REPLY.unpack(head)[0] if head is not None else None
        if size is None or size > MAX_SHARES_BYTES:
            raise EOFError
        body = read_exact(self._stdout, size)
        if body is None:
            raise EOFError
        job._result = SealedSeedShares.parse(body, job.receivers)  # MalformedMessage: lost
        job._finish()

    def _die(self, what: str) -> None:
        code = self._proc.poll()
        self._dead = (
            f"the mask worker process (pid {self.pid}) {what}"
            + (f" with code {code}" if code is not None else "")
            + "; its masks are built by their callers and the next one starts a new process"
        )
        _log.warning("%s", self._dead)
        self._lose_all()

    def _lose_all(self) -> None:
        """Hand every open job back to its caller (``MaskJob.exception`` builds it)."""
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job._owner = None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the child (end of its input, then kill if it lingers) and refuse open jobs."""
        with self._lock:
            if self._dead is None:
                self._dead = f"the mask worker process (pid {self.pid}) was shut down"
            self._unsent.clear()
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # type: ignore[union-attr]
            if self._fd_socket is not None:
                self._fd_socket.close()
                self._fd_socket = None
            self._pool.clear()  # each mapping goes with the last array on it
            self._pool_bytes = self._pool_count = 0
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(OSError):
            self._stdout.close()
        self._lose_all()
