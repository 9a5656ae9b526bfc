"""DP-FedAvg with central Gaussian noise: accounting, calibration, the sampler, the runner."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from scipy import stats

from ssddl import modes
from ssddl.baselines._train import derive_seed
from ssddl.baselines.central_dp import (
    CentralDp,
    calibrate_central,
    central_epsilon,
    dp_fedavg_runner,
    gaussian,
)
from ssddl.baselines.runners import RunnerConfig, run_baseline
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.dp import clip_l2
from ssddl.hazmat.noise import NoiseStream
from ssddl.learning import ArrayDataset, DatasetSplit, model_to_vector, train_local, vector_to_model
from tests.baselines.conftest import TRAIN, small_mlp


class _Fixed:
    """A RandomSource that repeats a fixed key (tests only)."""

    def __init__(self, label: bytes) -> None:
        self.key = hashlib.sha256(label).digest()

    def random_bytes(self, n: int) -> bytes:
        return self.key[:n]


def _classical(z: float, rounds: int, delta: float) -> float:
    """The Gaussian mechanism's RDP α·T/(2z²) converted with Mironov's bound, best order."""
    return min(rounds * a / (2 * z * z) + math.log(1 / delta) / (a - 1) for a in range(2, 1025))


@pytest.mark.parametrize(("z", "rounds"), [(0.8, 10), (2.0, 10), (5.0, 100)])
def test_epsilon_is_the_gaussian_mechanisms(z: float, rounds: int) -> None:
    eps = central_epsilon(z, rounds, 1e-5)
    # the accountant's conversion is tighter than Mironov's (Canonne et al. 2020), not by much
    assert 0.8 * _classical(z, rounds, 1e-5) <= eps <= _classical(z, rounds, 1e-5)
    assert central_epsilon(2 * z, rounds, 1e-5) < eps < central_epsilon(z, 2 * rounds, 1e-5)


@pytest.mark.parametrize("target", [1.0, 4.0, 16.0])
def test_calibration_is_the_smallest_noise_that_reaches_the_target(target: float) -> None:
    z = calibrate_central(target, 10, 1e-5)
    assert central_epsilon(z, 10, 1e-5) <= target
    assert central_epsilon(z / 1.002, 10, 1e-5) > target
    with pytest.raises(ConfigurationError, match="target_epsilon"):
        calibrate_central(0.0, 10, 1e-5)


def test_gaussian_draws_are_standard_normal() -> None:
    draws = gaussian(NoiseStream(_Fixed(b"gaussian")), 100_001)
    assert draws.shape == (100_001,) and draws.dtype == np.float64
    assert stats.kstest(draws, "norm").pvalue > 1e-3
    again = gaussian(NoiseStream(_Fixed(b"gaussian")), 100_001)
    other = gaussian(NoiseStream(_Fixed(b"other")), 100_001)
    assert np.array_equal(draws, again) and not np.array_equal(draws, other)


def test_the_update_is_the_clipped_mean_plus_the_noise(
    participants: list[ArrayDataset], digits: DatasetSplit
) -> None:
    """One round by hand: each member's change clipped to 0.5, averaged, plus the noise the
    same key gives at z · c / n; the runner's weights are exactly that (float32)."""
    datasets = participants[:3]
    dp = CentralDp(noise_multiplier=2.0, l2_clip=0.5)
    config = RunnerConfig(rounds=1, train=TRAIN, seed=3)
    run = run_baseline(
        dp_fedavg_runner(dp, _Fixed(b"run")), small_mlp(), datasets, config, test=digits.test
    )
    model = small_mlp()
    start = model_to_vector(model).astype(np.float64)
    total = np.zeros_like(start)
    for who, data in enumerate(datasets, start=1):
        vector_to_model(start.astype(np.float32), model)
        train_local(model, data, TRAIN, seed=derive_seed(3, 0, who))
        change = model_to_vector(model).astype(np.float64) - start
        assert np.linalg.norm(change) > 0.5  # the clip is active
        total += clip_l2(change, 0.5)
    noise = gaussian(NoiseStream(_Fixed(b"run")), start.size) * 1.0
    expected = (start + (total + noise) / 3).astype(np.float32)
    assert np.array_equal(run.weights, expected)
    assert run.rows[0]["epsilon"] == pytest.approx(central_epsilon(2.0, 1, 1e-5))
    assert 0 <= run.rows[0]["accuracy"] <= 1


def test_it_is_a_mode_of_the_catalogue() -> None:
    assert "dp-fedavg" in modes.mode_names()
    entry = modes.entry("dp-fedavg")
    assert not entry.secure and entry.compared == ()
    assert "clear" in entry.guarantee(5).text
    with pytest.raises(ConfigurationError, match="l2_clip"):
        CentralDp(l2_clip=0.0)


def test_the_runner_records_plain_fedavgs_traffic(
    participants: list[ArrayDataset], digits: DatasetSplit
) -> None:
    """Every round, the model down to each member and each member's float32 change up, in
    plain FedAvg's frames: the sizes the simulator's plain mode puts on its wire."""
    from ssddl.runtime.simulator import plain_upload_size

    datasets = participants[:3]
    config = RunnerConfig(rounds=2, train=TRAIN, seed=1)
    run = run_baseline(
        dp_fedavg_runner(CentralDp(), _Fixed(b"traffic")), small_mlp(), datasets, config,
        test=digits.test,
    )  # fmt: skip
    size = run.model_size
    up = plain_upload_size(size)
    assert 4 * size < up < 4 * size + 100  # the float32 change and the frame's header
    down = next(b for (_, kind, _, _, b) in run.traffic if kind == "round_start")
    assert 4 * size < down < 4 * size + 100  # the float32 model, the group, the header
    by_round = sorted(run.traffic)
    assert by_round == sorted(
        [(r, "round_start", 0, p, down) for r in range(2) for p in (1, 2, 3)]
        + [(r, "plain_upload", p, 0, up) for r in range(2) for p in (1, 2, 3)]
    )
    for row in run.rows:
        assert row["upload_bytes_mean"] == up and row["upload_bytes_max"] == up
        assert row["download_bytes_mean"] == down
        assert row["total_bytes"] == 3 * (up + down)
