"""The stages of the participant and server state machines and their transition tables.

The tables are data: the common part (Init, the end of a round, the end of the session) is
written here once; each sharing scheme adds the round part it needs. A pure function looks a
(stage, event) pair up and raises ``UnexpectedMessage`` for every pair outside the table.
The tests walk the whole matrix of every registered scheme.

**Stages a scheme adds.** The server's stages are members of :class:`ServerStage` (the common
ones and the built-in schemes' phases) or of a scheme's own enum that subclasses
:class:`BaseServerStage`, registered with :func:`register_stages` (``register_scheme`` does it
for the enum a scheme names in ``Scheme.stages``). A stage's value is what a saved server
state holds, so a value another stage has is refused; :func:`server_stage` finds a stage by
its value when a state is restored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeAlias

from ssddl.exceptions import ConfigurationError, MalformedMessage, UnexpectedMessage
from ssddl.protocol.config import Recovery, SessionParams
from ssddl.protocol.messages import Kind
from ssddl.protocol.messages import MessageKind as K
from ssddl.protocol.registry import get_scheme

__all__ = [
    "BaseServerStage",
    "Control",
    "Event",
    "ParticipantStage",
    "ParticipantTable",
    "ServerStage",
    "ServerTable",
    "Variant",
    "participant_next",
    "participant_transitions",
    "register_stages",
    "server_check",
    "server_stage",
    "server_transitions",
    "unregister_stages",
]


class ParticipantStage(Enum):
    CREATED = "created"  #: waiting for the session announcement (Init)
    KEYED = "keyed"  #: key advertised, waiting for the key directory (Init)
    READY = "ready"  #: between rounds (SelectGroup)
    SHARED = "shared"  #: shares sent, waiting for the shares addressed to it (ParaShare)
    SIGNED = "signed"  #: signed the round's set (consistency check), waiting for the request
    UPLOADED = "uploaded"  #: aggregate of shares uploaded, waiting for the round's end
    UNMASKED = "unmasked"  #: answered the round's one unmask (or reveal) request
    DONE = "done"  #: session over; key material erased


class BaseServerStage(Enum):
    """A stage of the server: a member of :class:`ServerStage`, or of a scheme's own enum
    that subclasses this one (``class MyStage(BaseServerStage): COLLECTING_X =
    "my_collecting_x"``), registered with :func:`register_stages`."""


class ServerStage(BaseServerStage):
    """The common server stages and the built-in schemes' phases."""

    CREATED = "created"
    COLLECTING_KEYS = "collecting_keys"  #: Init
    IDLE = "idle"  #: between rounds
    COLLECTING_SHARES = "collecting_shares"  #: ParaShare relay (explicit, shamir)
    COLLECTING_UPLOADS = "collecting_uploads"  #: ParaShare → ParaUpdate
    COLLECTING_SIGNATURES = "collecting_signatures"  #: consistency check
    COLLECTING_UNMASK = "collecting_unmask"  #: double masking: seed shares and pair keys (prg)
    COLLECTING_REVEALS = "collecting_reveals"  #: dropout recovery (prg, unsafe-reveal-keys)
    DONE = "done"


class Control(Enum):
    """Events that are not messages: the driver's calls into the server."""

    START = "start"
    START_ROUND = "start_round"
    DEADLINE = "deadline"
    FINISH = "finish"


P = ParticipantStage
S = ServerStage
#: what moves the server: a message of some kind, or a call of the driver's
Event: TypeAlias = Kind | Control
#: the participant's table: (stage, message kind) -> the stage it moves to
ParticipantTable: TypeAlias = dict[tuple[ParticipantStage, Kind], ParticipantStage]
#: the server's table: (stage, event) -> the stages it may move to
ServerTable: TypeAlias = dict[tuple[BaseServerStage, Event], frozenset[BaseServerStage]]

_SERVER_STAGES: dict[str, BaseServerStage] = {stage.value: stage for stage in ServerStage}


def register_stages(stages: type[BaseServerStage]) -> None:
    """Make the members of ``stages`` (an enum that subclasses :class:`BaseServerStage`)
    known server stages. A value that a registered stage has — another's, or its own: an
    enum is registered once, by the scheme that owns it — is refused (ConfigurationError):
    a saved state names its stage by value."""
    if not (isinstance(stages, type) and issubclass(stages, BaseServerStage)):
        raise ConfigurationError("register_stages takes an enum that subclasses BaseServerStage")
    for stage in stages:
        if not isinstance(stage.value, str) or not stage.value:
            raise ConfigurationError(f"server stage {stage.name} needs a non-empty string value")
        taken = _SERVER_STAGES.get(stage.value)
        if taken is not None:
            raise ConfigurationError(
                f"server stage value {stage.value!r} ({stages.__name__}.{stage.name}) is "
                f"taken by {type(taken).__name__}.{taken.name}; give it another value"
            )
    _SERVER_STAGES.update({stage.value: stage for stage in stages})


