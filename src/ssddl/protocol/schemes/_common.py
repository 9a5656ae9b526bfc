"""Pieces several schemes share: upload checks, sealing between members, the consistency
phase on the server, and the guarantee a scheme states."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssddl.exceptions import MalformedMessage
from ssddl.hazmat.aead import open_sealed_each, seal
from ssddl.hazmat.keys import derive_key, verify_signature
from ssddl.hazmat.sharing import SHAMIR_PRIME
from ssddl.protocol.consistency import statement
from ssddl.protocol.messages import ConsistencyRequest, ConsistencySignature
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.seedshares import SHARE_AEAD_PURPOSE
from ssddl.protocol.stages import ServerStage

__all__ = [
    "SHARE_AEAD_PURPOSE",
    "Guarantee",
    "check_signature",
    "check_upload",
    "close_signatures",
    "open_all_from",
    "open_from",
    "request_signatures",
    "seal_for",
]


#: ``Guarantee.lying`` left out: the same bounds as against an honest-but-curious server
_SAME = (-1, -1)


@dataclass(frozen=True)
class Guarantee:
    """What a resolved session protects, against two servers.

    Honest-but-curious (it follows the protocol and reads what it gets): up to
    ``collusion_bound`` members may collude with it and learn nothing beyond the sum of at
    least two honest changes; up to ``dropout_bound`` members may vanish and the round still
    applies the exact sum of the rest. A server that lies (shows members different lists or
    models, chooses groups, declares dropouts): ``lying`` = (colluders, dropouts) of the same
    meaning, or None when such a server can unmask a member even without colluders.
    ``round_trips``: server↔member exchanges a round takes after Init. ``text``: what the
    mode adds in words (recovery, what a vanished member costs)."""

    collusion_bound: int
    dropout_bound: int
    round_trips: int
    text: str
    lying: tuple[int, int] | None = _SAME

    def __post_init__(self) -> None:
        if self.lying == _SAME:
            object.__setattr__(self, "lying", (self.collusion_bound, self.dropout_bound))
        elif self.lying is not None and self.lying[0] < 0:
            object.__setattr__(self, "lying", None)  # not even without colluders

    def describe(self, group_size: int) -> str:
        """One sentence a report prints: both servers' bounds, then the mode's note."""
        honest = _bounds(self.collusion_bound, self.dropout_bound, group_size)
        lying = (
            "none: it can unmask a member by itself"
            if self.lying is None
            else _bounds(*self.lying, group_size)
        )
        return (
            f"Against an honest-but-curious server: {honest}; against a server that lies "
            f"(different lists or models, chosen groups, declared dropouts): {lying}. "
            f"{self.text[:1].upper()}{self.text[1:]}"
        )


def _bounds(colluders: int, dropouts: int, n: int) -> str:
    return (
        f"up to {colluders} of the {n} members may collude with it and learn only the sum of "
        f"the others' changes, and up to {dropouts} may vanish"
    )


def check_upload(server: ServerRole, msg: Any, *, field: bool) -> None:
    """An upload is one word per parameter plus the count word: ring words, or field words
    below the Shamir prime when ``field``."""
    dtype = np.dtype(np.uint64) if field else server.config.codec().dtype
    if msg.payload.dtype != dtype or msg.payload.shape != (server.model_size + 1,):
        raise MalformedMessage(
            f"upload from participant {msg.sender}: {msg.payload.size} words of "
            f"{msg.payload.dtype}; expected {server.model_size + 1} words of {dtype}"
        )
    if field and (msg.payload >= SHAMIR_PRIME).any():
        raise MalformedMessage(f"upload from participant {msg.sender} is not in the field")
    bits = 0 if field else server.config.bits
    if msg.wire_bits != bits:
        raise MalformedMessage(
            f"upload from participant {msg.sender} packs its words in {msg.wire_bits or 'all'} "
            f"bits; the session's are {bits or 'whole ring words'}"
        )


# -- sealing between two members of a round --------------------------------------------------


def _aead_key(participant: MemberRole, peer: int) -> bytes:
    """The pair's AEAD key of the round, from the pair's *share* key: revealing the round's
    mask key (dropout recovery) does not open the pair's sealed shares. Derived once per
    round and pair (sealing and opening use the same key), kept only while the round is open."""
    share = participant.share_keys[peer]
    cached = participant.aead_keys.get(peer)
    if cached is not None and cached[0] == share:
        return cached[1]
    key = derive_key(share, SHARE_AEAD_PURPOSE, participant.session_id)
    participant.aead_keys[peer] = (share, key)
    return key


def seal_for(participant: MemberRole, peer: int, plaintext: bytes) -> bytes:
    return seal(
        _aead_key(participant, peer),
        plaintext,
        session_id=participant.session_id,
        round_number=participant.round,
        sender=participant.id,
        receiver=peer,
        nonce=participant.random.random_bytes(12),
        algorithm=participant.params.aead,
        context=participant.model_digest,  # a member shown another model cannot open it
    )


def open_from(participant: MemberRole, sender: int, blob: bytes) -> bytes:
    return open_all_from(participant, (sender,), (blob,))[0]


def open_all_from(
    participant: MemberRole, senders: Sequence[int], blobs: Sequence[bytes]
) -> list[bytes]:
    """:func:`open_from` of each (sender, blob), in order (one share a pair and round): each
    opens only if its sender sealed it under this member's model digest of the round."""
    return open_sealed_each(
        [_aead_key(participant, sender) for sender in senders],
        blobs,
        senders,
        session_id=participant.session_id,
        round_number=participant.round,
        receiver=participant.id,
        algorithm=participant.params.aead,
        context=participant.model_digest,
    )


# -- the consistency phase, server side -------------------------------------------------------


def request_signatures(
    server: ServerRole, included: tuple[int, ...], excluded: tuple[int, ...], data: Any
) -> list[Envelope]:
    """Open the signature phase: every included member is asked to sign (included,
    excluded). ``data`` (the scheme's round data) must carry ``included`` and ``excluded``."""
    request = ConsistencyRequest(server.session_id, server.round, included, excluded)
    return server.next_phase(
        ServerStage.COLLECTING_SIGNATURES,
        frozenset(included),
        [Envelope(p, request) for p in included],
        data,
    )


def check_signature(server: ServerRole, msg: ConsistencySignature) -> None:
    """A member's signature must verify over exactly the sets the server asked about, under
    the digest of the model the server sent; a bad one is refused and drops only its sender."""
    data = server.open.data
    message = statement(
        server.session_id, server.round, data.included, data.excluded, server.model_digest()
    )
    verify_signature(server.roster[msg.sender], message, msg.signature)


def close_signatures(
    server: ServerRole,
    go_on: Callable[[ServerRole, tuple[int, ...], tuple[bytes, ...]], list[Envelope]],
) -> list[Envelope]:
    """End the signature phase: with at least t signatures, go on; else abort the round."""
    signatures = server.received(ConsistencySignature)
    needed = server.config.consistency_threshold
    if len(signatures) < needed:
        return server.abort(
            f"{len(signatures)} members signed the round's set; {needed} are needed"
        )
    signers = tuple(signatures)
    return go_on(server, signers, tuple(signatures[p].signature for p in signers))
