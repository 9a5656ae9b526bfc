"""A small SSDDL session with a synthetic LocalTrain (numpy only), for protocol tests."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssddl.hazmat.codec import ring_sum  # noqa: F401  (re-exported for the tests)
from ssddl.hazmat.rand import InsecureSeededRandom
from ssddl.protocol import LocalUpdate, Participant, ProtocolConfig, Server, UniformSubset
from ssddl.protocol.policy import ParticipantPolicy
from ssddl.protocol.ports import MaskBuilder
from ssddl.runtime import Driver, InMemoryExchange
from ssddl.runtime.inmemory import Fault
from ssddl.runtime.session import Session as BuiltSession
from ssddl.runtime.session import live
from ssddl.runtime.session import persisted as persisted_host


def seeded(label: str) -> InsecureSeededRandom:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSeededRandom(hashlib.sha256(label.encode()).digest())


def labelled(seed: str):
    """Seeded sources for :meth:`ssddl.runtime.session.Session.build`, one per role."""
    names = {"identity": "id", "participant": "p"}

    def source(label: str) -> InsecureSeededRandom:
        role, _, pid = label.partition("/")
        return seeded(f"{seed}/{names[role]}/{pid}" if pid else f"{seed}/{role}")

    return source


def synthetic_delta(pid: int, round_number: int, size: int, scale: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng([pid, round_number, size])
    return (rng.standard_normal(size) * scale).astype(np.float32)


@dataclass
class Session:
    server: Server
    participants: dict[int, Participant]
    driver: Driver
    transport: InMemoryExchange
    plaintexts: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    samples: dict[int, int] = field(default_factory=dict)

    def participant(self, pid: int) -> Participant:
        """The participant as it is now (hosts that persist rebuild it per message)."""
        host = self.transport.hosts[pid]
        return host.participant  # type: ignore[attr-defined,no-any-return]


def make_session(
    config: ProtocolConfig,
    n: int = 5,
    size: int = 37,
    *,
    vanish: tuple[Fault, ...] = (),
    bad: dict[int, str] | None = None,
    seed: str = "s",
    transport: InMemoryExchange | None = None,
    persisted: bool = False,
    policy: ParticipantPolicy | None = None,
    masks: MaskBuilder | None = None,
) -> Session:
    """``bad[pid]`` = "nan" makes that participant's trainer return a NaN entry.
    ``persisted`` keeps every participant as state bytes, rebuilt for every message.
    ``vanish`` takes any in-memory faults (Vanish, Delay, Drop, Duplicate, Reorder).
    ``policy`` is every participant's own policy; by default the one that accepts exactly
    ``config`` (as the simulator gives them). ``masks``: where every participant builds its
    masks (default: in the caller, the protocol's own default; the caller closes an engine)."""
    bad = bad or {}
    if config.weighted and config.max_samples is None:
        config = dataclasses.replace(config, max_samples=64)
    ids = list(range(1, n + 1))
    plaintexts: dict[int, dict[int, np.ndarray]] = {}
    samples = {p: 10 + 7 * p for p in ids}

    def trainer_for(pid: int):
        def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
            delta = synthetic_delta(pid, round_number, size)
            if bad.get(pid) == "nan":
                delta[3] = np.nan
            return LocalUpdate(delta, samples[pid])

        return trainer

    def inspector_for(pid: int):
        return lambda r, x: plaintexts.setdefault(r, {}).__setitem__(pid, x)

    transport = transport if transport is not None else InMemoryExchange()
    transport.faults = (*transport.faults, *vanish)

    built = BuiltSession.build(
        config,
        {p: trainer_for(p) for p in ids},
        np.zeros(size, dtype=np.float32),
        selection=UniformSubset(np.random.default_rng(0)),
        sources=labelled(seed),
        policy=policy,
        masks=masks,
        inspectors=inspector_for,
        host=persisted_host if persisted else live,
        exchange=transport.attach,
    )
    server, participants, driver = built.server, built.participants, built.driver
    return Session(server, participants, driver, transport, plaintexts, samples)


def tap_uploads(session: Any) -> list[Any]:
    """Every masked upload the session's transport carries, decoded, in order."""
    from ssddl.protocol.messages import MessageKind, decode_message

    uploads: list[Any] = []

    def tap(frame: Any) -> Any:
        if frame.data[5] == MessageKind.MASKED_UPLOAD:
            uploads.append(decode_message(frame.data))
        return frame

    session.transport.interceptor = tap
    return uploads
