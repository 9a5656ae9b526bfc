"""Baselines that do not fit the protocol's scheme slot, as runners with the simulator's output.

* ``centralized`` and ``standalone`` have no protocol at all (no messages);
* ``phong-paillier`` and ``phong-bfv`` (Phong et al. 2018): the server holds the *encrypted*
  global model and participants download ciphertexts, not the float32 weights that the
  protocol's ``RoundStart`` carries; by default they take turns as in the paper
  (``he_schedule="async"``), or run synchronous rounds (``"sync"``, FedAvg on ciphertexts);
* ``dssgd-rr``: DSSGD as in the paper (round robin, each member keeps a local model and
  downloads only a θd fraction), which the protocol's stateless-model participant cannot do.

Each runner returns rows with exactly the columns of the simulator's ``metrics.csv``
(:data:`ROW_FIELDS`, a test checks they match ``RoundMetrics``), a traffic log of
``(round, kind, sender, recipient, bytes)`` like ``traffic.csv`` (server = 0) with the real
sizes of the serialized messages (ciphertexts for Phong), and the final weights, so a run
directory and a comparison treat every mode alike. Round ``r`` of every runner trains
``train.epochs`` (or ``train.steps``) locally, like a round of ``ssddl simulate``.

Phong and real ciphertexts: with ``he_real_rounds = k`` only the first ``k`` rounds run on
real ciphertexts; the later ones run the same fixed-point arithmetic in the clear (encode,
ring sum, decode — bit-identical to the decrypted sum, as the tests check), with the bytes
of the real ciphertexts of that size and the encryption/decryption seconds measured in the
real rounds. Each such row says ``encrypted = False``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ssddl.baselines._train import check_training_inputs, derive_seed, fresh_copy, pool
from ssddl.baselines.dssgd import DSSGDConfig, train_dssgd
from ssddl.baselines.he import HEBackend
from ssddl.baselines.phong import (
    decrypt_weights,
    encrypt_update,
    encrypt_weights,
    phong_max_summands,
    server_add,
)
from ssddl.baselines.schemes import RUNNER_MODES
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import FixedPoint, decode, encode, ring_sum
from ssddl.learning import (
    ArrayDataset,
    LocalTrainConfig,
    evaluate,
    model_to_vector,
    train_local,
    vector_to_model,
)
from ssddl.validators import check_int

__all__ = [
    "ROW_FIELDS",
    "RUNNERS",
    "BaselineRun",
    "RowCallback",
    "Runner",
    "RunnerConfig",
    "make_he_backend",
    "round_row",
    "run_baseline",
]

#: the modes run here (not protocol schemes)
RUNNERS = RUNNER_MODES

#: Phong's schedules: the paper's asynchronous turns, or synchronous rounds (FedAvg)
HE_SCHEDULES = ("async", "sync")

#: the columns of ``metrics.csv`` (the simulator's RoundMetrics fields, in order)
ROW_FIELDS = (
    "round",
    "status",
    "group_size",
    "contributors",
    "accuracy",
    "loss",
    "train_loss",
    "upload_bytes_mean",
    "download_bytes_mean",
    "upload_bytes_max",
    "total_bytes",
    "train_seconds_mean",
    "share_seconds_mean",
    "server_seconds",
    "round_seconds",
    "validated",
)

#: traffic record: round, message kind, sender (0 = server), recipient, bytes
Traffic = tuple[int, str, int, int, int]


@dataclass(frozen=True)
class RunnerConfig:
    """How a runner trains: ``rounds`` rounds of ``train`` local training, seeds from
    ``seed``. Phong: the fixed-point code (``ring_bits``, ``frac_bits``, ``clip``; the same
    rules as SSDDL's), the back end's parameters and ``he_real_rounds`` (rounds on real
    ciphertexts; None: all; 0: none — the fixed-point arithmetic in the clear only, bytes and
    encryption seconds then unmeasured, NaN). ``dssgd`` configures ``dssgd-rr``."""

    rounds: int
    train: LocalTrainConfig = field(default_factory=LocalTrainConfig)
    seed: int = 0
    ring_bits: int = 32
    frac_bits: int = 16
    clip: float = 4.0
    he_key_bits: int = 2048
    he_poly_degree: int = 4096
    he_real_rounds: int | None = None
    #: in a real round, members that encrypt their own update (None: all); the others' sum
    #: goes in as one encryption, so E(w) stays exact
    he_real_participants: int | None = None
    dssgd: DSSGDConfig = field(default_factory=DSSGDConfig)
    insecure_test_key: bool = False  #: Paillier keys below 2048 bits (tests only)
    #: Phong's schedule: "async" — the paper's (members take turns on the encrypted model,
    #: each update added at once); "sync" — FedAvg on ciphertexts (every member from the same
    #: E(w), uploads E(Δw/n))
    he_schedule: str = "async"

    def __post_init__(self) -> None:
        check_int(self.rounds, "rounds", low=1)
        check_int(self.seed, "seed", low=0)
        if not isinstance(self.train, LocalTrainConfig):
            raise ConfigurationError("train must be a LocalTrainConfig")
        if self.he_real_rounds is not None:
            # 0: no real round (nothing measured: bytes NaN); the CLI asks for at least 1
            check_int(self.he_real_rounds, "he_real_rounds", low=0)
        if self.he_real_participants is not None:
            check_int(self.he_real_participants, "he_real_participants", low=1)
        if not isinstance(self.dssgd, DSSGDConfig):
            raise ConfigurationError("dssgd must be a DSSGDConfig")
        if self.he_schedule not in HE_SCHEDULES:
            raise ConfigurationError(
                f"he_schedule={self.he_schedule!r} is not one of {', '.join(HE_SCHEDULES)}"
            )
        self.codec()  # checks ring_bits, frac_bits, clip

    def codec(self) -> FixedPoint:
        return FixedPoint(ring_bits=self.ring_bits, frac_bits=self.frac_bits, clip=self.clip)


@dataclass
class BaselineRun:
    """What a runner produced: rows as in ``metrics.csv``, the traffic log, the final global
    weights (standalone: participant 1's), and figures particular to the mode."""

    mode: str
    rows: list[dict[str, Any]]
    traffic: list[Traffic]
    weights: np.ndarray
    model_size: int
    participants: int
    extra: dict[str, Any] = field(default_factory=dict)


RowCallback = Callable[[dict[str, Any]], None]


class Runner(Protocol):
    """A baseline that runs outside the protocol: trains from ``model`` (never in place) with
    one participant per dataset for ``config.rounds`` rounds, hands each row (made with
    :func:`round_row`) to ``on_round`` as it finishes, and returns every row, its traffic
    and the final weights (``docs/writing-a-baseline.md``)."""

    def __call__(
        self,
        model: nn.Module,
        datasets: list[ArrayDataset],
        config: RunnerConfig,
        *,
        test: ArrayDataset | None,
        on_round: RowCallback | None,
    ) -> BaselineRun: ...


def round_row(round_number: int, participants: int, **values: Any) -> dict[str, Any]:
    """One row of ``metrics.csv``: round ``round_number`` applied with every one of the
    ``participants``; ``values`` sets the other columns (unset: NaN metrics, no bytes)."""
    row: dict[str, Any] = {
        "round": round_number,
        "status": "applied",
        "group_size": participants,
        "contributors": participants,
        "accuracy": float("nan"),
        "loss": float("nan"),
        "train_loss": float("nan"),
        "upload_bytes_mean": 0.0,
        "download_bytes_mean": 0.0,
        "upload_bytes_max": 0,
        "total_bytes": 0,
        "train_seconds_mean": 0.0,
        "share_seconds_mean": 0.0,
        "server_seconds": 0.0,
        "round_seconds": 0.0,
        "validated": None,
    }
    unknown = set(values) - set(row) - {"encrypted", "accuracy_std", "decrypt_seconds_mean"}
    if unknown:
        raise ConfigurationError(f"unknown row fields {sorted(unknown)}")
    row.update(values)
    return row


def _evaluate(model: nn.Module, test: ArrayDataset | None) -> tuple[float, float]:
    if test is None:
        return float("nan"), float("nan")
    result = evaluate(model, test)
    return result.accuracy, result.loss


def _emit(rows: list[dict[str, Any]], row: dict[str, Any], on_round: RowCallback | None) -> None:
    rows.append(row)
    if on_round is not None:
        on_round(row)


def make_he_backend(mode: str, config: RunnerConfig, participants: int) -> HEBackend:
    """The back end of ``phong-paillier`` / ``phong-bfv`` sized for ``participants`` uploads
    per round over ``config.rounds`` rounds."""
    from ssddl.baselines.he import BFVBackend, PaillierBackend

    summands = phong_max_summands(participants, config.rounds)
    if mode == "phong-paillier":
        return PaillierBackend(
            config.codec(),
            max_summands=summands,
            key_bits=config.he_key_bits,
            insecure_test_key=config.insecure_test_key,
        )
    if mode == "phong-bfv":
        return BFVBackend(
            config.codec(), max_summands=summands, poly_modulus_degree=config.he_poly_degree
        )
    raise ConfigurationError(f"mode={mode!r} is not a Phong mode (phong-paillier, phong-bfv)")


def run_baseline(
    mode: str | Runner,
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    config: RunnerConfig,
    *,
    test: ArrayDataset | None = None,
    on_round: RowCallback | None = None,
) -> BaselineRun:
    """Run the baseline ``mode`` (one of :data:`RUNNERS`, or a :class:`Runner`) from the
    initial ``model`` (left untouched) with one participant per dataset."""
    if isinstance(mode, str) and mode not in RUNNERS:
        raise ConfigurationError(f"mode={mode!r} is not one of {', '.join(RUNNERS)}")
    if not isinstance(mode, str) and not callable(mode):
        raise ConfigurationError("mode must be a runner name or a Runner function")
    if not isinstance(config, RunnerConfig):
        raise ConfigurationError("config must be a RunnerConfig")
    items = check_training_inputs(model, datasets, config.train, config.seed, rounds=config.rounds)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the simulator: small models train fastest on one thread
    try:
        if isinstance(mode, str):
            return _dispatch(mode, model, items, config, test, on_round)
        return mode(model, items, config, test=test, on_round=on_round)
    finally:
        torch.set_num_threads(previous)


def _dispatch(
    mode: str,
    model: nn.Module,
    items: list[ArrayDataset],
    config: RunnerConfig,
    test: ArrayDataset | None,
    on_round: RowCallback | None,
) -> BaselineRun:
    if mode == "centralized":
        return _centralized(model, items, config, test, on_round)
    if mode == "standalone":
        if test is None:
            raise ConfigurationError("standalone reports test accuracies: give test data")
        return _standalone(model, items, config, test, on_round)
    if mode == "dssgd-rr":
        return _dssgd_rr(model, items, config, test, on_round)
    if config.he_schedule == "async":
        return _phong_async(mode, model, items, config, test, on_round)
    return _phong(mode, model, items, config, test, on_round)


def _train(work: nn.Module, data: ArrayDataset, config: RunnerConfig, r: int, who: int) -> float:
    result = train_local(work, data, config.train, seed=derive_seed(config.seed, r, who))
    return float(result.mean_loss)


def _centralized(
    model: nn.Module,
    items: list[ArrayDataset],
    config: RunnerConfig,
    test: ArrayDataset | None,
    on_round: RowCallback | None,
) -> BaselineRun:
    data = pool(items)
    work = fresh_copy(model)
    rows: list[dict[str, Any]] = []
    for r in range(config.rounds):
        started = time.perf_counter()
        loss = _train(work, data, config, r, 0)
        seconds = time.perf_counter() - started
        acc, test_loss = _evaluate(work, test)
        row = round_row(
            r, 1, accuracy=acc, loss=test_loss, train_loss=loss,
            train_seconds_mean=seconds, round_seconds=seconds,
        )  # fmt: skip
        _emit(rows, row, on_round)
    weights = model_to_vector(work)
    return BaselineRun("centralized", rows, [], weights, int(weights.size), len(items))


def _standalone(
    model: nn.Module,
    items: list[ArrayDataset],
    config: RunnerConfig,
    test: ArrayDataset,
    on_round: RowCallback | None,
) -> BaselineRun:
    models = [fresh_copy(model) for _ in items]
    rows: list[dict[str, Any]] = []
    last: list[float] = []
    for r in range(config.rounds):
        started = time.perf_counter()
        pairs = enumerate(zip(models, items, strict=True))
        losses = [_train(m, d, config, r, i + 1) for i, (m, d) in pairs]
        seconds = time.perf_counter() - started
        results = [evaluate(m, test) for m in models]
        last = [e.accuracy for e in results]
        row = round_row(
            r, len(items),
            accuracy=statistics.fmean(last),
            loss=statistics.fmean(e.loss for e in results),
            train_loss=statistics.fmean(losses),
            train_seconds_mean=seconds / len(items),
            round_seconds=seconds,
        )  # fmt: skip
        _emit(rows, row, on_round)
    weights = model_to_vector(models[0])
    extra = {
        "accuracies": last,
        "accuracy_std": statistics.pstdev(last) if len(last) > 1 else 0.0,
    }
    return BaselineRun("standalone", rows, [], weights, int(weights.size), len(items), extra)


def _dssgd_rr(
    model: nn.Module,
    items: list[ArrayDataset],
    config: RunnerConfig,
    test: ArrayDataset | None,
    on_round: RowCallback | None,
) -> BaselineRun:
    from ssddl.baselines.dssgd import selection_count, sparse_message_bytes

    n = len(items)
    rows: list[dict[str, Any]] = []
    traffic: list[Traffic] = []
    size = int(model_to_vector(model).size)
    up = sparse_message_bytes(selection_count(config.dssgd.theta_u, size))
    down = sparse_message_bytes(selection_count(config.dssgd.theta_d, size))
    # the paper's loop keeps local models and download state across rounds: run it whole
    result = train_dssgd(
        model, items, config.train, config.dssgd, rounds=config.rounds, seed=config.seed, test=test
    )
    weights = model_to_vector(result.model)
    local_accuracy = list(result.local_accuracy)
    for r, record in enumerate(result.history):
        traffic += [(r, "dssgd_download", 0, p, down) for p in range(1, n + 1)]
        traffic += [(r, "dssgd_upload", p, 0, up) for p in range(1, n + 1)]
        row = round_row(
            r, n,
            accuracy=float("nan") if record.accuracy is None else record.accuracy,
            loss=float("nan") if record.loss is None else record.loss,
            upload_bytes_mean=float(up), download_bytes_mean=float(down),
            upload_bytes_max=up, total_bytes=n * (up + down),
            train_seconds_mean=record.seconds / n, round_seconds=record.seconds,
        )  # fmt: skip
        _emit(rows, row, on_round)
    extra = {"local_accuracy": local_accuracy, "dssgd": dataclasses.asdict(config.dssgd)}
    return BaselineRun("dssgd-rr", rows, traffic, weights, size, n, extra)


def _phong(
    mode: str,
    model: nn.Module,
    items: list[ArrayDataset],
    config: RunnerConfig,
    test: ArrayDataset | None,
    on_round: RowCallback | None,
) -> BaselineRun:
    """Phong et al. run synchronously (``he_schedule="sync"``, not the paper's schedule):
    E(w) on the server; every round each member downloads it, decrypts, trains and uploads
    E(Δw / n); the server adds the uploads onto E(w) — FedAvg on ciphertexts."""
    n = len(items)
    backend = make_he_backend(mode, config, n)
    codec = backend.codec
    keygen_started = time.perf_counter()
    keys = backend.keygen()
    keygen_seconds = time.perf_counter() - keygen_started
    public_wire = backend.public_to_bytes(keys.public)
    server_public = backend.public_from_bytes(public_wire)
    work = fresh_copy(model)
    initial = model_to_vector(work)
    real_rounds = config.rounds if config.he_real_rounds is None else config.he_real_rounds
    sampled = n if config.he_real_participants is None else min(n, config.he_real_participants)
    words = encode(initial.astype(np.float64), codec)  # the clear twin of E(w)
    encrypted_w = encrypt_weights(backend, keys.public, initial) if real_rounds > 0 else None
    rows: list[dict[str, Any]] = []
    traffic: list[Traffic] = [(-1, "he_public_key", 1, 0, len(public_wire))]
    measured: dict[str, list[float]] = {"enc": [], "dec": [], "add": []}
    sizes: dict[str, int] = {}
    current = decode(words, codec).astype(np.float32)
    for r in range(config.rounds):
        real = r < real_rounds
        started = time.perf_counter()
        if real and encrypted_w is not None:
            download = backend.ciphertext_to_bytes(encrypted_w)
            sizes["down"] = len(download)
            mark = time.perf_counter()
            # every member decrypts the same E(w) with the same key: decrypted once, and
            # each member is charged the measured time
            current = decrypt_weights(
                backend, keys.secret, backend.ciphertext_from_bytes(keys.public, download)
            )
            dec = time.perf_counter() - mark
            measured["dec"].append(dec)
        else:
            current = decode(words, codec).astype(np.float32)
            dec = statistics.fmean(measured["dec"]) if measured["dec"] else 0.0
        train_s, enc_s, losses = [], [], []
        uploads: list[bytes] = []
        clear_updates: list[np.ndarray] = []
        for index, data in enumerate(items):
            mark = time.perf_counter()
            vector_to_model(current, work)
            losses.append(_train(work, data, config, r, index + 1))
            delta = model_to_vector(work).astype(np.float64) - current.astype(np.float64)
            train_s.append(time.perf_counter() - mark)
            mark = time.perf_counter()
            if real and index < sampled:
                upload = encrypt_update(backend, keys.public, delta, scale=1.0 / n)
                uploads.append(backend.ciphertext_to_bytes(upload))
                enc_s.append(time.perf_counter() - mark)
            else:
                clear_updates.append(encode(delta * float(1.0 / n), codec))  # as encrypt_update
        if real and clear_updates:  # the members outside the sample, as one encryption
            rest = backend.encrypt(keys.public, ring_sum(clear_updates))
            uploads_rest = [backend.ciphertext_to_bytes(rest)]
        else:
            uploads_rest = []
        mark = time.perf_counter()
        if real and encrypted_w is not None:
            for blob in uploads + uploads_rest:
                encrypted_w = server_add(backend, server_public, encrypted_w, blob)
            server_s = (time.perf_counter() - mark) * n / (len(uploads) + len(uploads_rest))
            measured["enc"] += enc_s
            measured["add"].append(server_s)
            sizes["up"] = statistics.mode(len(u) for u in uploads)
        else:
            words = ring_sum([words, *clear_updates])
            server_s = statistics.fmean(measured["add"]) if measured["add"] else 0.0
            enc_s = [statistics.fmean(measured["enc"])] * n if measured["enc"] else [0.0] * n
        if real:
            enc_s += [statistics.fmean(enc_s)] * (n - len(enc_s))
        real_up = [len(u) for u in uploads] if real else []
        up_bytes = real_up + [sizes.get("up", 0)] * (n - len(real_up))
        down_bytes = sizes.get("down", 0)
        seconds = time.perf_counter() - started
        if real and encrypted_w is not None:  # the clear twin follows E(w) (not timed)
            words = backend.decrypt(keys.secret, encrypted_w)
        traffic += [(r, "he_weights", 0, p, down_bytes) for p in range(1, n + 1)]
        traffic += [(r, "he_update", p, 0, b) for p, b in enumerate(up_bytes, start=1)]
        vector_to_model(decode(words, codec).astype(np.float32), work)
        acc, test_loss = _evaluate(work, test)
        unmeasured = float("nan") if not sizes else None  # no real round: no ciphertext sizes
        row = round_row(
            r, n, accuracy=acc, loss=test_loss, train_loss=statistics.fmean(losses),
            upload_bytes_mean=unmeasured or float(statistics.fmean(up_bytes)),
            download_bytes_mean=unmeasured or float(down_bytes), upload_bytes_max=max(up_bytes),
            total_bytes=sum(up_bytes) + n * down_bytes,
            train_seconds_mean=statistics.fmean(train_s),
            share_seconds_mean=statistics.fmean(enc_s),
            decrypt_seconds_mean=dec, server_seconds=server_s, round_seconds=seconds,
            encrypted=real,
        )  # fmt: skip
        _emit(rows, row, on_round)
    weights = decode(words, codec).astype(np.float32)
    extra = {
        "backend": repr(backend),
        "real_rounds": min(real_rounds, config.rounds),
        "real_participants": sampled,
        "keygen_seconds": keygen_seconds,
        "public_key_bytes": len(public_wire),
        "max_summands": backend.max_summands,
        "slots_per_ciphertext": backend.slots,
    }
    return BaselineRun(mode, rows, traffic, weights, int(weights.size), n, extra)


# -- Phong as in the paper: members take turns on the encrypted model -------------------------


@dataclass
class _Encrypted:
    """The server's E(w) and its clear twin (the same fixed-point words, in the clear), the
    updates not yet in E(w), and what one Phong run shares between its turns."""

    backend: HEBackend
    keys: Any
    server_public: Any
    words: np.ndarray
    encrypted: Any
    pending: list[np.ndarray] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)

    def flush(self) -> None:
        """Add the updates made in the clear onto E(w) as one encryption (E(w) stays exact)."""
        if self.pending and self.encrypted is not None:
            rest = self.backend.encrypt(self.keys.public, ring_sum(self.pending))
            blob = self.backend.ciphertext_to_bytes(rest)
            self.encrypted = server_add(self.backend, self.server_public, self.encrypted, blob)
        self.pending = []


@dataclass(frozen=True)
class _Turn:
    real: bool
    loss: float
    train: float
    encrypt: float
    decrypt: float
    server: float
    up: int
    down: int


def _async_turn(
    state: _Encrypted, work: nn.Module, data: ArrayDataset, config: RunnerConfig,
    r: int, who: int, real: bool,
) -> _Turn:  # fmt: skip
    """One member's turn: download the current E(w) and decrypt it (or read the clear twin),
    train, upload E(Δw), which the server adds at once (or keep Δw for the flush)."""
    backend, codec = state.backend, state.backend.codec
    mark = time.perf_counter()
    if real:
        blob = backend.ciphertext_to_bytes(state.encrypted)
        current = decrypt_weights(
            backend, state.keys.secret, backend.ciphertext_from_bytes(state.keys.public, blob)
        )
        state.sizes["down"] = len(blob)
    else:
        current = decode(state.words, codec).astype(np.float32)
    decrypt = time.perf_counter() - mark
    mark = time.perf_counter()
    vector_to_model(current, work)
    loss = _train(work, data, config, r, who)
    delta = model_to_vector(work).astype(np.float64) - current.astype(np.float64)
    train = time.perf_counter() - mark
    words = encode(delta, codec)  # as encrypt_update encodes it
    state.words = ring_sum([state.words, words])
    if not real:
        state.pending.append(words)
        up, down = state.sizes.get("up", 0), state.sizes.get("down", 0)
        return _Turn(False, loss, train, 0.0, 0.0, 0.0, up, down)
    mark = time.perf_counter()
    upload = backend.ciphertext_to_bytes(encrypt_update(backend, state.keys.public, delta))
    encrypt = time.perf_counter() - mark
    mark = time.perf_counter()
    state.encrypted = server_add(backend, state.server_public, state.encrypted, upload)
    state.sizes["up"] = len(upload)
    server = time.perf_counter() - mark
    return _Turn(True, loss, train, encrypt, decrypt, server, len(upload), state.sizes["down"])


def _async_row(
    r: int, turns: list[_Turn], real: bool, seconds: float, scores: tuple[float, float],
    measured: dict[str, list[float]],
) -> dict[str, Any]:  # fmt: skip
    """The row of one Phong round: seconds measured in real turns (the clear ones are
    charged the mean of the real ones), bytes of the real ciphertexts (NaN if none ran)."""
    n = len(turns)
    real_turns = [t for t in turns if t.real]
    if real:
        measured["enc"] += [t.encrypt for t in real_turns]
        measured["dec"] += [t.decrypt for t in real_turns]
        measured["add"] += [t.server for t in real_turns]

    def mean(key: str) -> float:
        return statistics.fmean(measured[key]) if measured[key] else 0.0

    up = [t.up for t in turns]
    unmeasured = not any(up)
    return round_row(
        r, n, accuracy=scores[0], loss=scores[1],
        train_loss=statistics.fmean(t.loss for t in turns),
        upload_bytes_mean=float("nan") if unmeasured else float(statistics.fmean(up)),
        download_bytes_mean=float("nan") if unmeasured else float(turns[-1].down),
        upload_bytes_max=max(up), total_bytes=sum(up) + sum(t.down for t in turns),
        train_seconds_mean=statistics.fmean(t.train for t in turns),
        share_seconds_mean=mean("enc"), decrypt_seconds_mean=mean("dec"),
        server_seconds=mean("add") * n, round_seconds=seconds, encrypted=real,
    )  # fmt: skip


def _phong_async(
    mode: str,
    model: nn.Module,
    items: list[ArrayDataset],
    config: RunnerConfig,
    test: ArrayDataset | None,
    on_round: RowCallback | None,
) -> BaselineRun:
    """Phong et al. as in the paper: the server holds E(w); the members take turns (the
    paper's asynchronous SGD, one member at a time): each downloads the current E(w),
    decrypts it with the shared secret key, trains, and uploads E(Δw), which the server adds
    at once, so the next member starts from it. In a real round the first
    ``he_real_participants`` members work on real ciphertexts; the others' updates go in
    as one encryption at the end of the round."""
    n = len(items)
    backend = make_he_backend(mode, config, n)
    keygen_started = time.perf_counter()
    keys = backend.keygen()
    keygen_seconds = time.perf_counter() - keygen_started
    public_wire = backend.public_to_bytes(keys.public)
    work = fresh_copy(model)
    initial = model_to_vector(work)
    real_rounds = config.rounds if config.he_real_rounds is None else config.he_real_rounds
    sampled = n if config.he_real_participants is None else min(n, config.he_real_participants)
    state = _Encrypted(
        backend, keys, backend.public_from_bytes(public_wire),
        encode(initial.astype(np.float64), backend.codec),
        encrypt_weights(backend, keys.public, initial) if real_rounds > 0 else None,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    traffic: list[Traffic] = [(-1, "he_public_key", 1, 0, len(public_wire))]
    measured: dict[str, list[float]] = {"enc": [], "dec": [], "add": []}
    for r in range(config.rounds):
        real = r < real_rounds
        started = time.perf_counter()
        turns = [
            _async_turn(state, work, data, config, r, i + 1, real and i < sampled)
            for i, data in enumerate(items)
        ]
        if real:
            state.flush()
        seconds = time.perf_counter() - started
        traffic += [(r, "he_weights", 0, p, t.down) for p, t in enumerate(turns, start=1)]
        traffic += [(r, "he_update", p, 0, t.up) for p, t in enumerate(turns, start=1)]
        vector_to_model(decode(state.words, backend.codec).astype(np.float32), work)
        row = _async_row(r, turns, real, seconds, _evaluate(work, test), measured)
        _emit(rows, row, on_round)
    weights = decode(state.words, backend.codec).astype(np.float32)
    extra = {
        "backend": repr(backend),
        "schedule": "async",
        "real_rounds": min(real_rounds, config.rounds),
        "real_participants": sampled,
        "keygen_seconds": keygen_seconds,
        "public_key_bytes": len(public_wire),
        "max_summands": backend.max_summands,
        "slots_per_ciphertext": backend.slots,
    }
    return BaselineRun(mode, rows, traffic, weights, int(weights.size), n, extra)
