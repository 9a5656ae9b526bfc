"""``FlowerExchange``: the Grid-shaped seam carried over Flower's Message API.

One call of :meth:`FlowerExchange.send_and_receive` is one ``Grid.send_and_receive`` round
trip: the frames are grouped by recipient into one Flower ``Message`` per node (a
``ConfigRecord`` ``"ssddl"`` whose ``"frames"`` entry is a list of bytes), protocol ids are
mapped to Flower node ids on the way out and back on the way in, and the call returns
every reply frame that arrived within the timeout.

Who sent a reply is what the SuperLink says: the ``src_node_id`` of a reply, which the
SuperLink only stores when it equals the destination of the message it answers (and, with
SuperNode authentication, the node is the holder of a registered key). Nothing is read from
the payload for that. Replies that do not answer a message of this batch, come from a node
outside the mapping, or answer a node's message twice are dropped and counted in
:attr:`FlowerExchange.dropped`. Error replies are kept as :class:`ErrorReply` values (Flower's
code and reason, no payload) and, for the :class:`~ssddl.runtime.exchange.Driver`, as
:class:`~ssddl.runtime.exchange.Rejection` values in :attr:`FlowerExchange.rejections`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssddl.exceptions import ConfigurationError, MalformedMessage
from ssddl.protocol.messages import SERVER
from ssddl.runtime.exchange import Frame, Rejection
from ssddl.runtime.flower._records import (
    ERROR_MALFORMED,
    ERROR_REJECTED,
    FRAMES,
    RECORD,
    TRAIN_CONFIG,
    check_message_type,
    frame_kind,
    frames_in,
)

__all__ = ["BatchReport", "ErrorReply", "FlowerExchange"]

#: The node id Flower uses for the SuperLink itself (``flwr.common.constant``): error replies
#: the SuperLink makes on a node's behalf (node offline, message expired) come from it.
SUPERLINK_NODE_ID = 1


@dataclass(frozen=True)
class ErrorReply:
    """An error reply: which participant's message failed, Flower's error code and reason."""

    participant: int
    code: int
    reason: str


@dataclass(frozen=True)
class BatchReport:
    """What happened to one ``send_and_receive`` call, by protocol id."""

    recipients: tuple[int, ...]
    replied: tuple[int, ...]
    rejected: tuple[int, ...]
    missing: tuple[int, ...]
    seconds: float


def _check_node_ids(node_ids: Mapping[int, int]) -> dict[int, int]:
    if not isinstance(node_ids, Mapping) or not node_ids:
        raise ConfigurationError(
            "node_ids must be a non-empty mapping {protocol id: Flower node id}"
        )
    out: dict[int, int] = {}
    for pid, nid in node_ids.items():
        for value, what in ((pid, "protocol id"), (nid, "Flower node id")):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"node_ids: {what} {value!r} must be an int")
        if pid < 1:
            raise ConfigurationError(f"node_ids: protocol id {pid} must be >= 1 (0 is the server)")
        if nid == SUPERLINK_NODE_ID:
            raise ConfigurationError(
                f"node_ids: Flower node id {nid} is the SuperLink's own id, not a SuperNode"
            )
        out[pid] = nid
    if len(set(out.values())) != len(out):
        raise ConfigurationError("node_ids: two protocol ids map to the same Flower node id")
    return out


class FlowerExchange:
    """Implements the ``Exchange`` seam over a ``flwr.serverapp.Grid``.

    ``node_ids`` maps protocol ids (1..N) to Flower node ids. ``default_timeout`` (seconds)
    applies when a call passes ``timeout=None``: this exchange never waits without bound.
    Flower's HTTP grid pulls every 3 s, so a call can return up to one pull interval after
    its timeout. ``ttl`` (seconds) is the lifetime of each outgoing message at the SuperLink
    (Flower's default, 12 h, when None). ``kind_of`` names a frame's kind for the byte counts.

    ``poll_interval`` (seconds): when set, a call pushes its messages and pulls replies at
    this interval itself (``grid.push_messages`` / ``grid.pull_messages``) instead of calling
    ``grid.send_and_receive``, whose HTTP implementation sleeps 3 s between pulls.
    Each call's messages carry ``group_id = str(round_number)`` (−1 for Init).
    """

    def __init__(
        self,
        grid: Any,
        node_ids: Mapping[int, int],
        *,
        message_type: str = "query.ssddl",
        default_timeout: float = 120.0,
        ttl: float | None = None,
        kind_of: Callable[[bytes], str] = frame_kind,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            self.message_type = check_message_type(message_type)
        except MalformedMessage as exc:
            raise ConfigurationError(str(exc)) from None
        self.default_timeout = self._check_timeout(default_timeout, "default_timeout")
        if ttl is not None:
            self._check_timeout(ttl, "ttl")
            if ttl <= 0:
                raise ConfigurationError(f"ttl must be > 0 seconds, got {ttl!r}")
        self.ttl = ttl
        if poll_interval is not None:
            self._check_timeout(poll_interval, "poll_interval")
            if poll_interval <= 0:
                raise ConfigurationError(
                    f"poll_interval must be > 0 seconds, got {poll_interval!r}"
                )
        self.poll_interval = poll_interval
        self._grid = grid
        self._node_of = _check_node_ids(node_ids)
        self._pid_of = {nid: pid for pid, nid in self._node_of.items()}
        self._kind_of = kind_of
        self._clock = clock
        self._sleep = sleep  # with ``clock``, the time the pull loop waits on (a test's own)
        self._batches = 0
        #: Every error reply so far, in arrival order (Flower's code and reason).
        self.errors: list[ErrorReply] = []
        #: The same error replies as the Driver reports refusals (round, participant, error).
        self.rejections: list[Rejection] = []
        #: Replies dropped, by reason: ``unknown_node``, ``unmatched``, ``sender_mismatch``,
        #: ``duplicate``.
        self.dropped: Counter[str] = Counter()
        #: Frame payload bytes by (protocol id, kind, "up" | "down").
        self.traffic: Counter[tuple[int, str, str]] = Counter()
        self.last_batch: BatchReport | None = None
        self._round = -1
        self._first_kind: dict[int, str] = {}
        self._train_configs: dict[int, dict[int, Any]] = {}

    @property
    def node_ids(self) -> dict[int, int]:
        return dict(self._node_of)

    def attach_train_config(self, round_number: int, configs: Mapping[int, Any]) -> None:
        """Send ``configs[pid]`` (a Flower ``ConfigRecord``) as :data:`TRAIN_CONFIG` with the
        first message participant ``pid`` gets in round ``round_number``."""
        from flwr.app import ConfigRecord

        for pid, record in configs.items():
            if pid not in self._node_of:
                raise ConfigurationError(f"train config for participant {pid}: no Flower node id")
            if not isinstance(record, ConfigRecord):
                raise ConfigurationError(
                    f"train config for participant {pid} must be a ConfigRecord, "
                    f"got {type(record).__name__}"
                )
        self._train_configs = {round_number: dict(configs)}

    @staticmethod
    def _check_timeout(value: Any, name: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ConfigurationError(
                f"{name} must be a finite number of seconds >= 0, got {value!r}"
            )
        return float(value)

    # -- the seam --------------------------------------------------------------------------

    def send_and_receive(
        self, frames: Sequence[Frame], *, timeout: float | None, round_number: int = -1
    ) -> list[Frame]:
        wait = self.default_timeout if timeout is None else self._check_timeout(timeout, "timeout")
        batches = self._group(frames)
        if not batches:
            return []
        from flwr.app import ConfigRecord, Message, RecordDict

        self._batches += 1
        self._round = round_number
        self._first_kind = {pid: self._kind_of(datas[0]) for pid, datas in batches.items()}
        outgoing = []
        configs = self._train_configs.get(round_number, {})
        for pid, datas in batches.items():
            content = RecordDict({RECORD: ConfigRecord({FRAMES: datas})})
            if pid in configs:
                content[TRAIN_CONFIG] = configs.pop(pid)
            kwargs: dict[str, Any] = {"group_id": str(round_number)}
            if self.ttl is not None:
                kwargs["ttl"] = self.ttl
            outgoing.append(Message(content, self._node_of[pid], self.message_type, **kwargs))
            for data in datas:
                self.traffic[(pid, self._kind_of(data), "down")] += len(data)

        started = self._clock()
        if self.poll_interval is None:
            replies = list(self._grid.send_and_receive(outgoing, timeout=wait))
        else:
            replies = self._push_and_pull(outgoing, wait, self.poll_interval)
        seconds = self._clock() - started
        # Message ids are assigned by the grid when it pushes (they are content hashes).
        target_of = {msg.metadata.message_id: msg.metadata.dst_node_id for msg in outgoing}
        received, replied, rejected = self._accept(replies, target_of)
        recipients = tuple(batches)
        self.last_batch = BatchReport(
            recipients=recipients,
            replied=tuple(sorted(replied)),
            rejected=tuple(sorted(rejected)),
            missing=tuple(p for p in recipients if p not in replied and p not in rejected),
            seconds=seconds,
        )
        return received

    def _push_and_pull(self, outgoing: list[Any], wait: float, interval: float) -> list[Any]:
        pending = set(self._grid.push_messages(outgoing))
        deadline = self._clock() + wait
        replies: list[Any] = []
        while True:
            pulled = list(self._grid.pull_messages(pending))
            replies += pulled
            pending -= {m.metadata.reply_to_message_id for m in pulled}
            if not pending or self._clock() >= deadline:
                return replies
            self._sleep(min(interval, max(0.0, deadline - self._clock())))

    def _refused(self, pid: int, code: int, reason: str) -> None:
        """Record an error reply, for Flower (code) and for the Driver (error class)."""
        self.errors.append(ErrorReply(pid, code, reason))
        name, sep, detail = reason.partition(": ")
        if code != ERROR_REJECTED or not sep or not name.isidentifier():
            name, detail = f"FlowerError{code}", reason
        kind = self._first_kind.get(pid, "opaque")
        self.rejections.append(Rejection(self._round, pid, SERVER, kind, name, detail))

    def _group(self, frames: Iterable[Frame]) -> dict[int, list[bytes]]:
        batches: dict[int, list[bytes]] = {}
        for frame in frames:
            if not isinstance(frame, Frame) or not isinstance(frame.data, bytes):
                raise ConfigurationError(
                    f"frames must be Frame values with bytes data, got {type(frame).__name__}"
                )
            if frame.sender != SERVER:
                raise ConfigurationError(
                    f"FlowerExchange sends the server's frames only (sender {SERVER}), "
                    f"got a frame from {frame.sender}"
                )
            if frame.recipient not in self._node_of:
                raise ConfigurationError(
                    f"frame recipient {frame.recipient} has no Flower node id; add it to node_ids"
                )
            batches.setdefault(frame.recipient, []).append(frame.data)
        return batches

    def _accept(
        self, replies: Iterable[Any], target_of: Mapping[str, int]
    ) -> tuple[list[Frame], set[int], set[int]]:
        received: list[Frame] = []
        replied: set[int] = set()
        rejected: set[int] = set()
        for reply in replies:
            meta = reply.metadata
            target = target_of.get(meta.reply_to_message_id)
            if target is None:
                self.dropped["unmatched"] += 1
                continue
            pid = self._pid_of[target]
            if pid in replied or pid in rejected:
                self.dropped["duplicate"] += 1
                continue
            if reply.has_error():
                if meta.src_node_id not in (target, SUPERLINK_NODE_ID):
                    self.dropped["sender_mismatch"] += 1
                    continue
                error = reply.error
                self._refused(pid, int(error.code), str(error.reason or ""))
                rejected.add(pid)
                continue
            if meta.src_node_id not in self._pid_of:
                self.dropped["unknown_node"] += 1
                continue
            if meta.src_node_id != target:
                self.dropped["sender_mismatch"] += 1
                continue
            try:
                datas = frames_in(reply.content)
            except MalformedMessage as exc:
                self._refused(pid, ERROR_MALFORMED, str(exc))
                rejected.add(pid)
                continue
            replied.add(pid)
            for data in datas:
                self.traffic[(pid, self._kind_of(data), "up")] += len(data)
                received.append(Frame(sender=pid, recipient=SERVER, data=data))
        return received, replied, rejected

    # -- accounting ------------------------------------------------------------------------

    def bytes_by_participant(self) -> dict[int, dict[str, int]]:
        """{protocol id: {"up": bytes it sent, "down": bytes it was sent}} (frame payloads)."""
        out: dict[int, dict[str, int]] = {}
        for (pid, _kind, direction), n in self.traffic.items():
            out.setdefault(pid, {"up": 0, "down": 0})[direction] += n
        return out

    def bytes_by_kind(self) -> dict[str, dict[str, int]]:
        """{kind: {"up": ..., "down": ...}} summed over participants."""
        out: dict[str, dict[str, int]] = {}
        for (_pid, kind, direction), n in self.traffic.items():
            out.setdefault(kind, {"up": 0, "down": 0})[direction] += n
        return out