def unregister_stages(stages: type[BaseServerStage]) -> None:
    """Forget stages added with :func:`register_stages` (tests); ServerStage's stay."""
    if stages is ServerStage:
        raise ConfigurationError("the common server stages cannot be removed")
    for stage in stages:
        if _SERVER_STAGES.get(stage.value) is stage:
            del _SERVER_STAGES[stage.value]


def server_stage(value: str) -> BaseServerStage:
    """The registered server stage whose value is ``value`` (MalformedMessage if none)."""
    stage = _SERVER_STAGES.get(value)
    if stage is None:
        raise MalformedMessage(f"unknown server stage {value!r}")
    return stage


@dataclass(frozen=True)
class Variant:
    """What of a session's parameters shapes the stage tables besides the mode."""

    recovery: Recovery
    consistency: bool = False

    @classmethod
    def of(cls, params: SessionParams) -> Variant:
        return cls(params.recovery, params.consistency)


def _scheme(mode: Any) -> Any:
    """Resolved parameters carry their scheme; a mode name is looked up."""
    return mode.scheme if isinstance(mode, SessionParams) else get_scheme(mode)


def _resolve(mode: Any, variant: Variant | None) -> tuple[Any, Variant]:
    """The scheme and the variant: from resolved parameters, or a mode name with the
    scheme's defaults (its default recovery, no consistency check)."""
    scheme = _scheme(mode)
    if variant is None:
        variant = (
            Variant.of(mode)
            if isinstance(mode, SessionParams)
            else Variant(scheme.resolve_recovery(None))
        )
    return scheme, variant


@functools.cache
def _participant_table(scheme: Any, variant: Variant) -> ParticipantTable:
    table: ParticipantTable
    if scheme.needs_keys:
        table = {
            (P.CREATED, K.SESSION_ANNOUNCE): P.KEYED,
            (P.KEYED, K.KEY_DIRECTORY): P.READY,
            (P.KEYED, K.SESSION_END): P.DONE,
        }
    else:  # no keys: the announcement leads straight to READY
        table = {(P.CREATED, K.SESSION_ANNOUNCE): P.READY}
    table |= {
        (P.READY, K.ROUND_END): P.READY,  # not selected, or refused to train: PRNGs advance
        (P.UPLOADED, K.ROUND_END): P.READY,
        (P.READY, K.SESSION_END): P.DONE,
    }
    table |= scheme.participant_table(variant)
    return table


def participant_transitions(mode: Any, variant: Variant | None = None) -> ParticipantTable:
    """Every (stage, incoming message kind) a participant accepts in ``mode`` (a scheme
    name, or resolved parameters), and the stage it moves to. Built once per scheme and
    variant: do not mutate the result."""
    return _participant_table(*_resolve(mode, variant))


def participant_next(
    mode: Any, stage: ParticipantStage, kind: Kind, variant: Variant | None = None
) -> ParticipantStage:
    target = participant_transitions(mode, variant).get((stage, kind))
    if target is None:
        raise UnexpectedMessage(
            f"a participant in stage {stage.value!r} does not accept {kind.name.lower()} "
            f"in mode {_scheme(mode).name!r} (out of order or replayed)"
        )
    return target


@functools.cache
def _server_table(scheme: Any, variant: Variant) -> ServerTable:
    table: ServerTable = {
        (S.CREATED, Control.START): frozenset(
            {S.COLLECTING_KEYS} if scheme.needs_keys else {S.IDLE}
        ),
        (S.IDLE, Control.START_ROUND): frozenset({scheme.first_stage}),
        (S.IDLE, Control.FINISH): frozenset({S.DONE}),
    }
    if scheme.needs_keys:
        table[(S.COLLECTING_KEYS, K.KEY_ADVERT)] = frozenset({S.COLLECTING_KEYS, S.IDLE})
        table[(S.COLLECTING_KEYS, Control.DEADLINE)] = frozenset({S.IDLE, S.DONE})
    table |= scheme.server_table(variant)
    return table


def server_transitions(mode: Any, variant: Variant | None = None) -> ServerTable:
    """Every (stage, event) the server accepts in ``mode`` and the stages it may move to
    (which one depends on whether the phase is complete)."""
    return _server_table(*_resolve(mode, variant))


def server_check(
    mode: Any, stage: BaseServerStage, event: Event, variant: Variant | None = None
) -> frozenset[BaseServerStage]:
    """The stages the server may move to on ``event``; UnexpectedMessage if none."""
    targets = server_transitions(mode, variant).get((stage, event))
    if targets is None:
        raise UnexpectedMessage(
            f"the server in stage {stage.value!r} does not accept {event.name.lower()} in mode "
            f"{_scheme(mode).name!r} (out of order or replayed)"
        )
    return targets
