"""The in-process simulator: a PyTorch model, one dataset per participant, a config — in;
the trained model and a per-round history — out.

Runs are reproducible from ``seed`` for everything that is not secret: data order, local
training and group selection. Keys, masks and shares come from the operating system's CSPRNG;
only ``insecure_crypto_seed`` (for tests and recorded transcripts) derives them from a seed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np
import torch
from torch import nn

from ssddl.exceptions import ConfigurationError, ValidationError
from ssddl.hazmat.codec import ring_sum
from ssddl.hazmat.rand import InsecureSeededRandom, OsRandom, RandomSource
from ssddl.learning.data import ArrayDataset
from ssddl.learning.train import LocalTrainConfig, evaluate, train_local
from ssddl.learning.vector import model_to_vector, vector_to_model
from ssddl.protocol.config import ProtocolConfig, SessionParams
from ssddl.protocol.localtrain import LocalUpdate
from ssddl.protocol.messages import RoundStatus
from ssddl.protocol.participant import Participant
from ssddl.protocol.select import UniformSubset
from ssddl.protocol.server import RoundOutcome, Server
from ssddl.runtime.exchange import Driver, Rejection
from ssddl.runtime.inmemory import Fault, InMemoryExchange, LiveHost, Vanish
from ssddl.runtime.session import make_members
from ssddl.validators import check_int

__all__ = ["RoundMetrics", "SimulationConfig", "SimulationResult", "ValidationError", "simulate"]

#: setup progress: (stage name, done, total)
SetupCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a simulation needs besides the model and the data."""

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    train: LocalTrainConfig = field(default_factory=LocalTrainConfig)
    seed: int = 0
    vanish: tuple[Vanish, ...] = ()
    faults: tuple[Fault, ...] = ()  #: other injected faults (delay, drop, duplicate, reorder)
    validate: bool = False
    torch_threads: int | None = 1  #: small models train fastest on one thread; None = torch default
    insecure_crypto_seed: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.protocol, ProtocolConfig):
            raise ConfigurationError("protocol must be a ProtocolConfig")
        if not isinstance(self.train, LocalTrainConfig):
            raise ConfigurationError("train must be a LocalTrainConfig")
        check_int(self.seed, "seed", low=0)
        if self.insecure_crypto_seed is not None and len(self.insecure_crypto_seed) != 32:
            raise ConfigurationError("insecure_crypto_seed must be 32 bytes (tests only)")
        if self.torch_threads is not None:
            check_int(self.torch_threads, "torch_threads", low=1)


