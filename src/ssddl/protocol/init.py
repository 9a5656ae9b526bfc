"""Init: the session announcement, signed key registration and the pair PRNGs.

Participant side: check the announced session, advertise an X25519 key signed by the
long-term Ed25519 identity, then turn the key directory into one forward-secure PRNG per pair
(X25519 + HKDF bound to the session, both ids and both keys). Server side: collect the
adverts and publish the directory of the participants that registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

from ssddl.exceptions import MalformedMessage, UnknownSender
from ssddl.hazmat.fsprng import ForwardSecurePRNG
from ssddl.hazmat.keys import (
    ExchangeKey,
    IdentityKey,
    derive_key,
    pair_secret,
    sign_exchange_key,
    verify_exchange_key,
)
from ssddl.hazmat.rand import RandomSource
from ssddl.protocol.messages import KeyAdvert, KeyDirectory, SessionAnnounce

__all__ = [
    "FSPRNG_PURPOSE",
    "check_announced_members",
    "graph_seed",
    "key_directory",
    "make_key_advert",
    "pair_prngs",
]

FSPRNG_PURPOSE = b"ssddl/fsprng/v1"


def check_announced_members(
    msg: SessionAnnounce, participant_id: int, roster: Mapping[int, bytes]
) -> None:
    """The announced session must include this participant and only roster members."""
    if participant_id not in msg.participants:
        raise UnknownSender(f"participant {participant_id} is not in the announced session")
    unknown = [p for p in msg.participants if p not in roster]
    if unknown:
        raise UnknownSender(f"the session lists participants {unknown} missing from the roster")


def make_key_advert(
    identity: IdentityKey, session_id: bytes, participant_id: int, random: RandomSource
) -> tuple[ExchangeKey, KeyAdvert]:
    """A fresh X25519 key for the session and its advert, signed by the identity key."""
    exchange = ExchangeKey.generate(random)
    public = exchange.public_bytes
    signature = sign_exchange_key(identity, session_id, participant_id, public)
    return exchange, KeyAdvert(session_id, participant_id, public, signature)


def pair_prngs(
    exchange: ExchangeKey,
    directory: KeyDirectory,
    *,
    participant_id: int,
    participants: tuple[int, ...],
    roster: Mapping[int, bytes],
    peers: Collection[int] | None = None,
) -> dict[int, ForwardSecurePRNG]:
    """One forward-secure PRNG per other registered participant (per one in ``peers`` when
    given: sparse pairing agrees keys only along the graph); every used advert's signature
    is checked against the roster (InvalidSignature for a forged one)."""
    keys = zip(directory.exchange_publics, directory.signatures, strict=True)
    entries = dict(zip(directory.participants, keys, strict=True))
    if entries.get(participant_id, (None,))[0] != exchange.public_bytes:
        raise MalformedMessage(
            f"the key directory does not carry participant {participant_id}'s own key"
        )
    stray = [p for p in entries if p not in participants]
    if stray:
        raise UnknownSender(f"the key directory lists unknown participants {stray}")
    session_id = directory.session_id
    prngs = {}
    for peer, (public, signature) in entries.items():
        if peer == participant_id or (peers is not None and peer not in peers):
            continue
        verify_exchange_key(roster[peer], session_id, peer, public, signature)
        secret = pair_secret(exchange, public, session_id, participant_id, peer)
        prngs[peer] = ForwardSecurePRNG(derive_key(secret, FSPRNG_PURPOSE, session_id))
    return prngs


def key_directory(session_id: bytes, adverts: Mapping[int, KeyAdvert]) -> KeyDirectory:
    """The directory of the registered participants' signed keys, in id order."""
    ordered = dict(sorted(adverts.items()))
    return KeyDirectory(
        session_id,
        tuple(ordered),
        tuple(m.exchange_public for m in ordered.values()),
        tuple(m.signature for m in ordered.values()),
    )


def graph_seed(directory: KeyDirectory) -> bytes:
    """The seed of the session's sparse pairing graph: a hash of the whole key directory
    (session id, registered ids, their signed exchange keys). The server chooses the session
    id, but not the members' keys: it cannot grind session ids for a graph that suits a
    coalition, only drop whole members from the directory — which every member sees."""
    return hashlib.sha256(b"ssddl/graph-seed/v1" + directory.encode()).digest()
