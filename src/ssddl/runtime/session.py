"""Session assembly for every runtime: identities, the roster, node-id mapping, and the one
place a session is wired.

Each participant has a long-term Ed25519 identity key; the roster maps protocol ids (1…N,
also the Shamir evaluation points) to identity public keys; a runtime whose nodes have their
own ids (Flower's are 64-bit) maps them to protocol ids with a :class:`NodeMap`.

:meth:`Session.build` is the only wiring of members → participants → hosts → exchange →
server → driver. The simulator, ``ssddl reproduce``, the audit's attacks and the protocol
tests all call it; a runtime whose participants live elsewhere (Flower) builds only the
server's half with :func:`open_server`, the same function :meth:`Session.build` ends with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ssddl.exceptions import ConfigurationError, UnknownSender
from ssddl.hazmat.keys import IdentityKey
from ssddl.hazmat.rand import OsRandom, RandomSource
from ssddl.protocol.config import ProtocolConfig
from ssddl.protocol.localtrain import Inspector, Trainer
from ssddl.protocol.messages import MAX_ID, SERVER
from ssddl.protocol.participant import Participant
from ssddl.protocol.policy import ParticipantPolicy
from ssddl.protocol.ports import MaskBuilder
from ssddl.protocol.select import SelectionPolicy
from ssddl.protocol.server import RoundOutcome, Server
from ssddl.runtime.exchange import Driver, Exchange
from ssddl.runtime.hosts import LiveHost, ParticipantHost, PersistedHost
from ssddl.runtime.inmemory import Fault, InMemoryExchange, Interceptor

__all__ = [
    "ExchangeFactory",
    "HostFactory",
    "Members",
    "NodeMap",
    "Session",
    "Sources",
    "in_memory",
    "live",
    "make_members",
    "open_server",
    "persisted",
    "system_sources",
]


@dataclass(frozen=True)
class Members:
    """The participants of a session: their identity keys (secret) and the public roster."""

    identities: Mapping[int, IdentityKey] = field(repr=False)
    roster: Mapping[int, bytes]

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self.roster)


def make_members(
    ids: Iterable[int],
    source_for: Callable[[int], RandomSource],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Members:
    """Fresh identity keys for ``ids``; ``source_for(id)`` gives each one's randomness.
    ``progress(done, total)`` is called as keys are made (large sessions are not silent)."""
    wanted = sorted(set(ids))
    if not wanted or wanted[0] < 1 or wanted[-1] > MAX_ID:
        raise ConfigurationError(f"participant ids must be in [1, {MAX_ID}]")
    identities: dict[int, IdentityKey] = {}
    for done, pid in enumerate(wanted, start=1):
        identities[pid] = IdentityKey.generate(source_for(pid))
        if progress is not None:
            progress(done, len(wanted))
    roster = {p: key.public_bytes for p, key in identities.items()}
    return Members(identities, roster)


class NodeMap:
    """A fixed one-to-one map between a runtime's node ids and protocol ids 1…N.

    Node ids are taken in sorted order, so every party that sees the same set of node ids
    builds the same map. The server's address 0 is never a participant.
    """

    def __init__(self, node_ids: Iterable[int]) -> None:
        nodes = sorted(set(node_ids))
        if not nodes:
            raise ConfigurationError("a session needs at least one node")
        if len(nodes) > MAX_ID:
            raise ConfigurationError(f"at most {MAX_ID} nodes fit the protocol's ids")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in nodes):
            raise ConfigurationError("node ids must be non-negative integers")
        self._to_protocol = {node: pid for pid, node in enumerate(nodes, start=1)}
        self._to_node = {pid: node for node, pid in self._to_protocol.items()}

    def protocol_id(self, node_id: int) -> int:
        pid = self._to_protocol.get(node_id)
        if pid is None:
            raise UnknownSender(f"node {node_id} is not part of this session")
        return pid

    def node_id(self, protocol_id: int) -> int:
        if protocol_id == SERVER:
            raise ConfigurationError("protocol id 0 is the server, not a node")
        node = self._to_node.get(protocol_id)
        if node is None:
            raise UnknownSender(f"participant {protocol_id} is not part of this session")
        return node

    @property
    def protocol_ids(self) -> tuple[int, ...]:
        return tuple(self._to_node)

    def __len__(self) -> int:
        return len(self._to_node)

    def __repr__(self) -> str:
        return f"NodeMap({len(self)} nodes)"


# -- the one wiring ------------------------------------------------------------------------

#: Each party's cryptographic randomness, by role: ``"identity/<id>"`` (the identity key),
#: ``"participant/<id>"`` (everything a participant draws), ``"server"``. Deployments use
#: :func:`system_sources`; tests and recorded transcripts map the labels to seeded sources.
Sources = Callable[[str], RandomSource]

#: How a participant is hosted: given the participant and a function that rebuilds it from
#: its state bytes (with the same identity, trainer and options), the host the exchange uses.
HostFactory = Callable[[Participant, Callable[[bytes], Participant]], ParticipantHost]

#: The exchange that carries the session's frames, given every participant's host.
ExchangeFactory = Callable[[Mapping[int, ParticipantHost]], Exchange]


def system_sources(label: str) -> RandomSource:
    """The operating system's CSPRNG for every party (what a deployment uses)."""
    return OsRandom()


def live(participant: Participant, restore: Callable[[bytes], Participant]) -> ParticipantHost:
    """Keep each participant as a Python object between messages."""
    return LiveHost(participant)


def persisted(participant: Participant, restore: Callable[[bytes], Participant]) -> ParticipantHost:
    """Keep each participant as its state bytes only, rebuilt per message (as on Flower)."""
    return PersistedHost(participant, restore)


