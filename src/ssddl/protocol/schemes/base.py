"""The shape of a sharing scheme (ParaShare), shared by the participant and the server.

A scheme is a stateless object: every piece of round state it needs lives in the participant's
``scheme_state`` or the server round's ``data`` (both persisted through the scheme's own
``encode_*``/``decode_*``), so the same scheme object serves every participant and session.
A scheme whose state is a :class:`~ssddl.protocol.state.Record` names its record types
(``member_record``, ``server_record``): the default hooks then persist it, and
``member_state``/``round_data`` hand it out typed.

What a scheme provides:

- configuration rules: whether it needs pair keys, uses a threshold, the smallest safe group,
  the modulus its sum lives in;
- what it adds to the protocol: the message classes of its own kinds (``messages``) and the
  enum of its own server stages (``stages``), which ``register_scheme`` registers with it;
- the round part of both stage tables (Init and the end of a session are common to all);
- participant side: ``contribute`` (from the checked local change to the first message of
  ParaShare) and handlers for the scheme's own message kinds;
- server side: checks of the scheme's messages and the close of each of its phases, which
  ends in ``server.apply_secure`` / ``server.apply_plain`` (ParaUpdate) or ``server.abort``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage, UnexpectedMessage
from ssddl.protocol.config import Recovery, SessionParams, default_threshold
from ssddl.protocol.messages import Kind, Message
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes._common import Guarantee
from ssddl.protocol.stages import (
    BaseServerStage,
    ParticipantStage,
    ParticipantTable,
    ServerStage,
    ServerTable,
    Variant,
)
from ssddl.protocol.state import Record

__all__ = [
    "ParticipantHandler",
    "Scheme",
    "ServerCheck",
    "ServerCloser",
]

ParticipantHandler = Callable[[MemberRole, Any], list[Message]]
ServerCheck = Callable[[ServerRole, Any], None]
ServerCloser = Callable[[ServerRole], list[Envelope]]

P = ParticipantStage
S = ServerStage
R = TypeVar("R", bound=Record)


class Scheme(ABC):
    """Base class of sharing schemes. Subclasses set the class attributes and override the
    hooks they use; the defaults describe a scheme with pair keys and no threshold."""

    #: the mode name users select (``ProtocolConfig(mode=name)``)
    name: ClassVar[str]
    #: a secure scheme encodes into the ring and is checked for overflow
    secure: ClassVar[bool] = True
    #: members agree pair keys in Init (X25519 + forward-secure PRNGs)
    needs_keys: ClassVar[bool] = True
    #: the scheme takes a threshold (``ProtocolConfig.threshold``)
    uses_threshold: ClassVar[bool] = False
    #: the smallest ``min_group_size`` that keeps one member's change hidden
    min_group_floor: ClassVar[int] = 1
    #: the server stage a round starts in (after SelectGroup)
    first_stage: ClassVar[BaseServerStage] = ServerStage.COLLECTING_UPLOADS
    #: upload kinds whose ring-word payload the server adds into one running sum on arrival
    #: (``ServerRole.summed()``) instead of keeping every upload: O(M) memory, not O(n·M)
    summed_uploads: ClassVar[frozenset[Kind]] = frozenset()
    #: the message classes of the scheme's own kinds (registered with the scheme)
    messages: ClassVar[tuple[type[Message], ...]] = ()
    #: the enum of the scheme's own server stages (registered with the scheme), if any
    stages: ClassVar[type[BaseServerStage] | None] = None
    #: the record type of the member's round state (``MemberRole.scheme_state``), if any
    member_record: ClassVar[type[Record] | None] = None
    #: the record type of the server's round data (``OpenRound.data``), if any
    server_record: ClassVar[type[Record] | None] = None

    # -- configuration ---------------------------------------------------------------------

    def resolve_recovery(self, recovery: Recovery | None) -> Recovery:
        """The dropout recovery that runs; only ``none`` unless the scheme offers others."""
        if recovery not in (None, Recovery.NONE):
            raise ConfigurationError(
                f"recovery={getattr(recovery, 'value', recovery)!r} is only used in mode "
                f"'prg', not {self.name!r}; drop it"
            )
        return Recovery.NONE

    def takes_threshold(self, recovery: Recovery) -> bool:
        """Whether a threshold is part of this scheme (with this recovery)."""
        return self.uses_threshold

    def all_contribute(self, recovery: Recovery) -> bool:
        """Whether a round needs every member of its group (a member lost aborts it)."""
        return not self.uses_threshold

    def split_margin(self, recovery: Recovery, consistency: bool) -> int | None:
        """Against a server that shows members different lists (survivors, contributors):
        the session survives c colluders while ``2t − n − margin >= c``. None: there is no
        list to split (every member contributes, or nothing is released after uploads)."""
        return None

    def resolve_threshold(
        self,
        threshold: int | None,
        group_size: int,
        recovery: Recovery,
        *,
        colluders: int | None = None,
        consistency: bool = False,
    ) -> int:
        """The threshold that runs (0 = the scheme has none). Unless given: the smallest of
        ``2n/3 + 1`` (Bonawitz et al.'s choice against an active server) and, for
        ``colluders`` given, the smallest t with ``2t − n − margin >= colluders``, whichever
        is larger; never above the group size."""
        if not self.takes_threshold(recovery):
            return 0
        resolved = threshold
        if resolved is None:
            resolved = default_threshold(group_size)
            margin = self.split_margin(recovery, consistency)
            if colluders is not None and margin is not None:
                needed = -(-(group_size + colluders + margin) // 2)
                resolved = min(group_size, max(resolved, needed))
        if resolved > group_size:
            raise ConfigurationError(
                f"threshold={resolved} exceeds the group size {group_size}; "
                f"use threshold <= {group_size}"
            )
        return resolved

    def capacity_modulus(self, ring_bits: int) -> int:
        """The modulus the signed sum of a full group must stay inside."""
        return 1 << ring_bits

    # -- stage tables (the round part) -------------------------------------------------------

    def check_params(self, params: SessionParams) -> None:
        """Refuse resolved parameters the scheme cannot run (ConfigurationError)."""
        return None

    def guarantee(self, params: SessionParams) -> Guarantee:
        """What a session with these parameters protects (stated in reports and docs). The
        default: every member of a group contributes, so an honest server's groups of n
        hide a member from n − 2 colluders, and a server that chooses groups can go down to
        the members' floor (``min_contributors``)."""
        n, floor = params.group_size, params.min_contributors
        return Guarantee(
            n - 2,
            0,
            1,
            "every member of a round's group must upload; a member lost aborts the round",
            lying=(floor - 2, 0),
        )

    @abstractmethod
    def participant_table(self, variant: Variant) -> ParticipantTable:
        """Every (stage, message kind) of a round the participant accepts, and where it goes.
        Must contain ``(READY, ROUND_START)``."""

    @abstractmethod
    def server_table(self, variant: Variant) -> ServerTable:
        """Every (stage, event) of a round the server accepts, and the stages it may reach."""

    # -- participant side ------------------------------------------------------------------

    @abstractmethod
    def contribute(self, participant: MemberRole, delta: np.ndarray, count: int) -> list[Message]:
        """ParaShare's first step: the member's messages for its checked local change."""

    def participant_handlers(self) -> Mapping[Kind, ParticipantHandler]:
        """Handlers of the scheme's own server → participant messages."""
        return {}

    def encode_participant_state(self, state: Any) -> bytes:
        """The scheme's participant round state as bytes (``b""`` for none)."""
        return self._encode_record(state, self.member_record, "participant state")

    def decode_participant_state(self, data: bytes) -> Any:
        return self._decode_record(data, self.member_record, "participant state")

    @staticmethod
    def member_state(participant: MemberRole, record: type[R]) -> R:
        """The member's round state, typed: a ``record`` (UnexpectedMessage if the member
        holds none, e.g. a message out of turn)."""
        state = participant.scheme_state
        if not isinstance(state, record):
            raise UnexpectedMessage(
                f"participant {participant.id} holds no {record.__name__} in round "
                f"{participant.round}"
            )
        return state

    # -- server side -----------------------------------------------------------------------

    def server_checks(self) -> Mapping[Kind, ServerCheck]:
        """Validators of the scheme's participant → server messages (raise, never store)."""
        return {}

    def server_closers(self) -> Mapping[BaseServerStage, ServerCloser]:
        """What ends each of the scheme's server phases."""
        return {}

    def encode_server_data(self, data: Any) -> bytes:
        return self._encode_record(data, self.server_record, "server round data")

    def decode_server_data(self, data: bytes) -> Any:
        return self._decode_record(data, self.server_record, "server round data")

    @staticmethod
    def round_data(server: ServerRole, record: type[R]) -> R:
        """The data of the server's open phase, typed: a ``record`` (UnexpectedMessage if
        the phase holds none)."""
        data = server.open.data
        if not isinstance(data, record):
            raise UnexpectedMessage(f"round {server.round} holds no {record.__name__}")
        return data

    def _encode_record(self, state: Any, record: type[Record] | None, what: str) -> bytes:
        if state is None:
            return b""
        if record is None or not isinstance(state, record):
            expected = f"a {record.__name__}" if record is not None else "nothing"
            raise ConfigurationError(f"scheme {self.name!r} keeps {expected} as its {what}")
        return state.to_bytes()

    def _decode_record(self, data: bytes, record: type[Record] | None, what: str) -> Any:
        if not data:
            return None
        if record is None:
            raise MalformedMessage(f"scheme {self.name!r} keeps no {what}, but some was saved")
        return record.from_bytes(data)

    def __repr__(self) -> str:
        return f"<scheme {self.name!r}>"
