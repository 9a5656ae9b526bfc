"""The forward-secure PRNG of a pair (DESIGN.md section 2).

State sigma_r (32 bytes). Each round r:

    k_r         = HMAC-SHA256(sigma_r, b"mask")   round key, expands the round's mask
    e_r         = HMAC-SHA256(sigma_r, b"share")  share key, seals the pair's shares
    sigma_{r+1} = HMAC-SHA256(sigma_r, b"next")   next state; sigma_r is then overwritten

HMAC-SHA256 is a PRF, so sigma_{r+1} and k_r look independent and random to anyone without
sigma_r, and sigma_r cannot be recovered from sigma_{r+1} or k_r: a state leaked at round r
reveals the keys of rounds >= r only (forward security). A round key may be revealed (to
unmask a dropped member's pair) without revealing any other round, nor the round's share key:
the two are independent PRF outputs, so shares sealed under e_r stay sealed.

The state lives in a ``bytearray`` that is overwritten in place when the generator advances
and zeroed by :meth:`ForwardSecurePRNG.erase`. Python cannot promise that no copy survives
elsewhere in memory (hmac makes internal copies); this is best effort, as in any CPython code.
"""

from __future__ import annotations

import hmac

from ssddl.exceptions import ForwardSecurityError, InvalidKey
from ssddl.hazmat._checks import as_bytes, as_int, as_key

__all__ = ["ForwardSecurePRNG", "prf"]

STATE_SIZE = 32
MASK_LABEL = b"mask"
SHARE_LABEL = b"share"
NEXT_LABEL = b"next"
#: the farthest a generator jumps in one call unless told otherwise (a round number from the
#: network is bounded by the caller's policy; this bounds the work of one call regardless)
MAX_JUMP = 1 << 20


def prf(key: bytes | bytearray, label: bytes) -> bytes:
    """HMAC-SHA256(key, label): 32 bytes. ``key`` must be 32 bytes.

    A ``bytearray`` key is used as is (no immutable copy of the state is made here).
    """
    if isinstance(key, bytearray):
        if len(key) != STATE_SIZE:
            raise InvalidKey(f"key must be exactly {STATE_SIZE} bytes, got {len(key)}")
    else:
        key = as_key(key, "key", STATE_SIZE)
    label = as_bytes(label, "label")
    return hmac.digest(key, label, "sha256")  # one-shot HMAC (OpenSSL's), the same bytes


class ForwardSecurePRNG:
    """A stateful generator of per-round keys that cannot be run backwards."""

    __slots__ = ("_round", "_state")

    def __init__(self, seed: bytes, *, start_round: int = 0) -> None:
        self._state = bytearray(as_key(seed, "seed", STATE_SIZE))
        self._round = as_int(start_round, "start_round")

    @property
    def round(self) -> int:
        """The round r of the current state sigma_r."""
        return self._round

    @property
    def erased(self) -> bool:
        """True once :meth:`erase` has run; no key can be taken after that."""
        return self._round < 0

    def _check_live(self) -> None:
        if self._round < 0:
            raise ForwardSecurityError(
                "this ForwardSecurePRNG has been erased; derive a new one from a pair secret"
            )

    def round_key(self) -> bytes:
        """k_r for the current round r (does not advance)."""
        self._check_live()
        return prf(self._state, MASK_LABEL)

    def advance(self) -> None:
        """Move to sigma_{r+1}; sigma_r is overwritten in place."""
        self._check_live()
        # the state is 32 bytes, checked when made: the PRF unwrapped (as in take_round_keys)
        self._state[:] = hmac.digest(self._state, NEXT_LABEL, "sha256")
        self._round += 1

    def round_keys(self) -> tuple[bytes, bytes]:
        """(k_r, e_r) for the current round r (does not advance)."""
        self._check_live()
        state = self._state
        return hmac.digest(state, MASK_LABEL, "sha256"), hmac.digest(state, SHARE_LABEL, "sha256")

    def share_key(self) -> bytes:
        """e_r for the current round r (does not advance)."""
        self._check_live()
        return prf(self._state, SHARE_LABEL)

    def jump_to(self, r: int, *, max_steps: int = MAX_JUMP) -> None:
        """Advance to round ``r``; a round already passed, or more than ``max_steps`` ahead,
        raises ForwardSecurityError (so a round number from the network cannot make it loop
        for ever)."""
        self._check_live()
        target = as_int(r, "r")
        if target < self._round:
            raise ForwardSecurityError(
                f"round {target} is already erased (the generator is at round {self._round}); "
                "forward security forbids going back — ask for round "
                f"{self._round} or later"
            )
        if target - self._round > max_steps:
            raise ForwardSecurityError(
                f"round {target} is more than {max_steps} rounds ahead of round {self._round}; "
                "refusing to jump that far"
            )
        while self._round < target:
            self.advance()

    def take_round_key(self, r: int) -> bytes:
        """Jump to round ``r``, return k_r and advance: the state is then at round r + 1."""
        self.jump_to(r)
        key = self.round_key()
        self.advance()
        return key

    def export_state(self) -> bytes:
        """sigma_r, for persisting the generator between messages (a secret: whoever holds it
        can compute every round key from round r on). Rebuild with
        ``ForwardSecurePRNG(state, start_round=r)``."""
        self._check_live()
        return bytes(self._state)

    def take_round_keys(self, r: int) -> tuple[bytes, bytes]:
        """Jump to round ``r``, return (k_r, e_r) and advance past round r."""
        self.jump_to(r)  # live, and at round r
        state = self._state  # 32 bytes, checked when made: the three PRF calls, unwrapped
        keys = hmac.digest(state, MASK_LABEL, "sha256"), hmac.digest(state, SHARE_LABEL, "sha256")
        state[:] = hmac.digest(state, NEXT_LABEL, "sha256")
        self._round += 1
        return keys

    def erase(self) -> None:
        """Zero the state; every later call raises ForwardSecurityError."""
        for index in range(len(self._state)):
            self._state[index] = 0
        self._round = -1

    def __repr__(self) -> str:
        if self._round < 0:
            return "ForwardSecurePRNG(<erased>)"
        return f"ForwardSecurePRNG(round={self._round}, state=<hidden>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError(
            "ForwardSecurePRNG cannot be pickled or copied: a copy would keep old states alive"
        )
