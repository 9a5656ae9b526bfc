"""DSSGD: distributed selective SGD (Shokri & Shmatikov, "Privacy-Preserving Deep Learning",
CCS 2015).

A participant keeps its own copy of the model. In its turn it

1. **downloads** a fraction ``theta_d`` of the global parameters — here the ``round(θd·M)``
   whose global value changed most (largest magnitude) since this participant last received
   them — and overwrites its local copies of them;
2. trains locally and computes the change ``Δw`` of its parameters;
3. **uploads** the ``round(θu·M)`` entries of ``Δw`` with the largest magnitude, with their
   indices (a sparse vector), optionally clipped to ``[-γ, γ]`` and with Laplace noise
   ``Lap(0, b)`` added to every uploaded value. The noise has a fixed scale ``b``, is not
   calibrated to any ε and the selection is on the true magnitudes, so it gives **no**
   differential-privacy guarantee (the paper's sparse-vector-technique selection and its
   ε accounting are not implemented);
4. the server **adds** the sparse update onto the global parameters (summation).

E1 uses θu = 0.01 and 0.1 (the paper's selected gradients are 1–10 % of the gradient, as
Phong et al. summarize it) and θd = 1 (our choice: the paper's θd is not verified). The
paper's upload criteria are "largest values" (this one) or "random with threshold" τ, and it
always truncates uploads to ``[-γ, γ]`` (``gamma=None``, E1's setting, does not); its download
criterion is the frequency or recency of updates, not the change since the last download.
Sources and the checked/unchecked status of each parameter: docs/baselines.md, "Paper
parameters". What the server sees: every uploaded change in the clear (indices and values)
— the leakage SSDDL removes.

Wire format of a sparse vector (little-endian, explicit fields), 16-byte header, then entries::

    b"DSGD" | version u8 = 1 | kind u8 (1 upload, 2 download) | reserved u16 = 0
    | model_size u32 | count u32 | count x index u32 (strictly increasing, < model_size)
    | count x value f32 (finite)

so a message is ``16 + 8 * count`` bytes; :func:`decode_sparse` refuses anything else with
:class:`~ssddl.exceptions.MalformedMessage`.
"""

from __future__ import annotations

import enum
import math
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from ssddl.baselines._train import (
    RoundRecord,
    check_training_inputs,
    derive_seed,
    evaluate_or_none,
    fresh_copy,
)
from ssddl.exceptions import ConfigurationError, MalformedMessage, NonFiniteError
from ssddl.learning import (
    ArrayDataset,
    LocalTrainConfig,
    evaluate,
    model_to_vector,
    train_local,
    vector_to_model,
)

__all__ = [
    "HEADER_SIZE",
    "DSSGDConfig",
    "DSSGDResult",
    "SparseKind",
    "SparseVector",
    "apply_sparse",
    "decode_sparse",
    "encode_sparse",
    "merge_download",
    "select_download",
    "select_upload",
    "selection_count",
    "sparse_message_bytes",
    "top_indices",
    "train_dssgd",
]

_MAGIC = b"DSGD"
_VERSION = 1
_HEADER = struct.Struct("<4sBBHII")
HEADER_SIZE = _HEADER.size
_ENTRY_SIZE = 8
_U32_LIMIT = 1 << 32


class SparseKind(enum.IntEnum):
    """Which way a sparse vector travels."""

    UPLOAD = 1
    DOWNLOAD = 2


