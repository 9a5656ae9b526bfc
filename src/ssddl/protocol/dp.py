"""Distributed DP in ParaShare and ParaUpdate (off unless ``ProtocolConfig.dp`` is set).

A member's x_i, instead of its fixed-point change, is (docs/privacy.md)::

    z_i = conditional_round(γ · rotate_fixed(clip_l2(Δw_i, l2_clip), key_r), Δ₂) + noise_i

written into the ring Z_(2**ring_bits) (two's complement); its count word is 1. The masks are
added as in every mode, so the server unmasks Σ z_i mod 2**ring_bits, reads it modulo
``2**bits`` as signed integers, undoes the rotation and divides by γ. The rotation key
``key_r`` comes from the public session id and round number; γ, Δ₂ and the noise variance
from :func:`noise_plan`: calibrated for the honest contributor floor
``min_contributors - max_colluders``, over the model's ``M`` coordinates and the round's group.
The noise and the rounding's coins are drawn from the member's own cryptographic source.

``ssddl.privacy`` (and with it ``dp-accounting``) is imported only when DP is on.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from ssddl.exceptions import PolicyViolation
from ssddl.hazmat.dp import (
    clip_l2,
    conditional_round,
    rotate_fixed,
    rotation_key,
    unrotate_fixed,
    unwrap,
)
from ssddl.hazmat.noise import NoiseStream, discrete_gaussian, skellam
from ssddl.hazmat.rand import RandomSource
from ssddl.protocol.config import Aggregation, SessionParams
from ssddl.protocol.policy import ParticipantPolicy

if TYPE_CHECKING:
    from ssddl.privacy.accounting import DistributedDp, NoisePlan

__all__ = [
    "calibrated_noise",
    "check_noise",
    "decode_noised",
    "decoding_error",
    "dp_summary",
    "encode_noised",
    "epsilon_after",
    "noise_members",
    "noise_plan",
    "session_dp",
]


def session_dp(params: SessionParams) -> DistributedDp:
    """The session's distributed-DP parameters (``params.dp`` must be set)."""
    from ssddl.privacy.accounting import DistributedDp, Mechanism

    return DistributedDp(
        mechanism=Mechanism(params.dp),
        noise_multiplier=params.noise_multiplier,
        l2_clip=params.l2_clip,
        bits=params.bits,
        delta=params.dp_delta,
    )


def noise_members(params: SessionParams) -> int:
    """The honest contributors whose noise a round is sure to hold: the contributor floor
    less the coalition the session survives."""
    return params.min_contributors - params.max_colluders


@lru_cache(maxsize=8)
def noise_plan(params: SessionParams, dim: int) -> NoisePlan:
    """γ, Δ₂ and each member's noise variance for an ``dim``-coordinate model."""
    from ssddl.privacy.accounting import plan

    return plan(
        session_dp(params),
        dim=dim,
        group_size=params.group_size,
        noise_members=noise_members(params),
        pad=False,
    )


def encode_noised(
    params: SessionParams,
    session_id: bytes,
    round_number: int,
    delta: np.ndarray,
    source: RandomSource,
) -> np.ndarray:
    """z_i (module docstring) as int64, one per coordinate of ``delta``."""
    plan = noise_plan(params, delta.size)
    stream = NoiseStream(source)
    rotated = rotate_fixed(clip_l2(delta, params.l2_clip), rotation_key(session_id, round_number))
    rotated *= plan.scale
    z = conditional_round(rotated, plan.l2_sensitivity, stream)
    if params.dp == "ddg":
        discrete_gaussian(stream, z.size, plan.local_variance, add_to=z)
    else:
        skellam(stream, z.size, plan.local_variance / 2, add_to=z)
    return z


def decode_noised(
    params: SessionParams, session_id: bytes, round_number: int, words: np.ndarray
) -> np.ndarray:
    """The float64 sum of the members' changes (plus the noise) from Σ z_i in the ring."""
    plan = noise_plan(params, words.size)
    integers = unwrap(words, params.bits)
    summed = unrotate_fixed(integers, rotation_key(session_id, round_number))
    summed /= plan.scale
    return summed


def epsilon_after(params: SessionParams, dim: int, rounds: int) -> float:
    """ε at ``params.dp_delta`` after ``rounds`` rounds of this session (``dim`` coordinates)."""
    from ssddl.privacy.accounting import epsilon

    return epsilon(
        session_dp(params),
        rounds=rounds,
        dim=dim,
        group_size=params.group_size,
        noise_members=noise_members(params),
        pad=False,
    )


