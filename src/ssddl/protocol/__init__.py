"""The SSDDL protocol: configuration, messages and the participant and server state machines.

No torch and no sockets here: a runtime (the in-process simulator, or Flower) moves the
messages, and LocalTrain is a callback handed to each participant.
"""

from ssddl.protocol.config import Aggregation, Mode, ProtocolConfig, Rounding
from ssddl.protocol.messages import Message, MessageKind, RoundStatus, decode_message
from ssddl.protocol.participant import LocalUpdate, Participant, Trainer
from ssddl.protocol.server import Envelope, RoundOutcome, Server
from ssddl.protocol.stages import Control, ParticipantStage, ServerStage

__all__ = [
    "Aggregation",
    "Control",
    "Envelope",
    "LocalUpdate",
    "Message",
    "MessageKind",
    "Mode",
    "Participant",
    "ParticipantStage",
    "ProtocolConfig",
    "RoundOutcome",
    "RoundStatus",
    "Rounding",
    "Server",
    "ServerStage",
    "Trainer",
    "decode_message",
]
