"""The framing between the parent and its mask worker process (:mod:`.process`,
:mod:`.child`): fixed fields, no serialised Python objects. The layout is described in
:mod:`ssddl.runtime.masking.process`."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

from ssddl.hazmat.prg import KEY_SIZE, NONCE_SIZE, StreamCipher

KIND = struct.Struct("<B")
MASK, MAP, UNMAP, SHARES = 0, 1, 2, 3
REQUEST = struct.Struct("<QIBBHI")  #: after the kind byte MASK
SHARES_REQUEST = struct.Struct("<QI")  #: after the kind byte SHARES: job id, body bytes
SHARES_REPLY = struct.Struct("<I")  #: after an ok reply to SHARES: the body's bytes
#: the largest seed share request or reply (a group of 2^15 members needs under 3 MiB)
MAX_SHARES_BYTES = 1 << 22
SEGMENT = struct.Struct("<IQ")  #: after the kind byte MAP
UNMAP_SEGMENT = struct.Struct("<I")  #: after the kind byte UNMAP
STREAM = struct.Struct(f"<{KEY_SIZE}s{NONCE_SIZE}sB")
REPLY = struct.Struct("<QB")
REASON = struct.Struct("<H")
CIPHERS = tuple(StreamCipher)
WORD_TYPES: dict[int, np.dtype[np.unsignedinteger]] = {4: np.dtype("<u4"), 8: np.dtype("<u8")}
OK, REFUSED = 0, 1
#: the largest mask the child builds (words); the parent sends far smaller ones
MAX_WORDS = 1 << 28

Streams = Sequence[tuple[bytes, bytes, int]]


def read_reason(stream: BinaryIO) -> str:
    size = read_exact(stream, REASON.size)
    reason = read_exact(stream, REASON.unpack(size)[0]) if size else None
    return reason.decode("ascii", "replace") if reason is not None else "no reason"


def read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = bytearray(size)
    return bytes(data) if _fill(stream, memoryview(data)) else None


def read_into(stream: BinaryIO, out: np.ndarray) -> np.ndarray | None:
    return out if _fill(stream, memoryview(out.data).cast("B")) else None


def _fill(stream: BinaryIO, view: memoryview) -> bool:
    """Fill ``view`` from ``stream``; False at end of file before it is full."""
    while view:
        got = stream.readinto(view)  # type: ignore[attr-defined]
        if not got:
            return False
        view = view[got:]
    return True
