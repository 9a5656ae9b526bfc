"""ClientApp: a FrameHandler whose whole state is 16 bytes (count, sum) in context.state.

Each incoming frame is an 8-byte little-endian value: the node adds it to its sum and counts
it. The reply is one frame ``(count, sum, context.node_id, os.getpid())`` so that the server
can check persistence (count/sum), the sender mapping (node id) and the fresh process (pid).
Frame ``b"reject"`` makes the handler raise a ProtocolError; frame ``b"silent"`` makes it
answer with zero frames.
"""

from __future__ import annotations

import os
import struct

from flwr.app import Context
from flwr.clientapp import ClientApp

from ssddl.exceptions import ProtocolError
from ssddl.runtime.flower import frame_query

STATE = struct.Struct("<QQ")
REPLY = struct.Struct("<QQQQ")
VALUE = struct.Struct("<Q")


def counter(
    state: bytes | None, frames: list[bytes], context: Context
) -> tuple[bytes, list[bytes]]:
    count, total = STATE.unpack(state) if state is not None else (0, 0)
    if b"silent" in frames:
        return STATE.pack(count, total), []
    for frame in frames:
        if frame == b"reject":
            raise ProtocolError("counter refuses frame 'reject' (test of error replies)")
        (value,) = VALUE.unpack(frame)
        count, total = count + 1, total + value
    reply = REPLY.pack(count, total, context.node_id, os.getpid())
    return STATE.pack(count, total), [reply]


app = ClientApp()
app.query("ssddl")(frame_query(counter))
