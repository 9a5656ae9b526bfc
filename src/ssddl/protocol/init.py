"""Init: the session announcement, signed key registration and the pair PRNGs.

Participant side: check the announced session, advertise an X25519 key signed by the
long-term Ed25519 identity, then turn the key directory into one forward-secure PRNG per pair
(X25519 + HKDF bound to the session, both ids and both keys). Server side: collect the
adverts and publish the directory of the participants that registered.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

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
    "DirectoryIndex",
    "check_announced_members",
    "derive_pair_prng",
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


def derive_pair_prng(
    exchange: ExchangeKey,
    public: bytes,
    signature: bytes,
    *,
    session_id: bytes,
    participant_id: int,
    peer: int,
    roster: Mapping[int, bytes],
) -> ForwardSecurePRNG:
    """The pair's forward-secure PRNG at round 0, after checking the peer's signed key
    against the roster (InvalidSignature for a forged one)."""
    verify_exchange_key(roster[peer], session_id, peer, public, signature)
    secret = pair_secret(exchange, public, session_id, participant_id, peer)
    return ForwardSecurePRNG(derive_key(secret, FSPRNG_PURPOSE, session_id))


def _own_entries(
    directory: KeyDirectory,
    exchange: ExchangeKey,
    participant_id: int,
    participants: Collection[int],
) -> dict[int, tuple[bytes, bytes]]:
    """The directory's (key, signature) per id, once it carries this member's own key and
    only announced members."""
    keys = zip(directory.exchange_publics, directory.signatures, strict=True)
    entries = dict(zip(directory.participants, keys, strict=True))
    if entries.get(participant_id, (None,))[0] != exchange.public_bytes:
        raise MalformedMessage(
            f"the key directory does not carry participant {participant_id}'s own key"
        )
    announced = participants if isinstance(participants, (set, frozenset)) else set(participants)
    stray = [p for p in entries if p not in announced]  # O(N) a member, not O(N²)
    if stray:
        raise UnknownSender(f"the key directory lists unknown participants {stray}")
    return entries


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
    entries = _own_entries(directory, exchange, participant_id, participants)
    return {
        peer: derive_pair_prng(
            exchange,
            public,
            signature,
            session_id=directory.session_id,
            participant_id=participant_id,
            peer=peer,
            roster=roster,
        )
        for peer, (public, signature) in entries.items()
        if peer != participant_id and (peers is None or peer in peers)
    }


@dataclass(frozen=True, repr=False)
class DirectoryIndex:
    """The registered members' signed exchange keys, kept for lazy pair keys: ``ids`` in
    increasing order and, per id, its 32-byte key and 64-byte signature in ``entries``
    (96 bytes each, one bytes object: about 100 kB for 1000 members). Public data."""

    ids: tuple[int, ...]
    entries: bytes

    ENTRY = 96

    def __post_init__(self) -> None:
        if list(self.ids) != sorted(set(self.ids)):
            raise MalformedMessage("the directory's ids must be distinct and increasing")
        if len(self.entries) != self.ENTRY * len(self.ids):
            raise MalformedMessage(
                f"the directory holds {len(self.entries)} bytes of keys for {len(self.ids)} "
                f"members; {self.ENTRY} bytes per member are needed"
            )

    @classmethod
    def from_directory(
        cls,
        directory: KeyDirectory,
        exchange: ExchangeKey,
        *,
        participant_id: int,
        participants: Sequence[int],
    ) -> DirectoryIndex:
        entries = _own_entries(directory, exchange, participant_id, participants)
        ordered = sorted(entries.items())
        if any(len(k) != 32 or len(s) != 64 for _, (k, s) in ordered):
            raise MalformedMessage("a directory entry is not a 32-byte key and 64-byte signature")
        return cls(tuple(p for p, _ in ordered), b"".join(k + s for _, (k, s) in ordered))

    def entry(self, peer: int) -> tuple[bytes, bytes]:
        """``peer``'s (exchange key, signature); UnknownSender if it did not register."""
        index = bisect.bisect_left(self.ids, peer)
        if index == len(self.ids) or self.ids[index] != peer:
            raise UnknownSender(f"participant {peer} is not in the key directory")
        start = self.ENTRY * index
        return self.entries[start : start + 32], self.entries[start + 32 : start + self.ENTRY]

    def __repr__(self) -> str:
        return f"DirectoryIndex(<{len(self.ids)} members>)"


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
    cached = _last_graph_seed[0]  # one read: a (directory, seed) pair, never half of one
    if cached is not None and cached[0] is directory:  # the very same (immutable) object
        return cached[1]
    seed = hashlib.sha256(b"ssddl/graph-seed/v1" + directory.encode()).digest()
    _last_graph_seed[0] = (directory, seed)
    return seed


#: the last directory hashed and its seed: one process that simulates N members hands them
#: one decoded directory (:mod:`ssddl.runtime.hosts`), whose O(N) encoding is then hashed
#: once, not N times. Public values only; any other object is hashed afresh.
_last_graph_seed: list[tuple[KeyDirectory, bytes] | None] = [None]
