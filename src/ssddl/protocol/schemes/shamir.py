"""Mode ``shamir``: Shamir t-of-n shares over GF(2^61 − 1), sealed and relayed.

Each contributor uploads the sum of the shares it received, a share of Σ x_i; any t uploads
give the sum by Lagrange interpolation at 0, so members lost after sharing still count.
Ring words are lifted to signed field elements and back, so the sum must fit min(Q, p)/2.
"""

from __future__ import annotations

import numpy as np

from ssddl.exceptions import MalformedMessage
from ssddl.hazmat.sharing import (
    SHAMIR_PRIME,
    field_add,
    field_to_ring,
    ring_to_field,
    shamir_reconstruct,
    shamir_split,
)
from ssddl.protocol.config import Recovery, SessionParams
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes._common import Guarantee
from ssddl.protocol.schemes._relayed import RelayedScheme, contributors_of

__all__ = ["SCHEME", "ShamirScheme"]


class ShamirScheme(RelayedScheme):
    name = "shamir"
    uses_threshold = True
    field_upload = True

    def capacity_modulus(self, ring_bits: int) -> int:
        return min(1 << ring_bits, SHAMIR_PRIME)

    def split(self, participant: MemberRole, x: np.ndarray) -> list[np.ndarray]:
        return shamir_split(
            ring_to_field(x),
            threshold=participant.params.threshold,
            points=participant.group,
            source=participant.random,
        )

    def add(self, total: np.ndarray, share: np.ndarray, sender: int) -> np.ndarray:
        if (share >= SHAMIR_PRIME).any():
            raise MalformedMessage(f"the share from participant {sender} is not in the field")
        return field_add(total, share)

    def needed(self, params: SessionParams, group_size: int) -> int:
        return params.min_contributors

    def split_margin(self, recovery: Recovery, consistency: bool) -> int | None:
        """Members shown different contributor lists (with the target, and without it)
        give the server t − c honest evaluations of each side's sum polynomial: the target's
        polynomial is isolated while 2(t − c) <= n − c. Signing the list does not help
        beyond that (a colluder signs both lists), so the margin is 1 either way."""
        return 1

    def guarantee(self, params: SessionParams) -> Guarantee:
        n, t, floor = params.group_size, params.threshold, params.min_contributors
        return Guarantee(
            floor - 2,
            n - floor,
            3 if params.consistency else 2,
            f"any {t} uploads of the contributors give their exact sum; a round needs "
            f"{floor} contributors",
            lying=(min(floor - 2, 2 * t - n - 1), n - floor),
        )

    def aggregate(self, server: ServerRole, uploads: dict[int, np.ndarray]) -> list[Envelope]:
        threshold = server.config.threshold
        if len(uploads) < threshold:
            return server.abort(f"{len(uploads)} uploads, threshold is {threshold}")
        points = tuple(uploads)[:threshold]
        field_sum = shamir_reconstruct([uploads[p] for p in points], points, threshold=threshold)
        return server.apply_secure(
            field_to_ring(field_sum, server.config.ring_bits), contributors_of(server)
        )


SCHEME = ShamirScheme()
