"""Combined masks built in a persistent child process, outside the interpreter that trains.

Why a process and not a thread. :func:`~ssddl.hazmat.prg.combine_keystreams` builds a mask in
many short native calls — one AES call and one numpy fold per stream and 256 KiB chunk — and
between two calls a background thread must take the GIL back. While the main thread runs
Python (the training loop, the protocol), each hand-over waits for the interpreter's switch
interval (5 ms). Measured on the 2-core machine: a mask of 35 streams of 85,003 words took
2.1 ms alone and 479 ms on a thread next to a busy Python thread. A child process has its own
interpreter and builds the mask at full speed on another CPU.

The child is ``python -m ssddl.protocol.maskproc``, started on first use and stopped at exit
(or by :func:`shutdown`). It talks to its parent over its stdin and stdout pipes only, in the
binary framing below (fixed fields, no serialised Python objects); it prints nothing.
Request, parent to child::

    job id u64 | words u32 | word bytes u8 (4 or 8) | cipher u8 | streams u16
    then per stream: key (32 bytes) | nonce (12 bytes) | subtract u8 (0 or 1)

Reply, child to parent, in request order::

    job id u64 | status u8 (0: ok, 1: refused) | ok: the mask's words, little-endian
                                               | refused: u16 length | reason (ASCII)

Keys cross a pipe between two processes of the same user on the same machine, as they cross
memory between two threads; the child zeroes each mask once written. No helper thread: a
request is written at once as far as the (non-blocking) pipe takes it and the rest is kept;
whoever waits for a job (:meth:`MaskJob.result`) sends what is kept and reads replies,
earlier ones first, multiplexing both pipes so that neither side can block the other. If the
child dies (or cannot start), the masks it had are built in this process instead, bit for bit
the same, and the next job starts a new child (at most :data:`MAX_RESTARTS` times in a
process; then, or where there are no POSIX pipes, masks go to the thread): a lost worker costs
time, never a round.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ssddl.exceptions import ShareError
from ssddl.hazmat.prg import KEY_SIZE, NONCE_SIZE, StreamCipher, combine_keystreams

__all__ = ["MaskJob", "MaskProcess", "mask_process", "serve", "shutdown", "worker_cpu_seconds"]

_log = logging.getLogger(__name__)

REQUEST = struct.Struct("<QIBBH")
STREAM = struct.Struct(f"<{KEY_SIZE}s{NONCE_SIZE}sB")
REPLY = struct.Struct("<QB")
REASON = struct.Struct("<H")
CIPHERS = tuple(StreamCipher)
WORD_TYPES: dict[int, np.dtype[np.unsignedinteger]] = {4: np.dtype("<u4"), 8: np.dtype("<u8")}
OK, REFUSED = 0, 1
#: the largest mask the child builds (words); the parent sends far smaller ones
MAX_WORDS = 1 << 28
#: the child's output pipe is grown to this (Linux), so a small mask is written whole
PIPE_BYTES = 1 << 20


Streams = Sequence[tuple[bytes, bytes, int]]


class MaskJob:
    """One mask being built by the child: :meth:`result` waits for it (a secret array)."""

    __slots__ = ("_cipher", "_done", "_error", "_owner", "_streams", "id", "out")

    def __init__(
        self, owner: MaskProcess | None, job_id: int, out: np.ndarray, streams: Streams,
        cipher: StreamCipher,
    ) -> None:  # fmt: skip
        self._owner = owner
        self.id = job_id
        self.out = out
        self._streams: Streams | None = streams  #: kept until done, to build it here if lost
        self._cipher = cipher
        self._done = False
        self._error: Exception | None = None

    def __repr__(self) -> str:
        return f"MaskJob(id={self.id}, words={self.out.size})"

    def result(self) -> np.ndarray:
        error = self.exception()
        if error is not None:
            raise error
        return self.out

    def exception(self) -> Exception | None:
        if not self._done and self._owner is not None:
            self._owner.wait(self)
        if not self._done:  # lost with its worker, or never sent: build it here
            try:
                combine_keystreams(self.out, self._streams or (), cipher=self._cipher, workers=1)
            except Exception as exc:
                self._error = exc
            self._finish()
        return self._error

    def _finish(self) -> None:
        self._done = True
        self._streams = None


class MaskProcess:
    """The parent's end of one child process."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "ssddl.protocol.maskproc"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
                env=env,
            )
        except OSError as exc:
            raise ShareError(f"cannot start the mask worker process: {exc.strerror}") from None
        # from here on the child exists: ``close`` (or exit) stops it
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdout: BinaryIO = self._proc.stdout  # type: ignore[assignment]
        with contextlib.suppress(AttributeError, OSError):
            import fcntl

            fcntl.fcntl(self._stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.pid = self._proc.pid
        self._stdin = self._proc.stdin.fileno()
        os.set_blocking(self._stdin, False)
        self._lock = threading.RLock()  # the job table, the kept requests, the pipes
        self._jobs: dict[int, MaskJob] = {}
        self._next = 1
        self._dead: str | None = None
        self._unsent = bytearray()  #: requests the input pipe did not take yet

    def __repr__(self) -> str:
        return f"MaskProcess(pid={self.pid}, jobs={len(self._jobs)})"

    @property
    def alive(self) -> bool:
        return self._dead is None and self._proc.poll() is None

    def submit(
        self, out: np.ndarray, streams: Sequence[tuple[bytes, bytes, int]], cipher: StreamCipher
    ) -> MaskJob:
        """Have the child build Σ sign · stream into ``out`` (1-D ring words)."""
        if out.ndim != 1 or out.dtype.itemsize not in WORD_TYPES or out.dtype.kind != "u":
            raise ShareError("the mask must be a 1-D array of uint32 or uint64 words")
        if out.size >= 1 << 32 or len(streams) >= 1 << 16:
            raise ShareError("a mask for the worker process has < 2^32 words and < 2^16 streams")
        code = CIPHERS.index(cipher)
        streams_bytes = b"".join(
            STREAM.pack(key, nonce, 1 if sign == -1 else 0) for key, nonce, sign in streams
        )
        with self._lock:
            if self._dead is not None:
                return MaskJob(None, 0, out, streams, cipher)  # built by the caller
            job = MaskJob(self, self._next, out, streams, cipher)
            self._next += 1
            self._jobs[job.id] = job
            head = REQUEST.pack(job.id, out.size, out.dtype.itemsize, code, len(streams))
            self._unsent += head + streams_bytes
            self._send()
        return job

    def _send(self) -> None:
        """Write what the input pipe takes now, without blocking."""
        try:
            while self._unsent:
                del self._unsent[: os.write(self._stdin, self._unsent)]
        except BlockingIOError:
            pass
        except OSError:
            self._unsent.clear()  # the child is gone: reading finds out and refuses the jobs

    def wait(self, job: MaskJob) -> None:
        """Send what is kept and read replies until ``job``'s has arrived (earlier ones go
        into their own arrays)."""
        with self._lock:
            while not job._done:
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
                except (OSError, ValueError, EOFError):
                    self._die("exited")

    def _read_one(self) -> None:
        head = _read_exact(self._stdout, REPLY.size)
        if head is None:
            raise EOFError
        job_id, status = REPLY.unpack(head)
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            raise ValueError(f"a reply for unknown job {job_id}")
        if status == OK:
            if _read_into(self._stdout, job.out) is None:
                job.out.fill(0)
                raise EOFError
        else:
            size = _read_exact(self._stdout, REASON.size)
            reason = _read_exact(self._stdout, REASON.unpack(size)[0]) if size else None
            text = reason.decode("ascii", "replace") if reason is not None else "no reason"
            job._error = ShareError(f"the mask worker process refused a mask: {text}")
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
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(OSError):
            self._stdout.close()
        self._lose_all()


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = bytearray(size)
    return bytes(data) if _fill(stream, memoryview(data)) else None


def _read_into(stream: BinaryIO, out: np.ndarray) -> np.ndarray | None:
    return out if _fill(stream, memoryview(out.data).cast("B")) else None


def _fill(stream: BinaryIO, view: memoryview) -> bool:
    """Fill ``view`` from ``stream``; False at end of file before it is full."""
    while view:
        got = stream.readinto(view)  # type: ignore[attr-defined]
        if not got:
            return False
        view = view[got:]
    return True


_process: MaskProcess | None = None
_process_pid = 0
_process_lock = threading.Lock()
_restarts = 0
#: after this many children died in this process, no new one is started (the caller builds
#: masks on a thread instead): a child that cannot live would otherwise cost a start per mask
MAX_RESTARTS = 3


def mask_process() -> MaskProcess:
    """This process's mask worker process, started (or restarted) when needed; ShareError
    when none can start or too many have died."""
    global _process, _process_pid, _restarts
    if os.name != "posix":
        raise ShareError("the mask worker process needs POSIX pipes; masks use a thread")
    with _process_lock:
        if _process is None or _process_pid != os.getpid() or not _process.alive:
            if _process is not None and _process_pid == os.getpid():
                _process.close(timeout=1.0)
                _restarts += 1
                if _restarts > MAX_RESTARTS:
                    _process = None
                    raise ShareError(
                        f"{_restarts} mask worker processes exited in this process; no more "
                        "are started"
                    )
            elif _process_pid != os.getpid():
                _restarts = 0  # a forked child starts its own count
            _process, _process_pid = MaskProcess(), os.getpid()
        return _process


def worker_cpu_seconds() -> float:
    """CPU seconds the running mask worker process has used (Linux; 0.0 elsewhere or when
    none runs), for benchmarks that count a protocol's whole CPU cost."""
    process = _process
    if process is None or _process_pid != os.getpid():
        return 0.0
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def shutdown() -> None:
    """Stop this process's mask worker process, if one runs (also done at exit)."""
    global _process
    with _process_lock:
        process, _process = _process, None
    if process is not None and _process_pid == os.getpid():
        process.close()


atexit.register(shutdown)


# -- the child ----------------------------------------------------------------------------


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The child's loop: build each requested mask and write it back, until end of input.
    A request it cannot build is refused with a reason; a truncated one ends the loop."""
    while (head := _read_exact(stdin, REQUEST.size)) is not None:
        job_id, words, itemsize, cipher, count = REQUEST.unpack(head)
        body = _read_exact(stdin, count * STREAM.size)
        if body is None:
            return 1
        if itemsize not in WORD_TYPES or cipher >= len(CIPHERS) or words > MAX_WORDS:
            _refuse(stdout, job_id, f"bad word size {itemsize}, cipher {cipher} or size {words}")
            continue
        streams = []
        for key, nonce, subtract in STREAM.iter_unpack(body):
            streams.append((key, nonce, -1 if subtract else 1))
        try:
            out = np.empty(words, dtype=WORD_TYPES[itemsize])
            combine_keystreams(out, streams, cipher=CIPHERS[cipher], workers=1)
        except Exception as exc:  # a refused request never ends the worker
            _refuse(stdout, job_id, type(exc).__name__)
            continue
        stdout.write(REPLY.pack(job_id, OK))
        view = memoryview(out.data).cast("B")
        while view:
            view = view[stdout.write(view) or 0 :]
        stdout.flush()
        out.fill(0)
    return 0


def _refuse(stdout: BinaryIO, job_id: int, reason: str) -> None:
    text = reason.encode("ascii", "replace")[:200]
    stdout.write(REPLY.pack(job_id, REFUSED) + REASON.pack(len(text)) + text)
    stdout.flush()


if __name__ == "__main__":
    with os.fdopen(0, "rb", buffering=0) as requests, os.fdopen(1, "wb", buffering=0) as replies:
        raise SystemExit(serve(requests, replies))