def _fraction(value: object, field: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise ConfigurationError(f"DSSGDConfig.{field} must be a number in (0, 1], got {value!r}")
    return float(value)


def _optional_positive(value: object, field: str, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"DSSGDConfig.{field} must be None or a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"DSSGDConfig.{field} must be None or {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DSSGDConfig:
    """``theta_u``: fraction of the parameters uploaded (largest changes); ``theta_d``:
    fraction downloaded (largest changes since the last download); ``gamma``: clip bound for
    uploaded values (None: no clipping); ``laplace_scale``: the scale ``b`` of the Laplace
    noise added to every uploaded value (None: no noise) — uncalibrated, no DP guarantee."""

    theta_u: float = 0.1
    theta_d: float = 1.0
    gamma: float | None = None
    laplace_scale: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta_u", _fraction(self.theta_u, "theta_u"))
        object.__setattr__(self, "theta_d", _fraction(self.theta_d, "theta_d"))
        object.__setattr__(self, "gamma", _optional_positive(self.gamma, "gamma", allow_zero=False))
        object.__setattr__(
            self,
            "laplace_scale",
            _optional_positive(self.laplace_scale, "laplace_scale", allow_zero=True),
        )


def selection_count(fraction: float, size: int) -> int:
    """How many of ``size`` parameters a fraction selects: ``round(fraction * size)``, at
    least 1 when ``size > 0`` and at most ``size``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ConfigurationError(f"size must be an int >= 0, got {size!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ConfigurationError("fraction must be a number in (0, 1]")
    if not (math.isfinite(fraction) and 0 < fraction <= 1):
        raise ConfigurationError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if size == 0:
        return 0
    return min(size, max(1, round(fraction * size)))


def _check_vector(values: object, name: str) -> np.ndarray:
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind != "f":
        raise ConfigurationError(f"{name} must be a 1-D float numpy array")
    if not np.isfinite(values).all():
        raise NonFiniteError(f"{name} holds NaN or infinite values; check the training step")
    return values


def top_indices(values: np.ndarray, count: int) -> np.ndarray:
    """The indices of the ``count`` entries of largest magnitude, sorted ascending (ties go
    to the lower index)."""
    values = _check_vector(values, "values")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= values.size:
        raise ConfigurationError(f"count must be an int in [0, {values.size}], got {count!r}")
    order = np.argsort(-np.abs(values), kind="stable")[:count]
    return np.sort(order).astype(np.uint32)


@dataclass(frozen=True, eq=False)
class SparseVector:
    """``values[j]`` at position ``indices[j]`` of a vector of ``model_size`` parameters;
    indices strictly increasing (uint32), values finite (float32). Stored read-only."""

    model_size: int
    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        _validate_sparse(self.model_size, self.indices, self.values, ConfigurationError)
        indices = np.array(self.indices, dtype=np.uint32)
        values = np.array(self.values, dtype=np.float32)
        indices.flags.writeable = False
        values.flags.writeable = False
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return int(self.indices.size)


def _validate_sparse(
    model_size: object, indices: object, values: object, error: type[Exception]
) -> None:
    if isinstance(model_size, bool) or not isinstance(model_size, int):
        raise error("model_size must be an int")
    if not 0 <= model_size < _U32_LIMIT:
        raise error(f"model_size must be in [0, 2**32), got {model_size}")
    if not isinstance(indices, np.ndarray) or indices.ndim != 1 or indices.dtype.kind not in "iu":
        raise error("indices must be a 1-D integer numpy array")
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind != "f":
        raise error("values must be a 1-D float numpy array")
    if indices.size != values.size:
        raise error(f"{indices.size} indices but {values.size} values; they must pair up")
    if indices.size > model_size:
        raise error(f"{indices.size} entries for a vector of {model_size} parameters")
    if indices.size:
        wide = indices.astype(np.int64)
        if int(wide[0]) < 0 or int(wide[-1]) >= model_size or np.any(np.diff(wide) <= 0):
            raise error(f"indices must be strictly increasing and in [0, {model_size})")
        if not np.isfinite(values.astype(np.float32)).all():
            raise error("values must be finite float32 numbers")


def sparse_message_bytes(count: int) -> int:
    """The wire size of a sparse vector with ``count`` entries: ``16 + 8 * count``."""
    return HEADER_SIZE + _ENTRY_SIZE * count


def encode_sparse(vector: SparseVector, kind: SparseKind) -> bytes:
    """The wire form of ``vector`` (see the module docstring)."""
    if not isinstance(vector, SparseVector):
        raise ConfigurationError("vector must be a SparseVector")
    kind = SparseKind(kind)
    header = _HEADER.pack(_MAGIC, _VERSION, int(kind), 0, vector.model_size, len(vector))
    return b"".join(
        (header, vector.indices.astype("<u4").tobytes(), vector.values.astype("<f4").tobytes())
    )


def decode_sparse(data: bytes, kind: SparseKind, *, model_size: int | None = None) -> SparseVector:
    """Parse a sparse vector of ``kind``; with ``model_size`` given, it must match. Anything
    off — magic, version, kind, reserved bits, length, order or range of the indices, a
    non-finite value — raises :class:`MalformedMessage`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage("a sparse vector must be bytes")
    raw = memoryview(data).cast("B")
    if len(raw) < HEADER_SIZE:
        raise MalformedMessage(
            f"sparse vector is {len(raw)} bytes, shorter than its {HEADER_SIZE}-byte header"
        )
    magic, version, got_kind, reserved, size, count = _HEADER.unpack(raw[:HEADER_SIZE])
    if magic != _MAGIC:
        raise MalformedMessage("not a DSSGD sparse vector (magic)")
    if version != _VERSION:
        raise MalformedMessage(f"unsupported sparse vector version {version}; expected 1")
    if got_kind != int(SparseKind(kind)):
        raise MalformedMessage(f"sparse vector of kind {got_kind}, expected {int(kind)}")
    if reserved:
        raise MalformedMessage("sparse vector reserved bits must be zero")
    if model_size is not None and size != model_size:
        raise MalformedMessage(f"sparse vector for {size} parameters, expected {model_size}")
    if len(raw) != sparse_message_bytes(count):
        raise MalformedMessage(
            f"sparse vector of {count} entries must be {sparse_message_bytes(count)} bytes, "
            f"got {len(raw)}"
        )
    end = HEADER_SIZE + 4 * count
    indices = np.frombuffer(raw[HEADER_SIZE:end], dtype="<u4").astype(np.uint32)
    values = np.frombuffer(raw[end:], dtype="<f4").astype(np.float32)
    _validate_sparse(size, indices, values, MalformedMessage)
    return SparseVector(size, indices, values)


def select_upload(
    delta: np.ndarray, config: DSSGDConfig, *, rng: np.random.Generator | None = None
) -> SparseVector:
    """The sparse upload of a parameter change: the ``round(θu·M)`` entries of largest
    magnitude, clipped to ``[-γ, γ]`` and noised with ``Lap(0, b)`` if configured (``rng``,
    a numpy Generator, is then required: this is DP noise, not key material)."""
    if not isinstance(config, DSSGDConfig):
        raise ConfigurationError("config must be a DSSGDConfig")
    delta = _check_vector(delta, "delta")
    noisy = config.laplace_scale is not None and config.laplace_scale > 0
    if noisy and not isinstance(rng, np.random.Generator):
        raise ConfigurationError(
            "rng must be a numpy.random.Generator when DSSGDConfig.laplace_scale is set"
        )
    indices = top_indices(delta, selection_count(config.theta_u, int(delta.size)))
    values = delta[indices].astype(np.float64)
    if config.gamma is not None:
        np.clip(values, -config.gamma, config.gamma, out=values)
    if noisy and rng is not None and config.laplace_scale is not None:
        values += rng.laplace(0.0, config.laplace_scale, size=values.size)
    return SparseVector(int(delta.size), indices, values.astype(np.float32))


def apply_sparse(weights: np.ndarray, update: SparseVector) -> np.ndarray:
    """The server's step: a copy of ``weights`` (float32) with ``update`` added in."""
    weights = _check_vector(weights, "weights")
    if not isinstance(update, SparseVector) or update.model_size != weights.size:
        raise ConfigurationError(f"update must be a SparseVector of model_size {weights.size}")
    out = np.array(weights, dtype=np.float32, copy=True)
    out[update.indices] += update.values
    return out


def select_download(
    global_weights: np.ndarray, last_sent: np.ndarray, theta_d: float
) -> SparseVector:
    """What the server sends a participant: the global values at the ``round(θd·M)`` indices
    whose value changed most since it last sent them (``last_sent``: that participant's view
    as the server last updated it)."""
    global_weights = _check_vector(global_weights, "global_weights")
    last_sent = _check_vector(last_sent, "last_sent")
    if last_sent.shape != global_weights.shape:
        raise ConfigurationError("last_sent must have the shape of global_weights")
    count = selection_count(theta_d, int(global_weights.size))
    change = global_weights.astype(np.float64) - last_sent.astype(np.float64)
    indices = top_indices(change, count)
    return SparseVector(int(global_weights.size), indices, global_weights[indices])


def merge_download(local: np.ndarray, download: SparseVector) -> np.ndarray:
    """A participant's step: a copy of its ``local`` parameters with the downloaded global
    values written over theirs."""
    local = _check_vector(local, "local")
    if not isinstance(download, SparseVector) or download.model_size != local.size:
        raise ConfigurationError(f"download must be a SparseVector of model_size {local.size}")
    out = np.array(local, dtype=np.float32, copy=True)
    out[download.indices] = download.values
    return out


@dataclass(frozen=True)
class DSSGDResult:
    """The server's final global model, each participant's final local parameters, and one
    record per round. ``history[r].accuracy`` is the global model's; ``local_accuracy[r]``
    the mean of the participants' local models' (what the paper reports)."""

    model: nn.Module
    local_vectors: tuple[np.ndarray, ...]
    history: tuple[RoundRecord, ...]
    local_accuracy: tuple[float | None, ...]


def train_dssgd(
    model: nn.Module,
    datasets: Sequence[ArrayDataset],
    train_config: LocalTrainConfig,
    config: DSSGDConfig,
    *,
    rounds: int,
    seed: int,
    test: ArrayDataset | None = None,
) -> DSSGDResult:
    """Run DSSGD round robin (participants take turns; round robin is one of the paper's
    three exchange orders, and which one its experiments used is not verified): each
    round every participant downloads, trains once with ``train_config``, uploads. All start
    from ``model``'s weights; every message goes through its byte encoding, and the bytes
    are counted. Laplace noise comes from ``numpy.random.default_rng`` seeded from ``seed``."""
    items = check_training_inputs(model, datasets, train_config, seed, rounds=rounds)
    if not isinstance(config, DSSGDConfig):
        raise ConfigurationError(f"config must be a DSSGDConfig, got {type(config).__name__}")
    work = fresh_copy(model)
    initial = model_to_vector(work)
    size = int(initial.size)
    global_weights = initial.copy()
    local = [initial.copy() for _ in items]
    last_sent = [initial.copy() for _ in items]
    noise = np.random.default_rng(derive_seed(seed, 0, 0, 1))
    history = []
    local_accuracy: list[float | None] = []
    for round_number in range(1, rounds + 1):
        started = time.perf_counter()
        sent = received = 0
        for index, data in enumerate(items):
            down_bytes = encode_sparse(
                select_download(global_weights, last_sent[index], config.theta_d),
                SparseKind.DOWNLOAD,
            )
            down = decode_sparse(down_bytes, SparseKind.DOWNLOAD, model_size=size)
            last_sent[index][down.indices] = down.values
            before = merge_download(local[index], down)
            vector_to_model(before, work)
            train_local(work, data, train_config, seed=derive_seed(seed, round_number, index))
            local[index] = model_to_vector(work)
            delta = local[index].astype(np.float64) - before.astype(np.float64)
            up_bytes = encode_sparse(select_upload(delta, config, rng=noise), SparseKind.UPLOAD)
            up = decode_sparse(up_bytes, SparseKind.UPLOAD, model_size=size)
            global_weights = apply_sparse(global_weights, up)
            sent += len(up_bytes)
            received += len(down_bytes)
        seconds = time.perf_counter() - started
        vector_to_model(global_weights, work)
        result = evaluate_or_none(work, test)
        if test is None:
            local_accuracy.append(None)
        else:
            scores = []
            for vector in local:
                vector_to_model(vector, work)
                scores.append(evaluate(work, test).accuracy)
            local_accuracy.append(float(np.mean(scores)))
        history.append(
            RoundRecord(
                round=round_number,
                accuracy=None if result is None else result.accuracy,
                loss=None if result is None else result.loss,
                upload_bytes=sent / len(items),
                download_bytes=received / len(items),
                seconds=seconds,
            )
        )
    vector_to_model(global_weights, work)
    return DSSGDResult(
        model=work,
        local_vectors=tuple(local),
        history=tuple(history),
        local_accuracy=tuple(local_accuracy),
    )
