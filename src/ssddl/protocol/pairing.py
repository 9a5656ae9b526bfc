"""Sparse pairing for large groups (Bell et al. 2020, "SecAgg+").

With the complete graph every member masks with, and agrees a key with, every other member:
O(n) mask streams per member and round, O(N²) key agreements at Init. For groups of at least
``sparse_from`` members, mode ``prg`` instead pairs each member with its k neighbours on a
random k-regular graph, and shares its self-mask seed among those neighbours with threshold
t: O(k) streams and O(N·k) key agreements.

The graph. The Harary graph H(k, n) (member at cyclic position i is joined to positions
i ± 1, …, i ± k/2) over a uniformly random order of its members, drawn from public randomness
(AES-256-CTR keyed by SHA-256 of a seed; :func:`pairing_graph`). It is k-regular and
k-connected, and each member's neighbour set is a uniformly random k-subset of the others.
When every registered member is in every group, one graph over the registered members serves
the whole session (seeded by a hash of the key directory); when groups are smaller, each round
draws a graph over its own group, seeded by the directory hash, the round and the group
(:func:`round_graph`), so k and t follow the group size whatever subset the round has.

Choosing k and t (:func:`sparse_parameters`). Against a coalition of ``⌊γ n⌋`` corrupt
members (with the server) fixed before the graph is drawn, and ``⌊δ n⌋`` dropouts, the
smallest even k and, for it, the smallest t such that, by union bounds over exact
hypergeometric tails:

* (privacy 1) no honest member has t or more corrupt neighbours — its seed stays hidden and
  it is never isolated by the coalition: ``n · P[Hyp(n-1, ⌊γn⌋, k) ≥ t] < 2^-σ``;
* (privacy 2) the honest survivors stay connected: cutting the cycle order twice needs two
  runs of k/2 consecutive removed (corrupt or dropped) members:
  ``(n · P[k/2 given positions all removed])² / 2 < 2^-σ``;
* (correctness) every survivor keeps at least t surviving neighbours, so its seed can be
  rebuilt: ``n · P[Hyp(n-1, ⌊δn⌋, k) > k - t] < 2^-η``.

Defaults: σ = 40 (statistical security 2^-40), η = 20 (failure probability below 2^-20),
γ = 1/3 corrupt and δ = 1/20 dropouts. With these, n = 100 gives k = 34, t = 29;
n = 1000 gives k = 78, t = 60 (tabulated in ``docs/protocol.md``). When no k below n - 1
qualifies, the complete graph is used.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import lru_cache

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.prg import keystream_words

__all__ = [
    "DEFAULT_CORRUPT_FRACTION",
    "DEFAULT_DROPOUT_FRACTION",
    "DEFAULT_SPARSE_FROM",
    "FAILURE_BITS",
    "SECURITY_BITS",
    "isolated_members",
    "pairing_graph",
    "round_graph",
    "round_graph_seed",
    "sparse_parameters",
]

SECURITY_BITS = 40
FAILURE_BITS = 20
DEFAULT_SPARSE_FROM = 100
DEFAULT_CORRUPT_FRACTION = 1 / 3
DEFAULT_DROPOUT_FRACTION = 1 / 20
_LABEL = b"ssddl/pairing/v1"
_ROUND_LABEL = b"ssddl/round-graph/v1"


def _tail_at_least(population: int, marked: int, draws: int, at_least: int) -> tuple[int, int]:
    """P[Hypergeometric(population, marked, draws) >= at_least] as (numerator, denominator)."""
    numerator = sum(
        math.comb(marked, i) * math.comb(population - marked, draws - i)
        for i in range(max(at_least, 0), min(marked, draws) + 1)
    )
    return numerator, math.comb(population, draws)


def _below(probability: tuple[int, int], factor: int, bits: int) -> bool:
    """``factor * p < 2**-bits`` exactly."""
    numerator, denominator = probability
    return factor * numerator << bits < denominator


def _window_ok(n: int, removed: int, k: int, bits: int) -> bool:
    half = k // 2
    numerator, denominator = _tail_at_least(n, removed, half, half)
    # (n p)^2 / 2 < 2^-bits  <=>  n^2 num^2 2^bits < 2 den^2
    return (n * numerator) ** 2 << bits < 2 * denominator**2


@lru_cache(maxsize=256)
def sparse_parameters(
    n: int,
    corrupt_fraction: float = DEFAULT_CORRUPT_FRACTION,
    dropout_fraction: float = DEFAULT_DROPOUT_FRACTION,
    *,
    security_bits: int = SECURITY_BITS,
    failure_bits: int = FAILURE_BITS,
) -> tuple[int, int] | None:
    """(k, t) for a group of ``n`` (see the module docstring), or None when only the complete
    graph qualifies."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigurationError(f"n must be an int >= 2, got {n!r}")
    for name, value in (
        ("corrupt_fraction", corrupt_fraction),
        ("dropout_fraction", dropout_fraction),
    ):
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigurationError(f"{name} must be a number in [0, 1), got {value!r}")
    corrupt = math.floor(corrupt_fraction * n)
    dropped = math.floor(dropout_fraction * n)
    removed = min(n, corrupt + dropped)
    for k in range(2, n - 1, 2):
        if not _window_ok(n, removed, k, security_bits):
            continue
        t = next(
            (
                t
                for t in range(2, k + 1)
                if _below(_tail_at_least(n - 1, corrupt, k, t), n, security_bits)
            ),
            None,
        )
        if t is None:
            continue
        if _below(_tail_at_least(n - 1, dropped, k, k - t + 1), n, failure_bits):
            return k, t
    return None


