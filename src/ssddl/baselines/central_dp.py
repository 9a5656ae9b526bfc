"""DP-FedAvg with central Gaussian noise (McMahan, Ramage, Talwar, Zhang, ICLR 2018), the
reference that distributed DP is compared against: every member clips its change to L2 norm
``l2_clip``; a *trusted* server averages the clipped changes in the clear and adds Gaussian
noise of standard deviation ``noise_multiplier * l2_clip / n`` to each coordinate of the mean
(``noise_multiplier * l2_clip`` on the sum). Every member takes part in every round (no
sampling), so one round is the Gaussian mechanism with sensitivity ``l2_clip`` (one member's
change replaced by zero) and ``dp-accounting``'s ``GaussianDpEvent(noise_multiplier)``
composed over the rounds by its RDP accountant gives (ε, δ).

The noise comes from the AES-256-CTR keystream of :class:`ssddl.hazmat.noise.NoiseStream`
under a key drawn from the operating system (never numpy's generators): two 53-bit uniforms
per pair of normals, Box–Muller. Floating-point Gaussian samples have the known
least-significant-bit weakness (Mironov, CCS 2012); this is a reference row, as DP-FedAvg is
usually run, not the exact integer mechanism SSDDL's members use.

Traffic. A round moves what plain FedAvg's does, in the same frames (so byte tables compare
them): the global model down to each member (``round_start``, a
:class:`~ssddl.protocol.messages.RoundStart` with the float32 weights) and each member's
float32 change up (``plain_upload``, a :class:`~ssddl.protocol.messages.PlainUpload`). The
sizes are those frames' encoded lengths; the runner sends nothing, it records them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import dp_accounting
import numpy as np
from dp_accounting.rdp import RdpAccountant
from torch import nn

from ssddl.baselines._train import derive_seed, fresh_copy
from ssddl.baselines.runners import BaselineRun, RowCallback, RunnerConfig, Traffic, round_row
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.dp import clip_l2
from ssddl.hazmat.noise import NoiseStream
from ssddl.hazmat.rand import OsRandom, RandomSource
from ssddl.learning import ArrayDataset, evaluate, model_to_vector, train_local, vector_to_model
from ssddl.privacy.accounting import ORDERS
from ssddl.protocol.messages import PlainUpload, RoundStart

__all__ = [
    "CentralDp",
    "calibrate_central",
    "central_epsilon",
    "dp_fedavg_runner",
    "frame_sizes",
    "gaussian",
]

_TWO_TO_53 = float(1 << 53)


def gaussian(stream: NoiseStream, count: int) -> np.ndarray:
    """``count`` standard normal draws (float64) from ``stream``'s keystream, Box–Muller."""
    pairs = (count + 1) // 2
    words = stream.words(2 * pairs) >> np.uint64(11)  # 53 uniform bits each
    u1 = (words[:pairs].astype(np.float64) + 1.0) / _TWO_TO_53  # in (0, 1]: log is finite
    u2 = words[pairs:].astype(np.float64) / _TWO_TO_53
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * math.pi * u2
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]


def frame_sizes(model_size: int, members: int) -> tuple[int, int]:
    """(up, down): the bytes of plain FedAvg's frames for a ``model_size`` model and a group
    of ``members``: one member's float32 change (``PlainUpload``) and the float32 global model
    with the group (``RoundStart``). Every field but the arrays has a fixed width."""
    zeros = np.zeros(model_size, dtype=np.float32)
    session = b"\0" * 16
    up = PlainUpload(session, 0, 1, 1, zeros).encode()
    down = RoundStart(session, 0, tuple(range(1, members + 1)), zeros).encode()
    return len(up), len(down)


def _round_traffic(r: int, members: int, up: int, down: int) -> list[Traffic]:
    out: list[Traffic] = []
    for p in range(1, members + 1):
        out += [(r, "round_start", 0, p, down), (r, "plain_upload", p, 0, up)]
    return out


def central_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """ε at ``delta`` of ``rounds`` rounds of the Gaussian mechanism with noise multiplier
    ``noise_multiplier`` (standard deviation over sensitivity), composed by RDP."""
    accountant = RdpAccountant(list(ORDERS))
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)
    return float(accountant.get_epsilon(delta))


def calibrate_central(target_epsilon: float, rounds: int, delta: float) -> float:
    """The smallest noise multiplier (to 0.1 %) whose ε after ``rounds`` rounds is at most
    ``target_epsilon``, by bisection."""
    if not (isinstance(target_epsilon, int | float) and target_epsilon > 0):
        raise ConfigurationError(
            f"target_epsilon must be a positive number, got {target_epsilon!r}"
        )
    low, high = 1e-3, 1.0
    while central_epsilon(high, rounds, delta) > target_epsilon:
        low, high = high, high * 2
        if high > 1e6:
            raise ConfigurationError(f"no noise multiplier reaches epsilon {target_epsilon}")
    while high / low > 1.001:
        middle = math.sqrt(low * high)
        if central_epsilon(middle, rounds, delta) > target_epsilon:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True)
class CentralDp:
    """The server's noise: standard deviation ``noise_multiplier * l2_clip`` on the sum of the
    members' changes, each clipped to ``l2_clip``; ε reported at ``delta``."""

    noise_multiplier: float = 1.0
    l2_clip: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("noise_multiplier", "l2_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.delta, float) and 0 < self.delta < 1):
            raise ConfigurationError(f"delta must be a float in (0, 1), got {self.delta!r}")


def dp_fedavg_runner(dp: CentralDp, source: RandomSource | None = None) -> Any:
    """A runner (``docs/writing-a-baseline.md``) of DP-FedAvg with ``dp``'s central noise,
    drawn from ``source`` (default: the operating system)."""

    def run_dp_fedavg(
        model: nn.Module,
        datasets: list[ArrayDataset],
        config: RunnerConfig,
        *,
        test: ArrayDataset | None,
        on_round: RowCallback | None,
    ) -> BaselineRun:
        stream = NoiseStream(source if source is not None else OsRandom())
        work = fresh_copy(model)
        weights = model_to_vector(model).astype(np.float64)
        n = len(datasets)
        up, down = frame_sizes(int(weights.size), n)
        rows: list[dict[str, Any]] = []
        traffic: list[Traffic] = []
        for r in range(config.rounds):
            started = time.perf_counter()
            total = np.zeros_like(weights)
            for who, data in enumerate(datasets, start=1):
                vector_to_model(weights.astype(np.float32), work)
                train_local(work, data, config.train, seed=derive_seed(config.seed, r, who))
                change = model_to_vector(work).astype(np.float64) - weights
                total += clip_l2(change, dp.l2_clip)
            noise = gaussian(stream, weights.size) * (dp.noise_multiplier * dp.l2_clip)
            weights = weights + (total + noise) / n
            vector_to_model(weights.astype(np.float32), work)
            scores = evaluate(work, test) if test is not None else None
            row = round_row(
                r,
                n,
                accuracy=float("nan") if scores is None else scores.accuracy,
                loss=float("nan") if scores is None else scores.loss,
                round_seconds=time.perf_counter() - started,
                upload_bytes_mean=float(up),
                download_bytes_mean=float(down),
                upload_bytes_max=up,
                total_bytes=n * (up + down),
            )
            row["epsilon"] = central_epsilon(dp.noise_multiplier, r + 1, dp.delta)
            rows.append(row)
            traffic += _round_traffic(r, n, up, down)
            if on_round is not None:
                on_round(row)
        final = weights.astype(np.float32)
        return BaselineRun("dp-fedavg", rows, traffic, final, int(final.size), n)

    return run_dp_fedavg
