"""The SSDDL protocol: configuration, messages and the participant and server state machines.

The paper's five modules each have a named place:

========== ===========================================================================
Init       :mod:`ssddl.protocol.init` — announcement, signed key adverts, pair PRNGs
SelectGroup :mod:`ssddl.protocol.select` — selection policies
LocalTrain :mod:`ssddl.protocol.localtrain` — the trainer callback and its checks
ParaShare  :mod:`ssddl.protocol.schemes` — one module per sharing mode, in a registry
ParaUpdate :mod:`ssddl.protocol.update` — update rules
========== ===========================================================================

No torch and no machinery here — no sockets, processes, threads or shared memory: a runtime
(the in-process simulator, or Flower) moves the messages, LocalTrain is a callback handed to
each participant, and where its masks are built is a port handed to it the same way
(:class:`~ssddl.protocol.ports.MaskBuilder`: in the caller by default, or an engine of
:mod:`ssddl.runtime.masking`).
"""

from ssddl.protocol.config import Aggregation, Mode, ProtocolConfig, Rounding, SessionParams
from ssddl.protocol.localtrain import LocalUpdate, Trainer
from ssddl.protocol.messages import Message, MessageKind, RoundStatus, decode_message
from ssddl.protocol.participant import Participant
from ssddl.protocol.roles import Envelope
from ssddl.protocol.schemes import Scheme, get_scheme, register_scheme, scheme_names
from ssddl.protocol.select import AllParticipants, RoundRobin, SelectionPolicy, UniformSubset
from ssddl.protocol.server import RoundOutcome, Server
from ssddl.protocol.stages import Control, ParticipantStage, ServerStage
from ssddl.protocol.update import Mean, Sum, UpdateRule, WeightedMean, update_rule_for

__all__ = [
    "Aggregation",
    "AllParticipants",
    "Control",
    "Envelope",
    "LocalUpdate",
    "Mean",
    "Message",
    "MessageKind",
    "Mode",
    "Participant",
    "ParticipantStage",
    "ProtocolConfig",
    "RoundOutcome",
    "RoundRobin",
    "RoundStatus",
    "Rounding",
    "Scheme",
    "SelectionPolicy",
    "Server",
    "ServerStage",
    "SessionParams",
    "Sum",
    "Trainer",
    "UniformSubset",
    "UpdateRule",
    "WeightedMean",
    "decode_message",
    "get_scheme",
    "register_scheme",
    "scheme_names",
    "update_rule_for",
]
