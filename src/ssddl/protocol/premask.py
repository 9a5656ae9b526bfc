"""A member's masks in flight: the open round's, the one built ahead for the next round, and
the pair keys read to start them (DESIGN.md §2; docs/protocol.md, "Where masks are built").

None of it is protocol state: it is never saved, and a participant rebuilt from its state
bytes starts with none. What was drawn for a mask that goes unused — its self-mask seed, its
seed shares' randomness — goes back to the member's random source
(:meth:`~ssddl.hazmat.rand.RewindableSource.push_back`) and is drawn again next, so every byte
a member sends is the one it sends without building early (the order of draws is the
:class:`~ssddl.protocol.ports.MaskBuilder` port's contract).
"""

from __future__ import annotations

from collections.abc import Mapping

from ssddl.hazmat.fsprng import ForwardSecurePRNG
from ssddl.hazmat.rand import RewindableSource
from ssddl.protocol.masks import RoundKeys
from ssddl.protocol.ports import PendingMask

__all__ = ["MasksInFlight"]

#: a pair's (mask key, share key) of a round
PairKeys = tuple[bytes, bytes]


class MasksInFlight:
    """The masks a member has started and not used yet (secrets: the repr shows rounds only).

    ``current``: the open round's mask, started when the round starts; ``ahead``: (round,
    mask) built before that round started; the peeked keys: (round, {peer: pair keys}) read
    without moving a PRNG when a mask was started, reused when the round starts.
    """

    __slots__ = ("_peeked", "_random", "ahead", "current")

    def __init__(self, random: RewindableSource) -> None:
        self._random = random
        self.current: PendingMask | None = None
        self.ahead: tuple[int, PendingMask] | None = None
        self._peeked: tuple[int, dict[int, PairKeys]] | None = None

    def __repr__(self) -> str:
        ahead = self.ahead[0] if self.ahead is not None else None
        return f"MasksInFlight(current={self.current is not None}, ahead_round={ahead})"

    # -- the pair keys -------------------------------------------------------------------------

    def peek(
        self,
        prngs: Mapping[int, ForwardSecurePRNG],
        round_number: int,
        group: tuple[int, ...],
        digest: bytes = b"",
        *,
        share_keys: bool,
    ) -> RoundKeys:
        """The pairs' mask keys of the round and (``share_keys``) their share keys, read
        without changing a PRNG, and kept so that the round's start need not compute them
        again. ``digest``: the round's model digest (empty ahead of the round)."""
        peeked = {peer: _peek_keys(prng, round_number) for peer, prng in prngs.items()}
        self._peeked = (round_number, peeked)
        keys = {peer: pair[0] for peer, pair in peeked.items()}
        early = {p: pair[1] for p, pair in peeked.items()} if share_keys else None
        return RoundKeys(round_number, group, keys, early, digest)

    def take_peeked(self, round_number: int) -> dict[int, PairKeys]:
        """The pair keys :meth:`peek` read for ``round_number``, once (empty if none)."""
        peeked, self._peeked = self._peeked, None
        return peeked[1] if peeked is not None and peeked[0] == round_number else {}

    def forget_peeked(self, through: int | None = None) -> None:
        """Forget the keys read for a round up to ``through`` (None: any round; keys read
        for a later round stay: a mask started ahead)."""
        if self._peeked is not None and (through is None or self._peeked[0] <= through):
            self._peeked = None

    # -- the mask built ahead ------------------------------------------------------------------

    def use_ahead(self, round_number: int, same_group: bool, digest: bytes) -> PendingMask | None:
        """The mask built ahead if it is ``round_number``'s for the group it was built for
        (its seed shares, drawn before the model was known, bound to ``digest`` now); else
        it is dropped and None."""
        ahead, self.ahead = self.ahead, None
        if ahead is None:
            return None
        if ahead[0] == round_number and same_group:
            if ahead[1].shares is not None:
                ahead[1].shares.bind(digest)
            return ahead[1]
        self.ahead = ahead
        self.drop_ahead()  # another round or group: its draws go to this round
        return None

    def drop_ahead(self) -> None:
        """Drop the mask built ahead; what was drawn for it (its seed, its shares'
        randomness), never used, goes back to the random source and is drawn again next."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None:
            pending = ahead[1]
            drawn = (pending.seed or b"") + (pending.shares.drawn if pending.shares else b"")
            pending.discard()
            self._random.push_back(drawn)

    # -- the open round's mask -----------------------------------------------------------------

    def take_current(self) -> PendingMask | None:
        """The open round's mask, once (None if none)."""
        pending, self.current = self.current, None
        return pending

    def drop_current(self) -> None:
        """Drop the open round's mask unused (its seed shares' draws go back)."""
        pending, self.current = self.current, None
        if pending is not None:
            self.give_back(pending)
            pending.discard()

    def give_back(self, pending: PendingMask) -> None:
        """The update was refused: the randomness drawn early for ``pending``'s seed shares
        goes back to the random source (the seed does not: without the early draw it was
        drawn too)."""
        shares, pending.shares = pending.shares, None
        if shares is not None:
            shares.discard()
            self._random.push_back(shares.drawn)

    def clear(self) -> None:
        """The session ended: drop everything (draws given back, keys forgotten)."""
        self.drop_ahead()
        self.drop_current()
        self._peeked = None


def _peek_keys(prng: ForwardSecurePRNG, round_number: int) -> PairKeys:
    """The pair's (mask key, share key) of ``round_number``, read from the PRNG or from a
    copy of it jumped to the round: the PRNG does not change."""
    if prng.round != round_number:
        prng = ForwardSecurePRNG(prng.export_state(), start_round=prng.round)
        prng.jump_to(round_number)
    return prng.round_keys()
