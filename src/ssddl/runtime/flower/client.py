"""The ClientApp side: answer frame batches with a handler whose state lives in ``context.state``.

In Flower's deployment engine every message to a SuperNode runs in a fresh ClientApp process,
so nothing but ``context.state`` survives from one message to the next. A participant is
therefore written as a :data:`FrameHandler`: persisted state bytes (None before the first
message) and the frames of one batch in, the new state bytes and the reply frames out. The
state bytes are kept in ``context.state[STATE_RECORD][STATE_KEY]``.

Two ways to plug a handler in, both built on :func:`answer`:

* :func:`frame_query` returns the function to register with ``@app.query("ssddl")`` on a
  Message-API ``ClientApp()``; Flower routes ``query.ssddl`` messages to it. This is what the
  demo apps use: the protocol is its own message type, never mixed with training messages.
* :func:`frame_mod` returns a Flower ``Mod`` that answers messages of one type itself and
  passes every other message down the chain (``call_next``), so an existing ClientApp —
  including a legacy ``ClientApp(client_fn=..., mods=[...])`` — adopts ssddl by adding a mod,
  the way Flower users add ``secaggplus_mod``.

A handler's ``SSDDLError`` becomes a Flower error reply (code ``ERROR_REJECTED``) whose reason
is the error's message; any other exception becomes ``ERROR_INTERNAL`` with only its type name
(its text might quote secret values). Neither carries a traceback or a payload, and on error
the persisted state is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ssddl.exceptions import ConfigurationError, MalformedMessage, SSDDLError
from ssddl.runtime.flower._records import (
    ERROR_INTERNAL,
    ERROR_MALFORMED,
    ERROR_REJECTED,
    FRAMES,
    RECORD,
    check_message_type,
    frames_in,
)

__all__ = ["STATE_KEY", "STATE_RECORD", "FrameHandler", "answer", "frame_mod", "frame_query"]

#: (persisted state or None, frames in, Flower context) -> (new state, reply frames)
FrameHandler = Callable[[bytes | None, list[bytes], Any], tuple[bytes, list[bytes]]]

STATE_RECORD = "ssddl.state"
STATE_KEY = "state"

#: The node's log: a child of Flower's logger, so the SuperNode's output shows every refusal.
_log = logging.getLogger("flwr.ssddl.node")


def _load_state(context: Any) -> bytes | None:
    if STATE_RECORD not in context.state:
        return None
    state = context.state.config_records[STATE_RECORD].get(STATE_KEY)
    if not isinstance(state, bytes):
        raise MalformedMessage(
            f"context.state[{STATE_RECORD!r}][{STATE_KEY!r}] must be bytes; "
            "something else wrote to this record"
        )
    return state


def answer(message: Any, context: Any, handler: FrameHandler) -> Any:
    """Run ``handler`` on the frames of ``message`` and return the Flower reply message."""
    from flwr.app import ConfigRecord, Error, Message, RecordDict

    def error_reply(code: int, reason: str) -> Any:
        return Message(Error(code=code, reason=reason), reply_to=message)

    try:
        frames = frames_in(message.content)
        state = _load_state(context)
    except MalformedMessage as exc:
        return error_reply(ERROR_MALFORMED, str(exc))
    try:
        new_state, replies = handler(state, list(frames), context)
        if not isinstance(new_state, bytes) or not isinstance(replies, list):
            raise MalformedMessage("a FrameHandler must return (bytes, list[bytes])")
        if not all(isinstance(r, bytes) for r in replies):
            raise MalformedMessage("a FrameHandler's reply frames must all be bytes")
    except SSDDLError as exc:
        _log.warning(
            "node %s refused a message of run %s: %s: %s",
            getattr(context, "node_id", "?"),
            getattr(context, "run_id", "?"),
            type(exc).__name__,
            exc,
        )
        return error_reply(ERROR_REJECTED, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        _log.error(
            "node %s failed on a message of run %s with %s (its text is not logged: it may "
            "quote secret values)",
            getattr(context, "node_id", "?"),
            getattr(context, "run_id", "?"),
            type(exc).__name__,
        )
        return error_reply(ERROR_INTERNAL, f"internal error ({type(exc).__name__})")
    context.state[STATE_RECORD] = ConfigRecord({STATE_KEY: new_state})
    return Message(RecordDict({RECORD: ConfigRecord({FRAMES: replies})}), reply_to=message)


def frame_query(handler: FrameHandler) -> Callable[[Any, Any], Any]:
    """The ``(message, context) -> reply`` function to register with ``@app.query(...)``."""
    if not callable(handler):
        raise ConfigurationError("handler must be a callable FrameHandler")

    def query(message: Any, context: Any) -> Any:
        return answer(message, context, handler)

    return query


def frame_mod(handler: FrameHandler, *, message_type: str = "query.ssddl") -> Callable[..., Any]:
    """A Flower ``Mod`` answering ``message_type`` messages with ``handler`` and passing
    every other message to the rest of the ClientApp."""
    if not callable(handler):
        raise ConfigurationError("handler must be a callable FrameHandler")
    try:
        check_message_type(message_type)
    except MalformedMessage as exc:
        raise ConfigurationError(str(exc)) from None

    def mod(message: Any, context: Any, call_next: Callable[[Any, Any], Any]) -> Any:
        if message.metadata.message_type == message_type:
            return answer(message, context, handler)
        return call_next(message, context)

    return mod
