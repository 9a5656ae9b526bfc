"""The in-process simulator: a PyTorch model, one dataset per participant, a config — in;
the trained model and a per-round history — out.

Runs are reproducible from ``seed`` for everything that is not secret: data order, local
training and group selection. Keys, masks and shares come from the operating system's CSPRNG;
only ``insecure_crypto_seed`` (for tests and recorded transcripts) derives them from a seed.
"""

from __future__ import annotations

import contextlib
import copy
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

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import ring_sum
from ssddl.hazmat.keys import IdentityKey
from ssddl.hazmat.rand import InsecureSeededRandom, OsRandom, RandomSource
from ssddl.learning.data import ArrayDataset
from ssddl.learning.train import LocalTrainConfig, evaluate, train_local
from ssddl.learning.vector import model_to_vector, vector_to_model
from ssddl.protocol.config import ProtocolConfig
from ssddl.protocol.messages import RoundStatus
from ssddl.protocol.participant import LocalUpdate, Participant
from ssddl.protocol.server import RoundOutcome, Server
from ssddl.runtime.driver import Driver, Rejection, Vanish
from ssddl.runtime.transport import Delivery, InMemoryTransport, TrafficRecord

__all__ = [
    "RoundMetrics",
    "SimulationConfig",
    "SimulationResult",
    "SimulationState",
    "ValidationError",
    "simulate",
]

#: (stage name, done, total): setup progress, reported while identities and keys are set up.
SetupCallback = Callable[[str, int, int], None]