def _permutation(session_id: bytes, members: Sequence[int]) -> list[int]:
    """A uniformly random order of ``members`` from the session id (Fisher–Yates, unbiased
    rejection sampling of 64-bit AES-CTR words)."""
    key = hashlib.sha256(_LABEL + len(session_id).to_bytes(8, "big") + session_id).digest()
    order = sorted(members)
    words = keystream_words(key, bytes(12), 2 * len(order) + 64, 64).tolist()
    position = 0
    for i in range(len(order) - 1, 0, -1):
        bound = i + 1
        limit = (1 << 64) - (1 << 64) % bound
        while True:
            if position == len(words):  # never in practice: each draw is kept w.p. > 1/2
                more = keystream_words(key, bytes(12), 2 * len(words), 64).tolist()
                words = more
            word = words[position]
            position += 1
            if word < limit:
                break
        j = word % bound
        order[i], order[j] = order[j], order[i]
    return order


@lru_cache(maxsize=16)
def pairing_graph(
    session_id: bytes, members: tuple[int, ...], degree: int
) -> dict[int, frozenset[int]]:
    """Each member's neighbours: H(degree, n) over a random order of ``members`` drawn from
    ``session_id``. ``degree`` must be even; ``degree >= n - 1`` gives the complete graph."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 2 or degree % 2:
        raise ConfigurationError(f"degree must be an even int >= 2, got {degree!r}")
    if len(set(members)) != len(members):
        raise ConfigurationError("members must be distinct ids")
    n = len(members)
    if degree >= n - 1:
        return {m: frozenset(p for p in members if p != m) for m in members}
    order = _permutation(session_id, members)
    half = degree // 2
    return {
        member: frozenset(
            order[(i + step) % n] for offset in range(1, half + 1) for step in (offset, -offset)
        )
        for i, member in enumerate(order)
    }


def isolated_members(
    graph: dict[int, frozenset[int]], removed: frozenset[int] | set[int]
) -> list[int]:
    """Members outside ``removed`` that are not connected to every other such member
    (through members outside ``removed``): empty when the rest of the graph is connected."""
    rest = [m for m in graph if m not in removed]
    if not rest:
        return []
    seen = {rest[0]}
    frontier = [rest[0]]
    while frontier:
        member = frontier.pop()
        for peer in graph[member]:
            if peer not in removed and peer not in seen:
                seen.add(peer)
                frontier.append(peer)
    return sorted(m for m in rest if m not in seen)


def round_graph_seed(session_seed: bytes, round_number: int, group: Sequence[int]) -> bytes:
    """The seed of round ``round_number``'s graph over ``group``: SHA-256 of the session's
    graph seed (a hash of the whole key directory), the round and the sorted group, each
    length-framed. Both ends compute it from public values; the server fixes neither the
    directory's keys nor (in the honest-but-curious model) the group."""
    if len(session_seed) != 32:
        raise ConfigurationError(
            f"the session graph seed must be 32 bytes, got {len(session_seed)}"
        )
    ids = sorted(group)
    return hashlib.sha256(
        _ROUND_LABEL
        + session_seed
        + round_number.to_bytes(8, "big")
        + len(ids).to_bytes(8, "big")
        + b"".join(p.to_bytes(8, "big") for p in ids)
    ).digest()


def round_graph(
    session_seed: bytes,
    round_number: int,
    group: Sequence[int],
    registered: Sequence[int],
    degree: int,
) -> dict[int, frozenset[int]]:
    """The pairing graph of one round: each member of ``group``'s neighbours.

    When the group is every registered member, the session's graph fixed at Init
    (:func:`pairing_graph` over ``registered`` from ``session_seed``), so keys can be agreed
    along it once. Otherwise a fresh graph over the round's group from
    :func:`round_graph_seed`: k-regular over the group whatever subset the round has.
    """
    members = tuple(sorted(group))
    if members == tuple(sorted(registered)):
        return pairing_graph(session_seed, members, degree)
    return pairing_graph(round_graph_seed(session_seed, round_number, members), members, degree)