def calibrated_noise(params: SessionParams, dim: int, target_epsilon: float) -> float:
    """The smallest noise multiplier whose ε after ``params.rounds`` rounds is at most
    ``target_epsilon`` (to 0.1 %)."""
    from ssddl.privacy.accounting import calibrate

    return calibrate(
        params.dp,
        target_epsilon=target_epsilon,
        rounds=params.rounds,
        l2_clip=params.l2_clip,
        dim=dim,
        group_size=params.group_size,
        noise_members=noise_members(params),
        bits=params.bits,
        delta=params.dp_delta,
        pad=False,
    ).noise_multiplier


def decoding_error(params: SessionParams, dim: int) -> dict[str, float]:
    """How far the update a DP round applies is from the plain one of the members' clipped
    changes, per coordinate, with the whole group contributing (``n = group_size``), in the
    units of the applied update (after the mean or sum and ``server_lr``):

    * ``rounding_rms_bound``: a hard bound on the root mean square over the coordinates of
      the rounding error: each member moves each rotated, scaled coordinate by less than 1,
      so the sum's error has L2 norm below ``n·sqrt(dim)``; the unrotation keeps L2 norms,
      and the read-back divides by γ: ``n/γ`` on the sum;
    * ``rounding_std``: the error's per-coordinate standard deviation for independent
      randomized rounding (variance at most 1/4 per value): ``sqrt(n)/(2γ)`` on the sum;
    * ``noise_std``: the noise's per-coordinate standard deviation, exact: ``n`` shares of
      variance ``v`` per rotated coordinate, independent, stay ``n·v`` per coordinate under
      the orthogonal unrotation: ``sqrt(n·v)/γ`` on the sum;
    * ``scale``: γ, integer units per unit of the update.

    Clipping to ``l2_clip`` is not counted (it changes the input, by the user's choice); a
    wrap-around mod ``2**bits`` is (``wrap_probability_bound_per_round``, in :func:`dp_summary`).
    With fewer contributors ``k`` the sum's noise is ``sqrt(k/n)`` of this and the mean's
    ``sqrt(n/k)``.
    """
    plan = noise_plan(params, dim)
    n = params.group_size
    per_sum = params.server_lr / plan.scale  # integer units of the sum -> the applied update
    factor = per_sum if params.aggregation is Aggregation.SUM else per_sum / n
    return {
        "scale": plan.scale,
        "rounding_rms_bound": n * factor,
        "rounding_std": n**0.5 / 2 * factor,
        "noise_std": (n * plan.local_variance) ** 0.5 * factor,
    }


def dp_summary(params: SessionParams, dim: int, rounds: int) -> dict[str, object]:
    """What a run reports about its distributed DP after ``rounds`` rounds."""
    from ssddl.hazmat.dp import wrap_probability_bound

    plan = noise_plan(params, dim)
    wrap = wrap_probability_bound(
        bits=params.bits,
        dim=dim,
        signal_norm=plan.scale * params.l2_clip * params.group_size,
        members=params.group_size,
        noise=params.dp,
        noise_variance=plan.local_variance * params.group_size,
        flat_dim=1 << (dim.bit_length() - 1),
    )
    return {
        "dp": params.dp,
        "epsilon": epsilon_after(params, dim, rounds),
        "delta": params.dp_delta,
        "noise_multiplier": params.noise_multiplier,
        "l2_clip": params.l2_clip,
        "bits": params.bits,
        "noise_members": noise_members(params),
        "wrap_probability_bound_per_round": wrap,
        # the fixed-point decoding_error_bound does not describe a DP round; this does
        "dp_decoding_error": decoding_error(params, dim)
        | {"contributors": params.group_size, "wrap_probability_bound_per_round": wrap},
    }


def check_noise(policy: ParticipantPolicy, params: SessionParams, model_size: int) -> None:
    """Refuse an announced session whose distributed DP gives more than the participant's
    ``max_epsilon`` — counting only the noise of its own floor of honest contributors:
    its contributor floor less its ``max_colluders``."""
    if policy.max_epsilon is None:
        return
    if not params.dp:
        raise PolicyViolation(
            f"the server announced no distributed DP; this participant needs epsilon <= "
            f"{policy.max_epsilon}"
        )
    honest = policy.contributor_floor(params) - policy.max_colluders
    members = max(1, min(honest, params.group_size))
    dp = session_dp(params)  # each member's noise is the session's; only ``members`` count
    spent = noise_plan(params, model_size).epsilon(dp.mechanism, dp.delta, params.rounds, members)
    if spent > policy.max_epsilon * (1 + 1e-9):
        raise PolicyViolation(
            f"the announced noise gives epsilon {spent:.4g} over {params.rounds} rounds; this "
            f"participant accepts at most {policy.max_epsilon}"
        )
