"""How long Init will take, from a measurement on this machine.

Init's work is counted, not guessed: each of the N members makes an identity key and a signed
exchange key, the server checks N signatures, and each member agrees a pair key (signature
check, X25519, HKDF) with every peer it masks with — its k neighbours under sparse pairing
(N·k agreements in all), every other member with the complete graph (N·(N−1)), none at Init
with lazy pair keys. :func:`init_work` counts them from the resolved parameters;
:func:`measure_costs` times the very functions Init calls, a few times each, on this machine
as loaded now; :func:`estimate_init_seconds` multiplies. ``OVERHEAD`` covers what the probe
does not run (decoding, the pairing graph, starting the first round's masks): the ratio of a
measured Init's CPU time to the probe's prediction, on a 2-core machine with ``ssddl
simulate --rounds 1 --epochs 1`` (eager keys): 1.7 at N = 300 and 1.4 at N = 1000 (sparse
pairing, k = 60 and 78), 1.2 at N = 500 with the complete graph. While other work shares the
machine the wall time is longer (2-3 times at a load of 6 on 2 cores); the probe, timed as
loaded now, carries only part of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from time import perf_counter

from ssddl.exceptions import SSDDLError
from ssddl.hazmat.keys import IdentityKey, verify_exchange_key
from ssddl.hazmat.rand import OsRandom
from ssddl.protocol.config import PairKeys, ProtocolConfig, SessionParams
from ssddl.protocol.init import derive_pair_prng, make_key_advert

__all__ = [
    "OVERHEAD",
    "InitCosts",
    "InitEstimate",
    "InitWork",
    "estimate_init",
    "estimate_init_seconds",
    "init_work",
    "measure_costs",
]

OVERHEAD = 1.5


@dataclass(frozen=True)
class InitWork:
    """What Init does for one session: ``members`` key registrations and ``agreements`` pair
    key agreements (one per member and peer: each pair is agreed at both of its ends)."""

    members: int
    agreements: int


@dataclass(frozen=True)
class InitCosts:
    """Seconds per registration (identity key, signed exchange key, the server's check) and
    per pair key agreement, measured on this machine."""

    member: float
    agreement: float


def init_work(params: SessionParams, registered: int) -> InitWork:
    """The key registrations and pair key agreements Init makes for ``registered`` members."""
    if not params.scheme.needs_keys:
        return InitWork(0, 0)
    if params.pair_keys is PairKeys.LAZY:
        return InitWork(registered, 0)  # agreed on each pair's first round instead
    sparse = params.degree and params.group_size >= registered
    peers = min(params.degree, registered - 1) if sparse else registered - 1
    return InitWork(registered, registered * peers)


def measure_costs(samples: int = 12) -> InitCosts:
    """Time Init's own functions ``samples`` times each (about 5 ms in all on a quiet 2-core
    machine); the median of each, so one preempted sample does not count."""
    random = OsRandom()
    session = bytes(16)
    identities = [IdentityKey.generate(random) for _ in range(2)]
    roster = {1: identities[0].public_bytes, 2: identities[1].public_bytes}
    members, agreements = [], []
    for _ in range(samples):
        started = perf_counter()
        identity = IdentityKey.generate(random)
        _, advert = make_key_advert(identity, session, 1, random)
        verify_exchange_key(
            identity.public_bytes, session, 1, advert.exchange_public, advert.signature
        )
        members.append(perf_counter() - started)
    own, _ = make_key_advert(identities[0], session, 1, random)
    for _ in range(samples):
        _, peer = make_key_advert(identities[1], session, 2, random)
        # the server checked it already: in one process a member finds it verified
        verify_exchange_key(roster[2], session, 2, peer.exchange_public, peer.signature)
        started = perf_counter()
        derive_pair_prng(
            own,
            peer.exchange_public,
            peer.signature,
            session_id=session,
            participant_id=1,
            peer=2,
            roster=roster,
        )
        agreements.append(perf_counter() - started)
    return InitCosts(median(members), median(agreements))


def estimate_init_seconds(
    params: SessionParams, registered: int, costs: InitCosts | None = None
) -> float:
    """Init's expected wall time for ``registered`` members: :func:`init_work` times
    :func:`measure_costs` (measured now unless given), times ``OVERHEAD``."""
    work = init_work(params, registered)
    if not work.members:
        return 0.0
    costs = costs if costs is not None else measure_costs()
    return OVERHEAD * (work.members * costs.member + work.agreements * costs.agreement)


@dataclass(frozen=True)
class InitEstimate:
    """Init's expected seconds, the work counted and the costs measured for it."""

    seconds: float
    work: InitWork
    costs: InitCosts


def estimate_init(
    protocol: ProtocolConfig, participants: int, costs: InitCosts | None = None
) -> InitEstimate | None:
    """:func:`estimate_init_seconds` for an unresolved configuration (before any dataset is
    loaded: Init's work does not depend on ``max_samples``); None when the configuration does
    not resolve (the run refuses it later, with its own message) or Init agrees no keys."""
    try:
        params = protocol.resolve(participants, max_samples=1)
    except SSDDLError:
        return None
    work = init_work(params, participants)
    if not work.members:
        return None
    costs = costs if costs is not None else measure_costs()
    return InitEstimate(estimate_init_seconds(params, participants, costs), work, costs)
