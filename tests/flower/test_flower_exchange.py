"""FlowerExchange and the ClientApp plumbing in one process, over a fake Grid that behaves
like Flower's (message ids assigned on push, replies pulled by reply_to id, SuperLink-made
error replies from node id 1). No Flower processes: these run in well under a second.

The grid answers synchronously, at push time, and every timeout is a generous 600 s: a reply
is never raced. A silent node (``grid.silent``) is reported missing without waiting, and the
pull loop's wait for an unanswered message runs on simulated time (``SimulatedClock``)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict

from ssddl.exceptions import ConfigurationError, InvalidSignature, ProtocolError
from ssddl.protocol.messages import SessionEnd
from ssddl.runtime.flower import FlowerExchange, Frame, answer, frame_mod, frame_query
from ssddl.runtime.flower._records import (
    ERROR_INTERNAL,
    ERROR_MALFORMED,
    ERROR_REJECTED,
    frame_kind,
)
from ssddl.runtime.flower.client import STATE_KEY, STATE_RECORD

pytestmark = pytest.mark.usefixtures("task_identity")

NODES = {1: 9001, 2: 9002, 3: 9003}
STATE = struct.Struct("<QQ")


def counter(state: bytes | None, frames: list[bytes], context: Any) -> tuple[bytes, list[bytes]]:
    count, total = STATE.unpack(state) if state is not None else (0, 0)
    for frame in frames:
        if frame == b"reject":
            raise ProtocolError("refused frame 'reject'")
        if frame == b"crash":
            raise RuntimeError("secret value 1234 must not leave the node")
        count, total = count + 1, total + int.from_bytes(frame, "little")
    return STATE.pack(count, total), [
        STATE.pack(count, total),
        context.node_id.to_bytes(8, "little"),
    ]


class FakeGrid:
    """Delivers each message to an in-process ClientApp function with a per-node Context."""

    def __init__(self, app: Callable[[Message, Context], Message], nodes: set[int]) -> None:
        self.app = app
        self.contexts = {
            n: Context(run_id=7, node_id=n, node_config={}, state=RecordDict(), run_config={})
            for n in nodes
        }
        self.silent: set[int] = set()
        self.timeouts: list[float | None] = []
        self.extra: list[Callable[[list[Message]], list[Message]]] = []

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        self.timeouts.append(timeout)
        messages = list(messages)
        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            node = msg.metadata.dst_node_id
            if node in self.silent:
                continue
            replies.append(self.app(msg, self.contexts[node]))
        for make in self.extra:
            replies += make(messages)
        return replies

    def push_messages(self, messages: Any) -> list[str]:
        self.pushed = self.send_and_receive(messages, timeout=None)
        self.sent_groups = [m.metadata.group_id for m in messages]
        return [r.metadata.reply_to_message_id for r in self.pushed] + ["never-answered"]

    def pull_messages(self, message_ids: Any) -> list[Message]:
        self.pulls = getattr(self, "pulls", 0) + 1
        wanted = set(message_ids)
        out = [r for r in self.pushed if r.metadata.reply_to_message_id in wanted]
        self.pushed = []  # each reply is pulled once
        return out


def make(handler: Any = counter, nodes: dict[int, int] = NODES) -> tuple[FakeGrid, FlowerExchange]:
    grid = FakeGrid(frame_query(handler), set(nodes.values()))
    return grid, FlowerExchange(grid, nodes, default_timeout=600.0)


def value(v: int) -> bytes:
    return v.to_bytes(8, "little")


def test_state_persists_and_replies_come_from_the_mapped_node() -> None:
    grid, ex = make()
    for batch in range(3):
        frames = [Frame(0, p, value(10 * batch + p)) for p in NODES]
        frames.append(Frame(0, 3, value(1000)))  # two frames for node 3 in one batch
        replies = ex.send_and_receive(frames, timeout=600.0)
        assert len(replies) == 6
        by_sender: dict[int, list[bytes]] = {}
        for f in replies:
            assert f.recipient == 0
            by_sender.setdefault(f.sender, []).append(f.data)
        for pid, (summary, node) in by_sender.items():
            # the node id the ClientApp saw is the one the mapping names for that sender
            assert int.from_bytes(node, "little") == NODES[pid]
            count, total = STATE.unpack(summary)
            extra = 1000 * (batch + 1) if pid == 3 else 0
            assert count == (batch + 1) * (2 if pid == 3 else 1)
            assert total == sum(10 * b + pid for b in range(batch + 1)) + extra
    assert grid.timeouts == [600.0, 600.0, 600.0]
    assert ex.last_batch is not None and ex.last_batch.missing == ()
    # one Flower message per node per batch, frame payload bytes counted both ways
    # (a reply is 24 bytes: 16 of summary + 8 of node id; a value frame is 8 bytes)
    assert ex.bytes_by_participant() == {1: {"up": 72, "down": 24}, 2: {"up": 72, "down": 24},
                                         3: {"up": 72, "down": 48}}  # fmt: skip
    assert ex.bytes_by_kind() == {"opaque": {"up": 216, "down": 96}}


def test_no_timeout_means_the_default_never_forever() -> None:
    grid, ex = make()
    ex.send_and_receive([Frame(0, 1, value(1))], timeout=None)
    assert grid.timeouts == [600.0]
    assert ex.send_and_receive([], timeout=None) == []
    assert grid.timeouts == [600.0]  # an empty batch does not touch the grid


def test_silent_node_is_missing_and_next_batch_proceeds() -> None:
    grid, ex = make()
    grid.silent = {NODES[2]}
    replies = ex.send_and_receive([Frame(0, p, value(p)) for p in NODES], timeout=600.0)
    assert {f.sender for f in replies} == {1, 3}
    assert ex.last_batch is not None and ex.last_batch.missing == (2,)
    grid.silent = set()
    replies = ex.send_and_receive([Frame(0, p, value(p)) for p in NODES], timeout=600.0)
    assert {f.sender for f in replies} == {1, 2, 3}
    counts = {f.sender: STATE.unpack(f.data)[0] for f in replies if len(f.data) == 16}
    assert counts == {1: 2, 2: 1, 3: 2}


def test_handler_errors_become_error_replies_without_payload_and_keep_state() -> None:
    grid, ex = make()
    ex.send_and_receive([Frame(0, 1, value(5))], timeout=600.0)
    replies = ex.send_and_receive([Frame(0, 1, b"reject"), Frame(0, 2, b"crash")], timeout=600.0)
    assert replies == []
    assert ex.last_batch is not None and ex.last_batch.rejected == (1, 2)
    (r1, r2) = ex.errors
    assert (r1.participant, r1.code) == (1, ERROR_REJECTED)
    assert r1.reason == "ProtocolError: refused frame 'reject'"
    assert (r2.participant, r2.code) == (2, ERROR_INTERNAL)
    assert "1234" not in r2.reason and "Traceback" not in r2.reason
    assert r2.reason == "internal error (RuntimeError)"
    # node 1's state is what it was before the rejected batch
    state = grid.contexts[NODES[1]].state.config_records[STATE_RECORD][STATE_KEY]
    assert STATE.unpack(state) == (1, 5)


def test_bad_replies_are_dropped_and_counted() -> None:
    grid, ex = make()

    def forged(sent: list[Message]) -> list[Message]:
        target = sent[0]
        out = []
        # a second answer to the same message (duplicate)
        out.append(Message(RecordDict({"ssddl": ConfigRecord({"frames": [b"x"]})}),
                           reply_to=target))  # fmt: skip
        # an answer to a message of another batch
        other = Message(RecordDict(), NODES[1], "query.ssddl")
        other.metadata.__dict__["_message_id"] = "not-in-this-batch"
        out.append(Message(RecordDict({"ssddl": ConfigRecord({"frames": [b"y"]})}),
                           reply_to=other))  # fmt: skip
        # a reply whose source is a node outside the mapping
        stranger = Message(RecordDict({"ssddl": ConfigRecord({"frames": [b"z"]})}),
                           reply_to=sent[1])  # fmt: skip
        stranger.metadata.__dict__["_src_node_id"] = 4242
        out.append(stranger)
        # a reply from a mapped node to another node's message
        swapped = Message(RecordDict({"ssddl": ConfigRecord({"frames": [b"w"]})}),
                          reply_to=sent[2])  # fmt: skip
        swapped.metadata.__dict__["_src_node_id"] = NODES[1]
        out.append(swapped)
        return out

    grid.extra.append(forged)
    grid.silent = {NODES[2], NODES[3]}
    replies = ex.send_and_receive([Frame(0, p, value(p)) for p in NODES], timeout=600.0)
    assert [f.sender for f in replies] == [1, 1]  # node 1's genuine answer only
    assert b"x" not in {f.data for f in replies}
    assert ex.dropped == {"duplicate": 1, "unmatched": 1, "unknown_node": 1,
                          "sender_mismatch": 1}  # fmt: skip
    assert ex.last_batch is not None and ex.last_batch.missing == (2, 3)


def test_superlink_error_reply_is_a_rejection_for_the_target() -> None:
    grid, ex = make()
    grid.silent = {NODES[3]}

    def offline(sent: list[Message]) -> list[Message]:
        err = Message(Error(code=5, reason="node unavailable"), reply_to=sent[2])
        err.metadata.__dict__["_src_node_id"] = 1  # made by the SuperLink
        return [err]

    grid.extra.append(offline)
    ex.send_and_receive([Frame(0, p, value(p)) for p in NODES], timeout=600.0)
    assert ex.errors[-1].participant == 3 and ex.errors[-1].code == 5
    assert ex.last_batch is not None and ex.last_batch.rejected == (3,)


def test_malformed_reply_content_is_a_rejection() -> None:
    grid = FakeGrid(lambda m, c: Message(RecordDict(), reply_to=m), {9001})
    ex = FlowerExchange(grid, {1: 9001})
    assert ex.send_and_receive([Frame(0, 1, b"a")], timeout=600.0) == []
    assert ex.errors[0].code == ERROR_MALFORMED


def test_ssddl_frames_are_counted_by_kind() -> None:
    grid = FakeGrid(frame_query(lambda s, f, c: (b"", list(f))), {9001})  # echo
    ex = FlowerExchange(grid, {1: 9001})
    data = SessionEnd(session_id=bytes(16), rounds=3).encode()
    assert frame_kind(data) == "session_end"
    ex.send_and_receive([Frame(0, 1, data)], timeout=600.0)
    assert ex.bytes_by_kind() == {"session_end": {"up": len(data), "down": len(data)}}


def test_mod_answers_its_type_and_passes_the_rest() -> None:
    mod = frame_mod(counter, message_type="train.ssddl")
    ctx = Context(run_id=7, node_id=9001, node_config={}, state=RecordDict(), run_config={})
    seen = []

    def call_next(message: Message, context: Context) -> Message:
        seen.append(message.metadata.message_type)
        return Message(RecordDict(), reply_to=message)

    for kind in ("train.ssddl", "train"):
        msg = Message(RecordDict({"ssddl": ConfigRecord({"frames": [value(3)]})}), 9001, kind)
        msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
        reply = mod(msg, ctx, call_next)
    assert seen == ["train"]
    assert STATE.unpack(ctx.state.config_records[STATE_RECORD][STATE_KEY]) == (1, 3)
    assert reply.content.config_records == {}


def test_answer_refuses_messages_without_frames() -> None:
    ctx = Context(run_id=7, node_id=9001, node_config={}, state=RecordDict(), run_config={})
    msg = Message(RecordDict({"ssddl": ConfigRecord({"frames": "nope"})}), 9001, "query.ssddl")
    msg.metadata.__dict__["_message_id"] = "m"
    reply = answer(msg, ctx, counter)
    assert reply.has_error() and reply.error.code == ERROR_MALFORMED
    assert STATE_RECORD not in ctx.state


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"node_ids": {}}, "non-empty"),
        ({"node_ids": {0: 9001}}, "protocol id 0"),
        ({"node_ids": {1: 9001, 2: 9001}}, "same Flower node id"),
        ({"node_ids": {1: "9001"}}, "must be an int"),
        ({"node_ids": {1: 1}}, "SuperLink"),
        ({"message_type": "ssddl"}, "message_type"),
        ({"message_type": "query.not-an-id"}, "message_type"),
        ({"default_timeout": float("inf")}, "default_timeout"),
        ({"default_timeout": -1}, "default_timeout"),
        ({"ttl": 0}, "ttl"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"node_ids": NODES, **kwargs}
    node_ids = args.pop("node_ids")
    with pytest.raises(ConfigurationError, match=field):
        FlowerExchange(FakeGrid(frame_query(counter), set()), node_ids, **args)


@pytest.mark.parametrize(
    ("frame", "timeout", "field"),
    [
        (Frame(2, 1, b"x"), 1.0, "sender 0"),
        (Frame(0, 7, b"x"), 1.0, "recipient 7"),
        (Frame(0, 1, "text"), 1.0, "bytes data"),  # type: ignore[arg-type]
        (Frame(0, 1, b"x"), float("nan"), "timeout"),
    ],
)
def test_bad_frames_name_the_problem(frame: Frame, timeout: float, field: str) -> None:
    _, ex = make()
    with pytest.raises(ConfigurationError, match=field):
        ex.send_and_receive([frame], timeout=timeout)


def test_handler_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="handler"):
        frame_query(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="message_type"):
        frame_mod(counter, message_type="bogus.x")


def test_invalid_signature_text_reaches_the_server() -> None:
    def picky(state: bytes | None, frames: list[bytes], context: Any) -> tuple[bytes, list[bytes]]:
        raise InvalidSignature("key advert of participant 2 does not verify")

    _, ex = make(picky)
    ex.send_and_receive([Frame(0, 2, b"a")], timeout=600.0)
    assert ex.errors[0].reason == ("InvalidSignature: key advert of participant 2 does not verify")


class SimulatedClock:
    """The exchange's time, moved only by its own waits: a test that waits out a deadline
    takes no wall time and cannot be cut short by a busy machine."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_poll_interval_pulls_until_the_timeout_and_labels_the_round() -> None:
    grid = FakeGrid(frame_query(counter), set(NODES.values()))
    clock = SimulatedClock()
    ex = FlowerExchange(grid, NODES, poll_interval=5.0, clock=clock, sleep=clock.sleep)
    replies = ex.send_and_receive(
        [Frame(0, p, value(p)) for p in NODES], timeout=600.0, round_number=4
    )
    assert clock.now == 600.0  # one message id never answers: the whole timeout is waited
    assert clock.waits == [5.0] * 120 and grid.pulls == 121  # a pull per interval, and one
    assert ex.last_batch is not None and ex.last_batch.seconds == 600.0
    assert sorted({f.sender for f in replies}) == [1, 2, 3]
    assert grid.sent_groups == ["4", "4", "4"]


def test_error_replies_reach_the_driver_as_rejections() -> None:
    from ssddl.runtime.exchange import Rejection

    _, ex = make()
    ex.send_and_receive(
        [Frame(0, 1, b"reject"), Frame(0, 2, b"crash")], timeout=600.0, round_number=2
    )
    assert ex.rejections == [
        Rejection(2, 1, 0, "opaque", "ProtocolError", "refused frame 'reject'"),
        Rejection(2, 2, 0, "opaque", "FlowerError102", "internal error (RuntimeError)"),
    ]


def test_bad_poll_interval_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="poll_interval"):
        FlowerExchange(FakeGrid(frame_query(counter), set()), NODES, poll_interval=0)
