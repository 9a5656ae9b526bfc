"""How a batch of frames travels inside a Flower ``Message``, on both sides.

A Flower message between the server and one node carries one ``ConfigRecord`` named
``"ssddl"`` whose entry ``"frames"`` is a list of ``bytes`` (each an encoded protocol
message). Errors travel as Flower error replies with one of the codes below; their reason is
a one-line message and never carries a payload or a traceback.
"""

from __future__ import annotations

from typing import Any

from ssddl.exceptions import MalformedMessage
from ssddl.protocol.messages import kind_of
from ssddl.protocol.wire import read_header

__all__ = [
    "ERROR_INTERNAL",
    "ERROR_MALFORMED",
    "ERROR_REJECTED",
    "FRAMES",
    "HELLO",
    "RECORD",
    "TRAIN_CONFIG",
    "carries_ssddl",
    "check_message_type",
    "frame_kind",
    "frames_in",
]

RECORD = "ssddl"
#: The ConfigRecord that marks the workflow's discovery message (and its reply).
HELLO = "ssddl.hello"
FRAMES = "frames"
#: A ``ConfigRecord`` the ServerApp may add to a node's first message of a round: the
#: strategy's train config for that node (learning rate, epochs, ...). It is a hint for the
#: ClientApp's own LocalTrain, like FedAvg's config, and plays no part in the protocol.
TRAIN_CONFIG = "ssddl.train-config"

#: The handler raised an ``SSDDLError``: the reason is its message (no payload).
ERROR_REJECTED = 100
#: The Flower message did not carry a well-formed frames record.
ERROR_MALFORMED = 101
#: The handler raised something that is not an ``SSDDLError``: the reason names only the
#: exception type, since a foreign exception's text may quote secret values.
ERROR_INTERNAL = 102

_CATEGORIES = ("train", "evaluate", "query")


def check_message_type(message_type: str) -> str:
    """Accept ``"<train|evaluate|query>.<action>"`` (what Flower routes to a decorated
    function) or plain ``"train"`` (routed to ``@app.train()``, through the ClientApp's mods:
    the way :func:`~ssddl.runtime.flower.mod.ssddl_mod` is reached in a Message-API app, as
    SecAgg+'s stages are ``train`` messages); raise ``MalformedMessage`` otherwise."""
    if message_type == "train":
        return message_type
    category, _, action = (
        message_type.partition(".") if isinstance(message_type, str) else ("", "", "")
    )
    if category not in _CATEGORIES or not action.isidentifier():
        raise MalformedMessage(
            f"message_type must look like 'query.ssddl' (one of {', '.join(_CATEGORIES)}, a dot "
            f"and a Python identifier) or be 'train', got {message_type!r}"
        )
    return message_type


def carries_ssddl(message: Any) -> bool:
    """Whether a Flower message holds ssddl frames or the discovery challenge."""
    if not message.has_content():
        return False
    records = message.content.config_records
    return RECORD in records or HELLO in records


def frames_in(content: Any) -> list[bytes]:
    """The frames of a Flower ``RecordDict``; ``MalformedMessage`` if it has none."""
    try:
        record = content.config_records[RECORD]
        frames = record[FRAMES]
    except (AttributeError, KeyError, TypeError):
        raise MalformedMessage(
            f"the Flower message has no ConfigRecord {RECORD!r} with a {FRAMES!r} entry"
        ) from None
    if not isinstance(frames, list) or not all(isinstance(f, bytes) for f in frames):
        raise MalformedMessage(f"ConfigRecord {RECORD!r} entry {FRAMES!r} must be a list of bytes")
    return frames


def frame_kind(data: bytes) -> str:
    """The protocol message kind of a frame, lower case (``"upload"``), for byte accounting;
    ``"opaque"`` for bytes that are not an ssddl message."""
    try:
        return kind_of(read_header(data)).name.lower()
    except (MalformedMessage, ValueError):
        return "opaque"