def in_memory(
    faults: Sequence[Fault] = (), interceptor: Interceptor | None = None
) -> ExchangeFactory:
    """The in-process exchange (every byte counted, ``faults`` injected)."""

    def make(hosts: Mapping[int, ParticipantHost]) -> Exchange:
        return InMemoryExchange(hosts, faults=faults, interceptor=interceptor)

    return make


def open_server(
    config: ProtocolConfig,
    roster: Mapping[int, bytes],
    initial_weights: np.ndarray,
    exchange: Exchange,
    *,
    selection: SelectionPolicy,
    random: RandomSource | None = None,
    timeout: float | None = None,
    defer_idle: bool = False,
    on_outcome: Callable[[RoundOutcome], None] | None = None,
) -> Driver:
    """The server's half of a session: the server state machine driven over ``exchange``."""
    server = Server(config, roster, initial_weights, selection=selection, random=random)
    return Driver(server, exchange, timeout=timeout, on_outcome=on_outcome, defer_idle=defer_idle)


@dataclass
class _MemberOptions:
    """What every participant of a built session is given besides its id and trainer."""

    members: Members
    sources: Sources
    policy: ParticipantPolicy
    masks: MaskBuilder | None
    inspectors: Callable[[int], Inspector | None]
    rounding_rngs: Mapping[int, np.random.Generator]
    randoms: dict[int, RandomSource] = field(default_factory=dict)

    def random(self, pid: int) -> RandomSource:
        """Participant ``pid``'s source, made once: a rebuilt participant draws on from it."""
        if pid not in self.randoms:
            self.randoms[pid] = self.sources(f"participant/{pid}")
        return self.randoms[pid]

    def participant(self, pid: int, trainer: Trainer) -> Participant:
        return Participant(
            pid,
            self.members.identities[pid],
            self.members.roster,
            trainer,
            random=self.random(pid),
            rounding_rng=self.rounding_rngs.get(pid),
            inspector=self.inspectors(pid),
            policy=self.policy,
            masks=self.masks,
        )

    def restorer(
        self, participant: Participant, trainer: Trainer
    ) -> Callable[[bytes], Participant]:
        """Rebuilds ``participant`` from its state bytes with the same identity, trainer,
        randomness (the same source object: draws continue where they stopped) and options."""
        pid = participant.id
        identity, roster = self.members.identities[pid], self.members.roster
        random = self.random(pid)
        rounding, inspector = self.rounding_rngs.get(pid), self.inspectors(pid)

        def restore(state: bytes) -> Participant:
            return Participant.restore(
                state,
                identity,
                roster,
                trainer,
                random=random,
                rounding_rng=rounding,
                inspector=inspector,
                policy=self.policy,
                masks=self.masks,
            )

        return restore


def _no_inspector(pid: int) -> Inspector | None:
    return None


@dataclass
class Session:
    """A whole session in this process: the participants, their exchange, the server and
    the driver that runs it. Built by :meth:`build`; ``driver.init()`` runs Init."""

    server: Server
    participants: dict[int, Participant]
    exchange: Exchange
    driver: Driver
    members: Members

    @classmethod
    def build(
        cls,
        config: ProtocolConfig,
        trainers: Mapping[int, Trainer],
        initial_weights: np.ndarray,
        *,
        selection: SelectionPolicy,
        sources: Sources = system_sources,
        policy: ParticipantPolicy | None = None,
        masks: MaskBuilder | None = None,
        inspectors: Callable[[int], Inspector | None] = _no_inspector,
        rounding_rngs: Mapping[int, np.random.Generator] | None = None,
        host: HostFactory = live,
        exchange: ExchangeFactory | None = None,
        members: Members | None = None,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> Session:
        """One participant per entry of ``trainers`` (protocol id → LocalTrain), then the
        server over ``exchange`` (default: :func:`in_memory`).

        ``sources`` gives each party's cryptographic randomness (:data:`Sources`); identity
        keys are made from it unless ``members`` brings them (``progress(done, total)`` is
        told as keys are made). ``policy`` is every participant's own policy (default: the
        one that accepts exactly ``config``); ``masks`` where they build masks (the caller
        closes an engine); ``inspectors(id)`` sees each participant's plaintext update (tests
        and validation only); ``rounding_rngs`` are the public stochastic-rounding
        generators; ``host`` keeps each participant (:func:`live` or :func:`persisted`)."""
        ids = sorted(trainers)
        if members is None:
            members = make_members(ids, lambda p: sources(f"identity/{p}"), progress=progress)
        options = _MemberOptions(
            members=members,
            sources=sources,
            policy=policy if policy is not None else ParticipantPolicy.for_config(config, len(ids)),
            masks=masks,
            inspectors=inspectors,
            rounding_rngs=rounding_rngs or {},
        )
        participants = {p: options.participant(p, trainers[p]) for p in ids}
        hosts = {
            p: host(participants[p], options.restorer(participants[p], trainers[p])) for p in ids
        }
        carrier = (exchange or in_memory())(hosts)
        driver = open_server(
            config,
            members.roster,
            initial_weights,
            carrier,
            selection=selection,
            random=sources("server"),
            timeout=timeout,
        )
        return cls(driver.server, participants, carrier, driver, members)

    def participant(self, pid: int) -> Participant:
        """Participant ``pid`` as it is now (a persisted host rebuilds it per message)."""
        hosts = getattr(self.exchange, "hosts", {})
        current = getattr(hosts.get(pid), "participant", None)
        return current if isinstance(current, Participant) else self.participants[pid]
