"""Discovery's proof of membership: which Flower node holds which roster key.

Flower node ids say nothing about who holds a participant's identity key. Before a session
starts, the ServerApp sends every connected node a fresh 32-byte challenge from the
operating system's CSPRNG, one per node; a node answers with the roster id of its own key
and an Ed25519 signature, by that key, of :func:`membership_statement`::

    b"ssddl/membership/v1" || lp(challenge) || u64(Flower run id) || u64(Flower node id)
                           || u64(participant id) || lp(identity public key)

(``lp`` = 4-byte big-endian length prefix, ``u64`` = 8 bytes big-endian). The server
verifies it against *its* roster entry, *its* challenge for that node and the run and node
it sent the challenge to, so a claim without the key, a signature made for another
challenge, run or node (a replay) and a key that is not the roster's all fail. The label
keeps these signatures apart from the exchange-key adverts of Init
(``b"ssddl/exchange-key/v1"``): a node signs nothing here that could vouch for a key.

Discovery is outside the recorded protocol: nothing in it is a protocol message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ssddl.exceptions import ConfigurationError, InvalidKey, InvalidSignature, MalformedMessage
from ssddl.hazmat.keys import IdentityKey, verify_signature

__all__ = [
    "CHALLENGE_SIZE",
    "MEMBERSHIP_LABEL",
    "Claim",
    "membership_statement",
    "prove",
    "verify_claim",
]

CHALLENGE_SIZE = 32
MEMBERSHIP_LABEL = b"ssddl/membership/v1"
_U64 = struct.Struct(">Q")
_LP = struct.Struct(">I")
_U64_MAX = (1 << 64) - 1


def _u64(value: int, name: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64_MAX:
        raise ConfigurationError(f"{name} must be an integer in [0, 2^64), got {value!r}")
    return _U64.pack(value)


def membership_statement(
    challenge: bytes, run_id: int, node_id: int, participant: int, public_key: bytes
) -> bytes:
    """The bytes a node signs to prove it holds ``participant``'s key in this run."""
    if not isinstance(challenge, bytes) or len(challenge) != CHALLENGE_SIZE:
        raise MalformedMessage(f"the membership challenge must be {CHALLENGE_SIZE} bytes")
    if not isinstance(public_key, bytes):
        raise MalformedMessage("the identity public key must be bytes")
    return b"".join(
        (
            MEMBERSHIP_LABEL,
            _LP.pack(len(challenge)),
            challenge,
            _u64(run_id, "run id"),
            _u64(node_id, "node id"),
            _u64(participant, "participant id"),
            _LP.pack(len(public_key)),
            public_key,
        )
    )


def prove(
    identity: IdentityKey, challenge: bytes, run_id: int, node_id: int, participant: int
) -> bytes:
    """The node's answer: its signature of :func:`membership_statement`."""
    statement = membership_statement(challenge, run_id, node_id, participant, identity.public_bytes)
    return identity.sign(statement)


@dataclass(frozen=True)
class Claim:
    """One node's answer to discovery: the roster id it claims and its proof."""

    node_id: int
    participant: object
    signature: object


def verify_claim(claim: Claim, roster: dict[int, bytes], challenge: bytes, run_id: int) -> int:
    """The roster id ``claim`` proves; raises (with the reason as text) if it proves none.

    ``InvalidKey`` for an id that is not in the roster, ``InvalidSignature`` for a missing
    or wrong signature (no key, another challenge, run or node: a replay)."""
    pid = claim.participant
    if isinstance(pid, bool) or not isinstance(pid, int) or pid not in roster:
        raise InvalidKey(f"claims participant {pid!r}, which is not in the roster")
    if not isinstance(claim.signature, bytes):
        raise InvalidSignature(
            f"claims participant {pid} without a signature over the challenge (no proof "
            "that it holds the key)"
        )
    statement = membership_statement(challenge, run_id, claim.node_id, pid, roster[pid])
    try:
        verify_signature(roster[pid], statement, claim.signature)
    except InvalidSignature:
        raise InvalidSignature(
            f"claims participant {pid} but its signature does not verify over this node's "
            "fresh challenge (not the holder of the key, or a replayed proof)"
        ) from None
    return pid