@dataclass(frozen=True)
class RoundMetrics:
    """One row of the metrics CSV."""

    round: int
    status: str
    group_size: int
    contributors: int
    accuracy: float
    loss: float
    train_loss: float
    upload_bytes_mean: float  #: per member of the group
    download_bytes_mean: float
    upload_bytes_max: int
    total_bytes: int
    train_seconds_mean: float  #: LocalTrain, per member
    share_seconds_mean: float  #: ParaShare (encode, mask / split, encrypt), per member
    server_seconds: float  #: SelectGroup + relaying + ParaUpdate at the server
    round_seconds: float  #: wall clock of the whole round in the simulator
    validated: bool | None = None

    def as_row(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SimulationResult:
    model: nn.Module
    config: SessionParams  #: the resolved protocol configuration that ran
    history: list[RoundMetrics]
    outcomes: list[RoundOutcome]
    rejections: list[Rejection]
    transport: InMemoryExchange  #: the exchange that carried every frame (its traffic log)
    model_size: int
    participants: int
    session_id: bytes

    @property
    def final_accuracy(self) -> float:
        return self.history[-1].accuracy if self.history else float("nan")

    def plain_upload_bytes(self) -> int:
        """The float32 upload of this model in mode plain: its frame size on the wire."""
        return plain_upload_size(self.model_size)

    def summary(self) -> dict[str, Any]:
        applied = [h for h in self.history if h.status == "applied"]
        up = [h.upload_bytes_mean for h in applied]
        return {
            "mode": self.config.mode,
            "participants": self.participants,
            "group_size": self.config.group_size,
            "threshold": self.config.threshold,
            "rounds": len(self.history),
            "rounds_applied": len(applied),
            "final_accuracy": self.final_accuracy,
            "final_loss": self.history[-1].loss if self.history else float("nan"),
            "model_size": self.model_size,
            "upload_bytes_per_participant_round": statistics.fmean(up) if up else 0.0,
            "plain_upload_bytes_per_participant_round": self.plain_upload_bytes(),
            "round_seconds_median": statistics.median(h.round_seconds for h in self.history),
            "rejections": len(self.rejections),
            "total_bytes": self.transport.total_bytes(),
        }


def plain_upload_size(model_size: int) -> int:
    from ssddl.protocol.messages import PlainUpload

    probe = PlainUpload(b"\0" * 16, 0, 1, 1, np.zeros(model_size, dtype=np.float32))
    return len(probe.encode())


def _derive(seed: int, *parts: object) -> int:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: a valid torch seed


def _crypto_source(config: SimulationConfig, who: int) -> RandomSource:
    if config.insecure_crypto_seed is None:
        return OsRandom()
    seed = hashlib.sha256(config.insecure_crypto_seed + who.to_bytes(8, "little")).digest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warned once below, not once per participant
        return InsecureSeededRandom(seed)


def simulate(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: SimulationConfig | None = None,
    *,
    test: ArrayDataset | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
    on_setup: SetupCallback | None = None,
) -> SimulationResult:
    """Train ``model`` with one participant per dataset under the SSDDL protocol.

    ``model`` is the initial global model w⁰ (left untouched; the result holds a trained
    copy). Participant ``i`` (numbered from 1) holds ``datasets[i-1]``. The runtime draws
    nothing on a screen: ``on_setup(stage, done, total)`` reports setup progress and
    ``on_round(metrics)`` every finished round.
    """
    config = config if config is not None else SimulationConfig()
    if not datasets:
        raise ConfigurationError("datasets is empty: give one dataset per participant")
    if any(len(d) == 0 for d in datasets):
        raise ConfigurationError("every participant needs at least one training sample")
    if config.insecure_crypto_seed is not None:
        warnings.warn(
            "insecure_crypto_seed is set: keys, masks and shares are derived from a seed. "
            "Use this only for tests and recorded transcripts.",
            stacklevel=2,
        )
    previous_threads = torch.get_num_threads()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    try:
        return _simulate(model, datasets, config, test, on_round, on_setup)
    finally:
        torch.set_num_threads(previous_threads)


def _simulate(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: SimulationConfig,
    test: ArrayDataset | None,
    on_round: Callable[[RoundMetrics], None] | None,
    on_setup: SetupCallback | None,
) -> SimulationResult:
    global_model = copy.deepcopy(model)
    work_model = copy.deepcopy(model)
    initial = model_to_vector(global_model)
    ids = list(range(1, len(datasets) + 1))
    largest = max(len(d) for d in datasets)
    protocol = config.protocol
    if protocol.max_samples is None:
        protocol = dataclasses.replace(protocol, max_samples=1 << (largest - 1).bit_length())
    protocol.resolve(len(ids))  # refuse a bad configuration before any key is made
    members = make_members(
        ids,
        lambda p: _crypto_source(config, 1000 + p),
        progress=(lambda done, total: on_setup("identity keys", done, total))
        if on_setup is not None
        else None,
    )
    identities, roster = members.identities, members.roster
    plaintexts: dict[int, dict[int, np.ndarray]] = {}

    def make_trainer(pid: int) -> Callable[[np.ndarray, int], LocalUpdate]:
        data = datasets[pid - 1]

        def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
            vector_to_model(weights, work_model)
            result = train_local(
                work_model,
                data,
                config.train,
                seed=_derive(config.seed, "train", pid, round_number),
            )
            delta = model_to_vector(work_model) - weights
            return LocalUpdate(delta, result.num_samples, {"loss": result.mean_loss})

        return trainer

    def make_inspector(pid: int) -> Callable[[int, np.ndarray], None] | None:
        if not config.validate:
            return None
        return lambda r, x: plaintexts.setdefault(r, {}).__setitem__(pid, x)

    participants = {
        p: Participant(
            p,
            identities[p],
            roster,
            make_trainer(p),
            random=_crypto_source(config, p),
            rounding_rng=np.random.default_rng(_derive(config.seed, "rounding", p)),
            inspector=make_inspector(p),
        )
        for p in ids
    }
    server = Server(
        protocol,
        roster,
        initial,
        selection=UniformSubset(np.random.default_rng(_derive(config.seed, "select"))),
        random=_crypto_source(config, 0),
    )
    exchange = InMemoryExchange(
        {p: LiveHost(participant) for p, participant in participants.items()},
        faults=(*config.vanish, *config.faults),
    )
    driver = Driver(server, exchange)
    if on_setup is not None:
        on_setup("key agreement", 0, len(ids))
    driver.init()
    if on_setup is not None:
        on_setup("key agreement", len(ids), len(ids))
    history: list[RoundMetrics] = []
    for _ in range(server.config.rounds):
        started = perf_counter()
        outcome = driver.round()
        elapsed = perf_counter() - started
        validated = (
            _validate(outcome, plaintexts.pop(outcome.round, {})) if config.validate else None
        )
        vector_to_model(server.weights, global_model)
        metrics = _metrics(outcome, driver, exchange, participants, global_model, test, elapsed)
        history.append(dataclasses.replace(metrics, validated=validated))
        if on_round is not None:
            on_round(history[-1])
    driver.finish()
    return SimulationResult(
        model=global_model,
        config=server.config,
        history=history,
        outcomes=list(server.history),
        rejections=list(driver.rejections),
        transport=exchange,
        model_size=int(initial.size),
        participants=len(ids),
        session_id=server.session_id,
    )


def _validate(outcome: RoundOutcome, plaintexts: dict[int, np.ndarray]) -> bool | None:
    """CrypTen-style validation: the secure aggregate must equal Σ x_i bit for bit."""
    if outcome.status is not RoundStatus.APPLIED or outcome.aggregate is None:
        return None
    expected = ring_sum([plaintexts[p] for p in outcome.contributors])
    if not np.array_equal(expected, outcome.aggregate):
        raise ValidationError(
            f"round {outcome.round}: the secure aggregate differs from the plaintext sum"
        )
    return True


def _metrics(
    outcome: RoundOutcome,
    driver: Driver,
    exchange: InMemoryExchange,
    participants: dict[int, Participant],
    model: nn.Module,
    test: ArrayDataset | None,
    elapsed: float,
) -> RoundMetrics:
    members = outcome.group
    traffic = exchange.bytes_by_participant(outcome.round)
    up = [traffic.get(p, {}).get("up", 0) for p in members]
    down = [traffic.get(p, {}).get("down", 0) for p in members]
    timings = [participants[p].timings for p in outcome.contributors]
    losses = [
        participants[p].last_train_metrics.get("loss", float("nan")) for p in outcome.contributors
    ]
    evaluation = evaluate(model, test) if test is not None else None
    return RoundMetrics(
        round=outcome.round,
        status=outcome.status.name.lower(),
        group_size=len(members),
        contributors=len(outcome.contributors),
        accuracy=evaluation.accuracy if evaluation else float("nan"),
        loss=evaluation.loss if evaluation else float("nan"),
        train_loss=float(np.mean(losses)) if losses else float("nan"),
        upload_bytes_mean=float(np.mean(up)) if up else 0.0,
        download_bytes_mean=float(np.mean(down)) if down else 0.0,
        upload_bytes_max=max(up, default=0),
        total_bytes=sum(r.nbytes for r in exchange.records if r.round == outcome.round),
        train_seconds_mean=float(np.mean([t.get("train", 0.0) for t in timings]))
        if timings
        else 0.0,
        share_seconds_mean=float(np.mean([t.get("share", 0.0) for t in timings]))
        if timings
        else 0.0,
        server_seconds=driver.server_seconds,
        round_seconds=elapsed,
    )