class ValidationError(AssertionError):
    """Validation mode found a secure aggregate that differs from the plaintext sum."""


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a simulation needs besides the model and the data."""

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    train: LocalTrainConfig = field(default_factory=LocalTrainConfig)
    seed: int = 0
    vanish: tuple[Vanish, ...] = ()
    validate: bool = False
    progress: bool = False
    torch_threads: int | None = 1  #: small models train fastest on one thread; None = torch default
    insecure_crypto_seed: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.protocol, ProtocolConfig):
            raise ConfigurationError("protocol must be a ProtocolConfig")
        if not isinstance(self.train, LocalTrainConfig):
            raise ConfigurationError("train must be a LocalTrainConfig")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigurationError(f"seed={self.seed!r} must be an integer >= 0")
        if self.insecure_crypto_seed is not None and len(self.insecure_crypto_seed) != 32:
            raise ConfigurationError("insecure_crypto_seed must be 32 bytes (tests only)")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigurationError("torch_threads must be >= 1")


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
    config: ProtocolConfig  #: the resolved protocol configuration that ran
    history: list[RoundMetrics]
    outcomes: list[RoundOutcome]
    rejections: list[Rejection]
    transport: InMemoryTransport
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
            "mode": self.config.mode.value,
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


@dataclass(frozen=True)
class SimulationState:
    """Where a simulation stands after round ``round``: everything a checkpoint needs to
    continue bit-identically, and nothing secret (no key, seed, share or round key).

    ``selection_state`` and ``rounding_states`` are the ``bit_generator.state`` dicts of the
    server's group-selection generator and of each participant's rounding generator; they are
    derived from the public ``seed`` and hold no key material. ``traffic`` holds the frames
    sent since the previous state (Init's frames come with the first one), ``rejections``
    the messages refused since then.
    """

    round: int  #: the last finished round (-1: none yet)
    weights: np.ndarray  #: the global weights after it (float32)
    selection_state: dict[str, Any]
    rounding_states: dict[int, dict[str, Any]]
    outcome: RoundOutcome | None = None
    traffic: tuple[TrafficRecord, ...] = ()
    rejections: tuple[Rejection, ...] = ()


class _SetupProgress(InMemoryTransport):
    """Counts the frames handed to participants during Init, to report setup progress."""

    def __init__(self, report: SetupCallback, total: int) -> None:
        super().__init__()
        self._report = report
        self._total = total
        self._done = 0

    def receive(self) -> Delivery | None:
        delivery = super().receive()
        if delivery is not None and self.round == -1 and delivery.recipient != 0:
            self._report("key agreement", self._done, self._total)
            self._done += 1
        return delivery


def resolve_protocol(protocol: ProtocolConfig, datasets: Sequence[ArrayDataset]) -> ProtocolConfig:
    """The protocol config a simulation of ``datasets`` runs: ``max_samples``, when unset, is
    the smallest power of two that holds the largest local dataset."""
    largest = max(len(d) for d in datasets)
    return protocol.resolve(len(datasets), max_samples=1 << (largest - 1).bit_length())


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
    on_state: Callable[[SimulationState], None] | None = None,
    resume: SimulationState | None = None,
    device: str | torch.device | None = None,
) -> SimulationResult:
    """Train ``model`` with one participant per dataset under the SSDDL protocol.

    ``model`` is the initial global model w⁰ (left untouched; the result holds a trained
    copy). Participant ``i`` (numbered from 1) holds ``datasets[i-1]``.

    ``on_setup(stage, done, total)`` reports progress while identities and keys are set up;
    ``on_state`` receives a :class:`SimulationState` after every round. ``resume`` continues
    from such a state: a fresh key session, then rounds ``resume.round + 1`` on from its
    weights and generator states (in the default rounding the result is bit-identical to an
    uninterrupted run, whatever the keys). ``device`` is where local training runs (the
    protocol always runs on the CPU); ``None`` means the CPU.
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
        return _simulate(
            model,
            datasets,
            config,
            test,
            on_round,
            _Hooks(on_setup, on_state, resume, torch.device(device) if device else None),
        )
    finally:
        torch.set_num_threads(previous_threads)


@dataclass(frozen=True)
class _Hooks:
    on_setup: SetupCallback | None = None
    on_state: Callable[[SimulationState], None] | None = None
    resume: SimulationState | None = None
    device: torch.device | None = None


def _identities(
    config: SimulationConfig, ids: list[int], on_setup: SetupCallback | None
) -> dict[int, IdentityKey]:
    identities = {}
    for done, p in enumerate(ids):
        if on_setup is not None and done % 50 == 0:
            on_setup("identity keys", done, len(ids))
        identities[p] = IdentityKey.generate(_crypto_source(config, 1000 + p))
    if on_setup is not None:
        on_setup("identity keys", len(ids), len(ids))
    return identities


def _generator_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(copy.deepcopy(dict(rng.bit_generator.state)))


def _simulate(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: SimulationConfig,
    test: ArrayDataset | None,
    on_round: Callable[[RoundMetrics], None] | None,
    hooks: _Hooks | None = None,
) -> SimulationResult:
    hooks = hooks if hooks is not None else _Hooks()
    global_model = copy.deepcopy(model)
    work_model = copy.deepcopy(model)
    initial = model_to_vector(global_model)
    resume = hooks.resume
    if resume is not None:
        if resume.weights.shape != initial.shape or resume.weights.dtype != np.float32:
            raise ConfigurationError(
                f"the resumed weights hold {resume.weights.size} values, the model "
                f"{initial.size}: resume with the model and config of the checkpointed run"
            )
        initial = resume.weights.copy()
        vector_to_model(initial, global_model)
    if hooks.device is not None:
        work_model.to(hooks.device)
    ids = list(range(1, len(datasets) + 1))
    protocol = resolve_protocol(config.protocol, datasets)
    identities = _identities(config, ids, hooks.on_setup)
    roster = {p: key.public_bytes for p, key in identities.items()}
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
                device=hooks.device,
            )
            delta = model_to_vector(work_model) - weights
            return LocalUpdate(delta, result.num_samples, {"loss": result.mean_loss})

        return trainer

    def make_inspector(pid: int) -> Callable[[int, np.ndarray], None] | None:
        if not config.validate:
            return None
        return lambda r, x: plaintexts.setdefault(r, {}).__setitem__(pid, x)

    rounding_rngs = {p: np.random.default_rng(_derive(config.seed, "rounding", p)) for p in ids}
    selection_rng = np.random.default_rng(_derive(config.seed, "select"))
    if resume is not None:
        selection_rng.bit_generator.state = resume.selection_state
        for p, state in resume.rounding_states.items():
            rounding_rngs[p].bit_generator.state = state
    participants = {
        p: Participant(
            p,
            identities[p],
            roster,
            make_trainer(p),
            random=_crypto_source(config, p),
            rounding_rng=rounding_rngs[p],
            inspector=make_inspector(p),
        )
        for p in ids
    }
    server = Server(
        protocol,
        roster,
        initial,
        selection_rng=selection_rng,
        random=_crypto_source(config, 0),
    )
    transport = (
        _SetupProgress(hooks.on_setup, len(ids) * (1 if not protocol.secure else 2))
        if hooks.on_setup is not None
        else None
    )
    driver = Driver(server, participants, transport, vanish=config.vanish)
    driver.init()
    if hooks.on_setup is not None:
        total = len(ids) * (1 if not protocol.secure else 2)
        hooks.on_setup("key agreement", total, total)
    first = 0
    if resume is not None:
        first = resume.round + 1
        server.round = resume.round  # the next start_round opens round resume.round + 1
    history: list[RoundMetrics] = []
    rounds = server.config.rounds
    reported = refused = 0
    progress = _progress(rounds, server.config.mode.value, enabled=config.progress)
    with progress as bar:
        task = bar.add_task("rounds", total=rounds) if bar is not None else None
        for _ in range(first, rounds):
            started = perf_counter()
            outcome = driver.round()
            elapsed = perf_counter() - started
            validated = (
                _validate(outcome, plaintexts.pop(outcome.round, {})) if config.validate else None
            )
            vector_to_model(server.weights, global_model)
            metrics = _metrics(
                outcome, driver, participants, global_model, test, elapsed, validated
            )
            history.append(metrics)
            if on_round is not None:
                on_round(metrics)
            if hooks.on_state is not None:
                records = driver.transport.records
                hooks.on_state(
                    SimulationState(
                        round=outcome.round,
                        weights=server.weights.copy(),
                        selection_state=_generator_state(selection_rng),
                        rounding_states={p: _generator_state(r) for p, r in rounding_rngs.items()},
                        outcome=outcome,
                        traffic=tuple(records[reported:]),
                        rejections=tuple(driver.rejections[refused:]),
                    )
                )
                reported, refused = len(records), len(driver.rejections)
            if bar is not None and task is not None:
                bar.update(task, advance=1, description=f"acc {metrics.accuracy:.3f}")
    driver.finish()
    return SimulationResult(
        model=global_model,
        config=server.config,
        history=history,
        outcomes=list(server.history),
        rejections=list(driver.rejections),
        transport=driver.transport,
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
    participants: dict[int, Participant],
    model: nn.Module,
    test: ArrayDataset | None,
    elapsed: float,
    validated: bool | None,
) -> RoundMetrics:
    members = outcome.group
    traffic = driver.transport.bytes_by_participant(outcome.round)
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
        total_bytes=sum(r.nbytes for r in driver.transport.records if r.round == outcome.round),
        train_seconds_mean=float(np.mean([t.get("train", 0.0) for t in timings]))
        if timings
        else 0.0,
        share_seconds_mean=float(np.mean([t.get("share", 0.0) for t in timings]))
        if timings
        else 0.0,
        server_seconds=driver.server_seconds,
        round_seconds=elapsed,
        validated=validated,
    )


def _progress(total: int, label: str, *, enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
