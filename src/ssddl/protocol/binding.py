"""The round's model digest: what binds a member's messages to the model it was sent.

A lying server can send the target member the true model and every other member weights
whose first layer is dead, so that the secure sum's first layer is the target's update alone
(model inconsistency; Pasquini, Francati and Ateniese, CCS 2022). So every member computes,
at ``RoundStart``, a digest of the session, the round, the round's group and the exact
weights it received, and binds it into what it sends: the associated data of its sealed
shares (:mod:`ssddl.hazmat.aead`, context), its consistency signature
(:func:`~ssddl.protocol.consistency.statement`) and, where no seed share protects the round,
its pair masks (:func:`~ssddl.protocol.masks.bound_pair_key`). Members shown different models
then cannot open each other's shares, do not sign the same statement, and produce masks that
do not cancel. The digest is public (anyone with the weights computes it), not a secret.

Layout (SHA-256; integers big-endian; ``lp`` = 4-byte length prefix)::

    SHA-256( b"ssddl/model-digest/v1" || lp(session_id) || u64 round
             || u32 len(group) || u64 id ... (sorted)
             || lp(dtype, as numpy's little-endian type string, e.g. "<f4")
             || u32 ndim || u64 dim ... || u64 nbytes || weights as little-endian bytes )
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from ssddl.exceptions import MalformedMessage

__all__ = ["DIGEST_LABEL", "DIGEST_SIZE", "check_digest", "model_digest"]

DIGEST_LABEL = b"ssddl/model-digest/v1"
DIGEST_SIZE = 32


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def model_digest(
    session_id: bytes, round_number: int, group: Iterable[int], weights: np.ndarray
) -> bytes:
    """The 32-byte digest binding a round's messages to the model a member received."""
    ids = sorted(int(p) for p in group)
    little = weights.dtype.newbyteorder("<")
    data = np.ascontiguousarray(weights, dtype=little)  # no copy for the usual float32
    digest = hashlib.sha256(DIGEST_LABEL)
    digest.update(_lp(session_id))
    digest.update(int(round_number).to_bytes(8, "big"))
    digest.update(len(ids).to_bytes(4, "big") + b"".join(p.to_bytes(8, "big") for p in ids))
    kind = little.str.encode("ascii")
    digest.update(_lp(kind))
    digest.update(data.ndim.to_bytes(4, "big"))
    digest.update(b"".join(int(d).to_bytes(8, "big") for d in data.shape))
    digest.update(data.nbytes.to_bytes(8, "big"))
    digest.update(data.reshape(-1).view(np.uint8).data)  # no copy
    return digest.digest()


def check_digest(digest: bytes, *, what: str = "the round's model digest") -> bytes:
    """``digest`` if it is a digest (32 bytes), else MalformedMessage."""
    if len(digest) != DIGEST_SIZE:
        raise MalformedMessage(f"{what} must be {DIGEST_SIZE} bytes, got {len(digest)}")
    return digest
