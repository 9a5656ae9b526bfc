"""Mode ``explicit``: fresh additive shares from the OS CSPRNG, sealed and relayed.

Every member's sum of shares is needed: a member lost after sharing takes the others' shares
with it, so the round aborts (the model is left unchanged).
"""

from __future__ import annotations

import numpy as np

from ssddl.hazmat.sharing import additive_split
from ssddl.protocol.config import SessionParams
from ssddl.protocol.messages import MessageKind
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes._common import Guarantee
from ssddl.protocol.schemes._relayed import RelayedScheme, contributors_of

__all__ = ["SCHEME", "ExplicitScheme"]


class ExplicitScheme(RelayedScheme):
    name = "explicit"
    min_group_floor = 2
    summed_uploads = frozenset({MessageKind.UPLOAD})

    def split(self, participant: MemberRole, x: np.ndarray) -> list[np.ndarray]:
        return additive_split(x, len(participant.group), participant.random)

    def add(self, total: np.ndarray, share: np.ndarray, sender: int) -> np.ndarray:
        total += share  # wraps mod 2^ring_bits
        return total

    def needed(self, params: SessionParams, group_size: int) -> int:
        return group_size  # a vanished member takes others' shares with it

    def guarantee(self, params: SessionParams) -> Guarantee:
        n, floor = params.group_size, params.min_contributors
        return Guarantee(
            n - 2,
            0,
            3 if params.consistency else 2,
            "a member lost after sharing aborts the round (model unchanged)",
            lying=(floor - 2, 0),
        )

    def aggregate(self, server: ServerRole, uploads: dict[int, np.ndarray]) -> list[Envelope]:
        contributors = contributors_of(server)
        if len(uploads) < len(contributors):
            return server.abort("a member vanished after sharing; explicit mode needs every upload")
        return server.apply_secure(server.summed(), contributors)  # summed on arrival


SCHEME = ExplicitScheme()
