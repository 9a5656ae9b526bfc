"""The mask worker process's side: ``python -m ssddl.runtime.masking.child``, started by
:class:`~ssddl.runtime.masking.process.MaskProcess`. It reads requests from its stdin, builds
each mask (or seals each member's seed shares) and writes the reply to its stdout, or into a
shared segment whose descriptor comes on ``--fd-socket``; it prints nothing else. The framing
is described in :mod:`ssddl.runtime.masking.process`."""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
import sys
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

from ssddl.hazmat.prg import combine_keystreams
from ssddl.protocol.seedshares import SeedShareRequest, seal_seed_shares
from ssddl.runtime.masking.framing import (
    CIPHERS,
    KIND,
    MAP,
    MASK,
    MAX_SHARES_BYTES,
    MAX_WORDS,
    OK,
    REASON,
    REFUSED,
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
    read_exact,
)

__all__ = ["serve"]


def serve(stdin: BinaryIO, stdout: BinaryIO, fd_socket: socket.socket | None = None) -> int:
    """The child's loop: build each requested mask and write it back (or into its shared
    segment), until end of input. A request it cannot build is refused with a reason; a
    truncated one ends the loop. ``fd_socket`` brings the descriptors of shared segments."""
    segments: dict[int, mmap.mmap] = {}
    try:
        return _serve(stdin, stdout, fd_socket, segments)
    finally:
        for mapping in segments.values():
            _close_mapping(mapping)


def _close_mapping(mapping: mmap.mmap) -> None:
    with contextlib.suppress(BufferError):  # an array still on it: unmapped with the array
        mapping.close()


def _serve(
    stdin: BinaryIO,
    stdout: BinaryIO,
    fd_socket: socket.socket | None,
    segments: dict[int, mmap.mmap],
) -> int:
    while (kind := read_exact(stdin, KIND.size)) is not None:
        if kind[0] in (MAP, UNMAP):
            if not _segment_request(kind[0], stdin, fd_socket, segments):
                return 1
        elif kind[0] == SHARES:
            head = read_exact(stdin, SHARES_REQUEST.size)
            if head is None:
                return 1
            job_id, size = SHARES_REQUEST.unpack(head)
            if not _seal_shares(job_id, size, stdin, stdout):
                return 1
        elif kind[0] != MASK:
            return 1  # not a request of this framing: nothing after it can be trusted
        elif (head := read_exact(stdin, REQUEST.size)) is None:
            return 0
        elif not _build(REQUEST.unpack(head), stdin, stdout, segments):
            return 1
    return 0


def _segment_request(
    kind: int, stdin: BinaryIO, fd_socket: socket.socket | None, segments: dict[int, mmap.mmap]
) -> bool:
    """Map or unmap a shared segment; False when the request is cut."""
    if kind == MAP:
        head = read_exact(stdin, SEGMENT.size)
        if head is None:
            return False
        _map_segment(fd_socket, segments, *SEGMENT.unpack(head))
        return True
    head = read_exact(stdin, UNMAP_SEGMENT.size)
    if head is None:
        return False
    mapping = segments.pop(UNMAP_SEGMENT.unpack(head)[0], None)
    if mapping is not None:
        _close_mapping(mapping)
    return True


def _build(
    request: tuple[int, ...], stdin: BinaryIO, stdout: BinaryIO, segments: dict[int, mmap.mmap]
) -> bool:
    """Build one requested mask and reply (or refuse it); False when its streams are cut."""
    job_id, words, itemsize, cipher, count, where = request
    body = read_exact(stdin, count * STREAM.size)
    if body is None:
        return False
    if itemsize not in WORD_TYPES or cipher >= len(CIPHERS) or words > MAX_WORDS:
        _refuse(stdout, job_id, f"bad word size {itemsize}, cipher {cipher} or size {words}")
        return True
    mapping = segments.get(where) if where else None
    if where and (mapping is None or len(mapping) != words * itemsize):
        _refuse(stdout, job_id, f"segment {where} is not mapped at {words} words")
        return True
    streams = [(key, nonce, -1 if sub else 1) for key, nonce, sub in STREAM.iter_unpack(body)]
    dtype = WORD_TYPES[itemsize]
    try:
        out = np.frombuffer(mapping, dtype) if mapping is not None else np.empty(words, dtype)
        combine_keystreams(out, streams, cipher=CIPHERS[cipher], workers=1)
    except Exception as exc:  # a refused request never ends the worker
        _refuse(stdout, job_id, type(exc).__name__)
        return True
    stdout.write(REPLY.pack(job_id, OK))
    if mapping is None:
        view = memoryview(out.data).cast("B")
        while view:
            view = view[stdout.write(view) or 0 :]
        out.fill(0)
    stdout.flush()
    return True  # ``out`` goes here: a segment is unmapped only without arrays on it


def _seal_shares(job_id: int, size: int, stdin: BinaryIO, stdout: BinaryIO) -> bool:
    """Split and seal one member's seed shares and reply (or refuse the request); False
    when the request is cut or too large to be one."""
    if size > MAX_SHARES_BYTES:
        return False
    body = read_exact(stdin, size)
    if body is None:
        return False
    try:
        reply = seal_seed_shares(SeedShareRequest.from_bytes(body)).to_bytes()
    except Exception as exc:  # a refused request never ends the worker
        _refuse(stdout, job_id, type(exc).__name__)
        return True
    stdout.write(REPLY.pack(job_id, OK) + SHARES_REPLY.pack(len(reply)) + reply)
    stdout.flush()
    return True


def _map_segment(
    fd_socket: socket.socket | None, segments: dict[int, mmap.mmap], where: int, nbytes: int
) -> None:
    """Map the segment whose descriptor waits on ``fd_socket`` (a mask into a segment that
    could not be mapped is refused, and the parent builds it)."""
    if fd_socket is None:
        return
    try:
        _, fds, _, _ = socket.recv_fds(fd_socket, 1, 1)
    except OSError:
        return
    for fd in fds:
        try:
            if where and nbytes and fd == fds[0]:
                old = segments.pop(where, None)
                if old is not None:
                    _close_mapping(old)
                segments[where] = mmap.mmap(fd, nbytes)
        except (OSError, ValueError, OverflowError):
            pass
        finally:
            os.close(fd)


def _refuse(stdout: BinaryIO, job_id: int, reason: str) -> None:
    text = reason.encode("ascii", "replace")[:200]
    stdout.write(REPLY.pack(job_id, REFUSED) + REASON.pack(len(text)) + text)
    stdout.flush()


def _main(argv: Sequence[str]) -> int:
    fd_socket = None
    if len(argv) == 2 and argv[0] == "--fd-socket" and argv[1].isdigit():
        with contextlib.suppress(OSError):
            fd_socket = socket.socket(fileno=int(argv[1]))
    with os.fdopen(0, "rb", buffering=0) as requests, os.fdopen(1, "wb", buffering=0) as replies:
        return serve(requests, replies, fd_socket)


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
