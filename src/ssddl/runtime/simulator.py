"""The in-process simulator: a PyTorch model, one dataset per participant, a config — in;
the trained model and a per-round history — out.

Runs are reproducible from ``seed`` for everything that is not secret: data order, local
training and group selection. Keys, masks and shares come from the operating system's CSPRNG;
only ``insecure_crypto_seed`` (for tests and recorded transcripts) derives them from a seed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import hashlib
import statistics
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
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
from ssddl.learning.train import LocalTrainConfig, TrainStep, evaluate
from ssddl.learning.vector import model_to_vector, vector_to_model
from ssddl.protocol.config import ProtocolConfig, SessionParams
from ssddl.protocol.localtrain import Trainer
from ssddl.protocol.messages import RoundStatus
from ssddl.protocol.participant import Participant
from ssddl.protocol.ports import MaskBuilder
from ssddl.protocol.schemes import get_scheme
from ssddl.protocol.select import UniformSubset
from ssddl.protocol.server import RoundOutcome
from ssddl.runtime.callbacks import CallbackList, ParticipantEval, RunCallback
from ssddl.runtime.exchange import Driver, Frame, Rejection
from ssddl.runtime.inmemory import (
    Fault,
    InMemoryExchange,
    Metered,
    TrafficLog,
    TrafficRecord,
    Vanish,
    metered,
)
from ssddl.runtime.masking import MaskEngine, MaskWorker, check_worker
from ssddl.runtime.progress import ProgressBar
from ssddl.runtime.seeds import rounding_rng, selection_rng
from ssddl.runtime.session import ExchangeFactory, Session, in_memory
from ssddl.runtime.training import model_evaluator, model_trainer
from ssddl.validators import check_int

__all__ = [
    "ParticipantEval",
    "RoundMetrics",
    "RunCallback",
    "SimulationConfig",
    "SimulationResult",
    "SimulationState",
    "ValidationError",
    "resolve_protocol",
    "simulate",
]

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
    #: where members' masks are built: a child ``process`` (every member trains in this one
    #: interpreter, where a mask thread would wait for the GIL) or a background ``thread``
    mask_worker: MaskWorker = "process"
    #: keep every round's aggregate and update in ``SimulationResult.outcomes`` (False: the
    #: last round's only, so a long run holds O(M) of them, not 12 bytes an entry a round)
    keep_round_arrays: bool = True
    #: every this many rounds each participant evaluates the global model on its own
    #: held-out split (``simulate(holdout=...)``) and reports accuracy and loss only
    eval_participants: int | None = None
    #: a custom loss for local training (:data:`~ssddl.learning.train.TrainStep`)
    train_step: TrainStep | None = field(default=None, repr=False)
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
        if not isinstance(self.keep_round_arrays, bool):
            raise ConfigurationError("keep_round_arrays must be True or False")
        check_worker(self.mask_worker, "mask_worker")
        if self.eval_participants is not None:
            check_int(self.eval_participants, "eval_participants", low=1)
        if self.train_step is not None and not callable(self.train_step):
            raise ConfigurationError("train_step must be a function (model, x, y) -> loss")


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
    #: every round's; with its aggregate and update arrays unless ``keep_round_arrays`` is off
    outcomes: list[RoundOutcome]
    rejections: list[Rejection]
    transport: TrafficLog  #: the exchange that carried every frame (its traffic log)
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
    weights: np.ndarray = field(repr=False)  #: the global weights after it (float32)
    selection_state: dict[str, Any] = field(repr=False)
    rounding_states: dict[int, dict[str, Any]] = field(repr=False)
    outcome: RoundOutcome | None = None
    traffic: tuple[TrafficRecord, ...] = field(default=(), repr=False)
    rejections: tuple[Rejection, ...] = ()


def resolve_protocol(protocol: ProtocolConfig, datasets: Sequence[ArrayDataset]) -> ProtocolConfig:
    """The protocol config a simulation of ``datasets`` runs: ``max_samples``, when unset, is
    the smallest power of two that holds the largest local dataset (checked by resolving)."""
    if protocol.max_samples is None:
        largest = max(len(d) for d in datasets)
        protocol = dataclasses.replace(protocol, max_samples=1 << (largest - 1).bit_length())
    protocol.resolve(len(datasets))  # refuse a bad configuration before any key is made
    return protocol


@dataclass(frozen=True)
class _Hooks:
    on_setup: SetupCallback | None = None
    on_state: Callable[[SimulationState], None] | None = None
    resume: SimulationState | None = None
    device: torch.device | None = None
    masks: MaskBuilder | None = None
    exchange: ExchangeFactory | None = None
    callbacks: CallbackList = field(default_factory=CallbackList)
    holdout: Sequence[ArrayDataset] | None = None


def _generator_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(copy.deepcopy(dict(rng.bit_generator.state)))


def _setup_counter(report: SetupCallback, total: int) -> Callable[[Frame], Frame]:
    """An interceptor that reports key-agreement progress as Init frames reach members."""
    done = [0]

    def count(frame: Frame) -> Frame:
        if frame.recipient != 0 and done[0] < total:
            done[0] += 1
            report("key agreement", done[0], total)
        return frame

    return count


def plain_upload_size(model_size: int) -> int:
    from ssddl.protocol.messages import PlainUpload

    probe = PlainUpload(b"\0" * 16, 0, 1, 1, np.zeros(model_size, dtype=np.float32))
    return len(probe.encode())


def _crypto_source(config: SimulationConfig, who: int) -> RandomSource:
    if config.insecure_crypto_seed is None:
        return OsRandom()
    seed = hashlib.sha256(config.insecure_crypto_seed + who.to_bytes(8, "little")).digest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warned once below, not once per participant
        return InsecureSeededRandom(seed)


def _crypto_slot(label: str) -> int:
    """Where each role's seeded source sits (the order recorded runs were made with):
    identity keys at 1000 + id, participants at their id, the server at 0."""
    role, _, pid = label.partition("/")
    return {"identity": 1000 + int(pid or 0), "participant": int(pid or 0)}.get(role, 0)


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
    masks: MaskBuilder | None = None,
    exchange: ExchangeFactory | None = None,
    callbacks: Sequence[RunCallback] = (),
    holdout: Sequence[ArrayDataset] | None = None,
    progress: bool | None = None,
) -> SimulationResult:
    """Train ``model`` with one participant per dataset under the SSDDL protocol.

    ``model`` is the initial global model w⁰ (left untouched; the result holds a trained
    copy). Participant ``i`` (numbered from 1) holds ``datasets[i-1]``. The runtime draws
    nothing on a screen: ``on_setup(stage, done, total)`` reports setup progress and
    ``on_round(metrics)`` every finished round.

    ``on_state`` receives a :class:`SimulationState` after every round. ``resume`` continues
    from such a state: a fresh key session, then rounds ``resume.round + 1`` on from its
    weights and generator states (the secure aggregate is exact whatever the keys, so the
    result is bit-identical to an uninterrupted run). ``device`` is where local training runs
    (the protocol always runs on the CPU); ``None`` means the CPU.

    ``masks`` builds the members' masks (:class:`~ssddl.protocol.ports.MaskBuilder`; the
    caller keeps and closes it); by default the simulation opens a
    :class:`~ssddl.runtime.masking.MaskEngine` with ``config.mask_worker`` and closes it
    when the run ends.

    ``exchange`` carries the frames (:data:`~ssddl.runtime.session.ExchangeFactory`: given
    every participant's host, any :class:`~ssddl.runtime.exchange.Exchange`); by default the
    in-memory exchange with ``config``'s faults. Its traffic is counted at the seam for the
    metrics.

    ``callbacks`` (:class:`~ssddl.runtime.callbacks.RunCallback`) see the start (the
    resolved protocol and the guarantee), every round, the participants' evaluations and the
    end (:meth:`SimulationResult.summary`). ``holdout`` gives participant ``i`` a held-out
    split ``holdout[i-1]``: with ``config.eval_participants`` = K, after every K-th round
    each participant still present evaluates the global model on it (accuracy and loss only).

    ``progress`` draws key setup and the rounds as a progress bar on stderr
    (:class:`~ssddl.runtime.progress.ProgressBar`, fed by the same reports as ``on_setup``
    and ``on_round``); ``None`` (the default) draws it when stderr is a terminal, ``False``
    never.
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
        where = torch.device(device) if device else None
        with contextlib.ExitStack() as stack:
            if masks is None:
                masks = stack.enter_context(MaskEngine(config.mask_worker))
            if sys.stderr.isatty() if progress is None else progress:
                bar = stack.enter_context(ProgressBar(config.protocol.rounds))
                on_setup, on_round = bar.chain(on_setup, on_round)
            hooks = _Hooks(
                on_setup,
                on_state,
                resume,
                where,
                masks,
                exchange,
                CallbackList(callbacks),
                _check_holdout(config, datasets, holdout),
            )
            return _simulate(model, datasets, config, test, on_round, hooks)
    finally:
        torch.set_num_threads(previous_threads)


def _simulate(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: SimulationConfig,
    test: ArrayDataset | None,
    on_round: Callable[[RoundMetrics], None] | None,
    hooks: _Hooks,
) -> SimulationResult:
    on_setup = hooks.on_setup
    global_model = copy.deepcopy(model)
    work_model = copy.deepcopy(model)
    initial = _initial_weights(global_model, hooks.resume)
    if hooks.device is not None:
        work_model.to(hooks.device)
    ids = list(range(1, len(datasets) + 1))
    protocol = resolve_protocol(config.protocol, datasets)
    plaintexts: dict[int, dict[int, np.ndarray]] = {}

    def make_trainer(pid: int) -> Trainer:
        return model_trainer(
            work_model,
            datasets[pid - 1],
            config.train,
            seed=config.seed,
            participant=pid,
            device=hooks.device,
            step=config.train_step,
        )

    def make_inspector(pid: int) -> Callable[[int, np.ndarray], None] | None:
        if not config.validate:
            return None
        return lambda r, x: plaintexts.setdefault(r, {}).__setitem__(pid, x)

    selection_rng, rounding_rngs = _generators(config.seed, ids, hooks.resume)
    session = Session.build(
        protocol,
        {p: make_trainer(p) for p in ids},
        initial,
        selection=UniformSubset(selection_rng),
        sources=lambda label: _crypto_source(config, _crypto_slot(label)),
        masks=hooks.masks,
        inspectors=make_inspector,
        rounding_rngs=rounding_rngs,
        exchange=_counted(hooks.exchange or in_memory((*config.vanish, *config.faults))),
        progress=_stage(on_setup, "identity keys"),
    )
    server, participants, driver = session.server, session.participants, session.driver
    exchange = metered(session.exchange)  # already counted: the same object
    _init(driver, exchange, on_setup, len(ids) * (2 if server.scheme.needs_keys else 1))
    first = 0
    if hooks.resume is not None:
        first = hooks.resume.round + 1
        server.round = hooks.resume.round  # the next start_round opens round resume.round + 1
    history: list[RoundMetrics] = []
    hooks.callbacks.on_start(_public_config(config, server.config), _guarantee(server.config))
    evaluate_participants = _ParticipantEvaluation(config, hooks, copy.deepcopy(model), ids)
    report_traffic = _TrafficReporter(hooks.callbacks, exchange)
    report_state = _StateReporter(hooks.on_state, driver, exchange, selection_rng, rounding_rngs)
    outcomes: list[RoundOutcome] = []
    with _setup_left_out_of_collections():
        for _ in range(first, server.config.rounds):
            started = perf_counter()
            outcome = driver.round()
            if outcomes and not config.keep_round_arrays:
                outcomes[-1] = outcomes[-1].without_arrays()
            outcomes.append(outcome)
            elapsed = perf_counter() - started
            validated = (
                _validate(outcome, plaintexts.pop(outcome.round, {}), server.config.bits)
                if config.validate
                else None
            )
            vector_to_model(server.weights, global_model)
            metrics = _metrics(outcome, driver, exchange, participants, global_model, test, elapsed)
            history.append(dataclasses.replace(metrics, validated=validated))
            if on_round is not None:
                on_round(history[-1])
            hooks.callbacks.on_round(history[-1])
            report_traffic(outcome.round)
            evaluate_participants(outcome.round, server.weights)
            report_state(outcome)
    driver.finish()
    result = SimulationResult(
        model=global_model,
        config=server.config,
        history=history,
        outcomes=outcomes,
        rejections=list(driver.rejections),
        transport=exchange,
        model_size=int(initial.size),
        participants=len(ids),
        session_id=server.session_id,
    )
    hooks.callbacks.on_end(result.summary())
    return result


def _check_holdout(
    config: SimulationConfig,
    datasets: Sequence[ArrayDataset],
    holdout: Sequence[ArrayDataset] | None,
) -> Sequence[ArrayDataset] | None:
    if config.eval_participants is None:
        return holdout
    if holdout is None or len(holdout) != len(datasets):
        raise ConfigurationError(
            "eval_participants needs holdout: one held-out dataset per participant"
        )
    if any(not isinstance(d, ArrayDataset) or len(d) == 0 for d in holdout):
        raise ConfigurationError("every participant's held-out split needs at least one sample")
    return holdout


class _TrafficReporter:
    """Hands each round's bytes by message kind and direction to the callbacks (only when
    there are callbacks: it reads the round's new traffic records once)."""

    def __init__(self, callbacks: CallbackList, exchange: TrafficLog) -> None:
        self._callbacks, self._exchange = callbacks, exchange
        self._seen = 0

    def __call__(self, round_number: int) -> None:
        if not self._callbacks.callbacks:
            return
        records = self._exchange.records
        by_kind: dict[str, dict[str, int]] = {}
        for r in records[self._seen :]:
            if r.round == round_number:
                bucket = by_kind.setdefault(r.kind.name.lower(), {"up": 0, "down": 0})
                bucket["down" if r.sender == 0 else "up"] += r.nbytes
        self._seen = len(records)
        self._callbacks.on_traffic(round_number, by_kind)


class _ParticipantEvaluation:
    """After every ``eval_participants``-th round, each participant that has not vanished
    evaluates the global weights on its own held-out split; the callbacks get the figures."""

    def __init__(
        self, config: SimulationConfig, hooks: _Hooks, model: nn.Module, ids: list[int]
    ) -> None:
        self._every = config.eval_participants
        self._callbacks = hooks.callbacks
        self._vanish = {v.participant: v.round for v in config.vanish}
        holdout = hooks.holdout if self._every is not None else None
        self._evaluators = (
            {}
            if holdout is None
            else {p: model_evaluator(model, holdout[p - 1], participant=p) for p in ids}
        )

    def __call__(self, round_number: int, weights: np.ndarray) -> None:
        if self._every is None or (round_number + 1) % self._every:
            return
        results = [
            run(weights)
            for p, run in self._evaluators.items()
            if self._vanish.get(p, round_number + 1) > round_number
        ]
        self._callbacks.on_participants(round_number, results)


def _public_config(config: SimulationConfig, params: SessionParams) -> dict[str, Any]:
    """What ``on_start`` shows of a simulation: the resolved protocol, local training and
    the public seed (never the insecure crypto seed)."""
    return {
        "seed": config.seed,
        "protocol": params.to_dict(),
        "train": dataclasses.asdict(config.train),
        "eval_participants": config.eval_participants,
        "train_step": None if config.train_step is None else _name_of(config.train_step),
    }


def _name_of(function: Any) -> str:
    module = getattr(function, "__module__", None) or "?"
    return f"{module}:{getattr(function, '__qualname__', type(function).__name__)}"


def _guarantee(params: SessionParams) -> dict[str, Any]:
    """The session's guarantee, as its scheme states it."""
    g = get_scheme(params.mode).guarantee(params)
    return {
        "collusion_bound": g.collusion_bound,
        "dropout_bound": g.dropout_bound,
        "lying_collusion_bound": None if g.lying is None else g.lying[0],
        "lying_dropout_bound": None if g.lying is None else g.lying[1],
        "round_trips": g.round_trips,
        "text": g.describe(params.group_size),
    }


@contextlib.contextmanager
def _setup_left_out_of_collections() -> Iterator[None]:
    """While the rounds run, Python's cyclic garbage collector leaves out of its scans every
    object made before them (``gc.freeze``): the models, the datasets, torch's and numpy's
    modules, several hundred thousand objects. The protocol's messages make enough short-lived
    objects to trigger a full collection every few rounds, which scanned them all (measured
    at n = 100: 0.19-0.22 s once in 8 rounds of about 0.35 s). Nothing is kept longer: objects left
    out are freed by reference counting as before, and those in unreachable cycles are
    collected once the rounds end (``gc.unfreeze``). Not done when the collector is off or
    the caller froze objects itself (its choice stands)."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _counted(make: ExchangeFactory) -> ExchangeFactory:
    """The exchange ``make`` builds, counting its traffic for the metrics (any exchange)."""
    return lambda hosts: metered(make(hosts))


def _stage(on_setup: SetupCallback | None, stage: str) -> Callable[[int, int], None] | None:
    if on_setup is None:
        return None
    return lambda done, total: on_setup(stage, done, total)


def _generators(
    seed: int, ids: list[int], resume: SimulationState | None
) -> tuple[np.random.Generator, dict[int, np.random.Generator]]:
    """Group selection and per-participant rounding generators (public, from ``seed``), at
    the state a resumed run left them in."""
    rounding = {p: rounding_rng(seed, p) for p in ids}
    selection = selection_rng(seed)
    if resume is not None:
        selection.bit_generator.state = resume.selection_state
        for p, state in resume.rounding_states.items():
            rounding[p].bit_generator.state = state
    return selection, rounding


def _init(
    driver: Driver,
    exchange: InMemoryExchange | Metered,
    on_setup: SetupCallback | None,
    frames: int,
) -> None:
    """Init, reporting key-agreement progress as its frames reach the members."""
    if on_setup is not None:
        exchange.interceptor = _setup_counter(on_setup, frames)
    try:
        driver.init()
    finally:
        exchange.interceptor = None
    if on_setup is not None:
        on_setup("key agreement", frames, frames)


class _StateReporter:
    """Hands a :class:`SimulationState` to ``on_state`` after every round."""

    def __init__(
        self,
        on_state: Callable[[SimulationState], None] | None,
        driver: Driver,
        exchange: TrafficLog,
        selection: np.random.Generator,
        rounding: dict[int, np.random.Generator],
    ) -> None:
        self._on_state = on_state
        self._driver, self._exchange = driver, exchange
        self._selection, self._rounding = selection, rounding
        self._reported = self._refused = 0

    def __call__(self, outcome: RoundOutcome) -> None:
        if self._on_state is None:
            return
        rejections = self._driver.rejections
        records = self._exchange.records
        self._on_state(
            SimulationState(
                round=outcome.round,
                weights=self._driver.server.weights.copy(),
                selection_state=_generator_state(self._selection),
                rounding_states={p: _generator_state(r) for p, r in self._rounding.items()},
                outcome=outcome,
                traffic=tuple(records[self._reported :]),
                rejections=tuple(rejections[self._refused :]),
            )
        )
        self._reported, self._refused = len(records), len(rejections)


def _initial_weights(model: nn.Module, resume: SimulationState | None) -> np.ndarray:
    initial = model_to_vector(model)
    if resume is None:
        return initial
    if resume.weights.shape != initial.shape or resume.weights.dtype != np.float32:
        raise ConfigurationError(
            f"the resumed weights hold {resume.weights.size} values, the model "
            f"{initial.size}: resume with the model and config of the checkpointed run"
        )
    vector_to_model(resume.weights, model)
    return resume.weights.copy()


def _validate(
    outcome: RoundOutcome, plaintexts: dict[int, np.ndarray], bits: int = 0
) -> bool | None:
    """CrypTen-style validation: the secure aggregate must equal Σ x_i bit for bit (modulo
    ``2**bits`` when the session compresses)."""
    if outcome.status is not RoundStatus.APPLIED or outcome.aggregate is None:
        return None
    expected = ring_sum([plaintexts[p] for p in outcome.contributors])
    if bits:
        expected &= np.asarray((1 << bits) - 1, dtype=expected.dtype)
    if not np.array_equal(expected, outcome.aggregate):
        raise ValidationError(
            f"round {outcome.round}: the secure aggregate differs from the plaintext sum"
        )
    return True


def _metrics(
    outcome: RoundOutcome,
    driver: Driver,
    exchange: TrafficLog,
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
