"""A small SSDDL session with a synthetic LocalTrain (numpy only), for protocol tests."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from ssddl.hazmat.codec import ring_sum  # noqa: F401  (re-exported for the tests)
from ssddl.hazmat.keys import IdentityKey
from ssddl.hazmat.rand import InsecureSeededRandom
from ssddl.protocol import LocalUpdate, Participant, ProtocolConfig, Server
from ssddl.runtime import Driver, InMemoryTransport, Vanish


def seeded(label: str) -> InsecureSeededRandom:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSeededRandom(hashlib.sha256(label.encode()).digest())


def synthetic_delta(pid: int, round_number: int, size: int, scale: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng([pid, round_number, size])
    return (rng.standard_normal(size) * scale).astype(np.float32)


@dataclass
class Session:
    server: Server
    participants: dict[int, Participant]
    driver: Driver
    transport: InMemoryTransport
    plaintexts: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    samples: dict[int, int] = field(default_factory=dict)


def make_session(
    config: ProtocolConfig,
    n: int = 5,
    size: int = 37,
    *,
    vanish: tuple[Vanish, ...] = (),
    bad: dict[int, str] | None = None,
    seed: str = "s",
    transport: InMemoryTransport | None = None,
) -> Session:
    """``bad[pid]`` = "nan" makes that participant's trainer return a NaN entry."""
    bad = bad or {}
    if config.weighted and config.max_samples is None:
        config = dataclasses.replace(config, max_samples=64)
    ids = list(range(1, n + 1))
    identities = {p: IdentityKey.generate(seeded(f"{seed}/id/{p}")) for p in ids}
    roster = {p: k.public_bytes for p, k in identities.items()}
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

    participants = {
        p: Participant(
            p,
            identities[p],
            roster,
            trainer_for(p),
            random=seeded(f"{seed}/p/{p}"),
            inspector=inspector_for(p),
        )
        for p in ids
    }
    server = Server(
        config,
        roster,
        np.zeros(size, dtype=np.float32),
        selection_rng=np.random.default_rng(0),
        random=seeded(f"{seed}/server"),
    )
    transport = transport if transport is not None else InMemoryTransport()
    driver = Driver(server, participants, transport, vanish=vanish)
    return Session(server, participants, driver, transport, plaintexts, samples)
