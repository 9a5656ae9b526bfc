"""Privacy accounting for distributed DP: per-round RDP bounds, composed by ``dp-accounting``.

Only the two per-round Rényi-DP bounds that Google's ``dp-accounting`` package has no event
for are written here, each as one small function taken from its paper; composition over rounds
and the conversion to (ε, δ) are the package's :class:`~dp_accounting.rdp.RdpAccountant`
(the conversion of Canonne, Kamath, Steinke 2020 / Asoodeh et al. 2021 that it implements).

* :func:`ddg_rdp` — the distributed discrete Gaussian: the sum of ``n`` independent
  ``N_Z(0, σ²)`` shares, L2/L1 sensitivities Δ₂, Δ₁ of the rounded integer vector in ``d``
  coordinates. Kairouz, Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for
  Federated Learning with Secure Aggregation", ICML 2021 (arXiv:2102.06387), Theorem 1 with
  Proposition 14 / Eq. (17): with ``τ = 10 Σ_{k=1}^{n-1} exp(-2π²σ² k/(k+1))``,

      ε(α) = min( α Δ₂²/(2nσ²) + τd,
                  α/2 (Δ₂²/(nσ²) + 2 Δ₁ τ/(σ√n) + τ² d),
                  α/2 (Δ₂/(σ√n) + τ√d)² ).

  For ``n = 1`` (τ = 0) this is the discrete Gaussian's ½(Δ₂/σ)²-zCDP (Canonne, Kamath,
  Steinke, NeurIPS 2020, Theorem 4), the continuous Gaussian's curve.
* :func:`skellam_rdp` — the multi-dimensional Skellam mechanism with total noise variance μ
  (integer units; a sum of Skellams is a Skellam). Agarwal, Kairouz, Liu, "The Skellam
  Mechanism for Differentially Private Federated Learning", NeurIPS 2021 (arXiv:2110.04995),
  Theorem 3.5, for integer orders α > 1:

      ε(α) = α Δ₂²/(2μ) + min( ((2α - 1) Δ₂² + 6 Δ₁)/(4μ²), 3 Δ₁/(2μ) ).

Both are as in the authors' reference code (google-research ``distributed_dp``,
``accounting_utils.py``), which the tests transcribe independently, bound by bound and for a
whole planned round (scale, rounding inflation, τ) in the update's units. Neither paper prints
ε for a stated setting (their results are accuracy against a target ε, in figures), so there
is no published ε to test against; the tests say where they looked. Orders are the integers 2
to 128 and 256, 512, 1024 (both bounds are stated for integer orders).

The pipeline's sensitivities. A member clips its change to L2 norm ``c``, the rotation keeps
the norm, scaling by ``γ`` gives ``γc``, and conditional randomized rounding guarantees
``Δ₂ = rounded_norm_bound(γc, d, β)`` exactly (checked in integers); for integer vectors
``Δ₁ <= Δ₂ min(√d, Δ₂)``. Neighbouring rounds differ in one member's update replaced by zero
(its noise share still added), as in Kairouz et al.

Whose noise counts. Colluding members know their own noise shares and can subtract them; the
server sees every contributor's. So the noise that protects an honest member is that of the
honest contributors, at least ``noise_members = contributor floor - max_colluders`` (the floor
the participants enforce themselves, :meth:`ParticipantPolicy.contributor_floor`): each
member adds ``1/noise_members`` of the target variance, so a round with dropouts down to the
floor, with ``max_colluders`` of the contributors colluding, is still private at the stated ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import attr
import numpy as np
from dp_accounting import dp_event
from dp_accounting.rdp import RdpAccountant

from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.dp import padded_dimension, rounded_norm_bound
from ssddl.hazmat.noise import MAX_VARIANCE, MIN_GAUSSIAN_VARIANCE

__all__ = [
    "DEFAULT_BETA",
    "DEFAULT_K_STDDEVS",
    "MAX_PLANNED_VARIANCE",
    "ORDERS",
    "DistributedDiscreteGaussianDpEvent",
    "DistributedDp",
    "DistributedDpAccountant",
    "Mechanism",
    "NoisePlan",
    "NoiseTooSmall",
    "SkellamDpEvent",
    "calibrate",
    "ddg_rdp",
    "epsilon",
    "plan",
    "skellam_rdp",
]

ORDERS = (*range(2, 129), 256, 512, 1024)
#: conditional rounding's β (Kairouz et al. use exp(-0.5); TFF's default too)
DEFAULT_BETA = math.exp(-0.5)
#: standard deviations of the aggregate that must fit in half the ring of 2**bits (their §4.4)
DEFAULT_K_STDDEVS = 4.0
#: the largest noise variance per member a plan asks for, in integer units (σ = 2**14)
MAX_PLANNED_VARIANCE = float(2**28)


class Mechanism(str, Enum):
    """The integer noise each member adds."""

    DDG = "ddg"
    SKELLAM = "skellam"


# --- the per-round bounds -----------------------------------------------------------------


def _tau(local_variance: float, members: int) -> float:
    return 10 * math.fsum(
        math.exp(-2 * math.pi**2 * local_variance * k / (k + 1)) for k in range(1, members)
    )


def ddg_rdp(
    order: int,
    *,
    l2_sensitivity: float,
    l1_sensitivity: float,
    local_variance: float,
    members: int,
    dim: int,
) -> float:
    """RDP at integer ``order`` of one round of the distributed discrete Gaussian
    (Kairouz, Liu, Steinke 2021, Theorem 1 / Prop. 14, Eq. 17; module docstring)."""
    tau = _tau(local_variance, members)
    scale = math.sqrt(members * local_variance)
    l2, l1 = l2_sensitivity / scale, l1_sensitivity / scale
    return min(
        order / 2 * l2**2 + tau * dim,
        order / 2 * (l2**2 + 2 * l1 * tau + tau**2 * dim),
        order / 2 * (l2 + math.sqrt(dim) * tau) ** 2,
    )


def skellam_rdp(
    order: int, *, l2_sensitivity: float, l1_sensitivity: float, variance: float
) -> float:
    """RDP at integer ``order`` of one round of the Skellam mechanism with total variance
    ``variance`` (Agarwal, Kairouz, Liu 2021, Theorem 3.5; module docstring)."""
    mu, l2sq, l1 = variance, l2_sensitivity**2, l1_sensitivity
    surcharge = min(((2 * order - 1) * l2sq + 6 * l1) / (4 * mu**2), 3 * l1 / (2 * mu))
    return order * l2sq / (2 * mu) + surcharge


# --- events the accountant composes -------------------------------------------------------


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DistributedDiscreteGaussianDpEvent(dp_event.DpEvent):
    """One round of the distributed discrete Gaussian (integer units)."""

    local_variance: float
    members: int
    l2_sensitivity: float
    l1_sensitivity: float
    dim: int


@attr.s(frozen=True, slots=True, auto_attribs=True)
class SkellamDpEvent(dp_event.DpEvent):
    """One round of the Skellam mechanism with total noise variance ``variance``."""

    variance: float
    l2_sensitivity: float
    l1_sensitivity: float


class DistributedDpAccountant(RdpAccountant):
    """``dp-accounting``'s RDP accountant, taught the two events above; every other event
    (Gaussian, composition, sampling ...) is the package's own."""

    def __init__(self, orders: tuple[int, ...] = ORDERS) -> None:
        super().__init__(orders=list(orders))

    def _curve(self, event: dp_event.DpEvent) -> np.ndarray | None:
        orders = [int(o) if float(o).is_integer() else None for o in self._orders]
        if isinstance(event, DistributedDiscreteGaussianDpEvent):
            fields = attr.asdict(event)
            return np.array([np.inf if o is None else ddg_rdp(o, **fields) for o in orders])
        if isinstance(event, SkellamDpEvent):
            fields = attr.asdict(event)
            return np.array([np.inf if o is None else skellam_rdp(o, **fields) for o in orders])
        return None

    def _maybe_compose(self, event: dp_event.DpEvent, count: int, do_compose: bool) -> Any:
        curve = self._curve(event)
        if curve is None:
            return super()._maybe_compose(event, count, do_compose)
        if do_compose:
            self._rdp += count * curve
        return None


# --- what a session fixes, and what it implies ---------------------------------------------


class NoiseTooSmall(ConfigurationError):
    """The noise per member would be below what the sampler takes (variance 1/4)."""


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a positive finite number")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be a positive finite number")
    return float(value)


def _count(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(f"{name} must be an int >= {low}")
    return value


@dataclass(frozen=True)
class DistributedDp:
    """The distributed-DP parameters of a session.

    ``noise_multiplier`` (z): the honest contributors' total noise has standard deviation
    ``z * l2_clip`` in the units of the update. ``bits``: the sum is read modulo ``2**bits``.
    ``delta``: the δ of the (ε, δ) reported. ``beta``: conditional rounding's β.
    ``k_stddevs``: standard deviations of the aggregate fitted in ``2**(bits-1)``.
    """

    mechanism: Mechanism
    noise_multiplier: float
    l2_clip: float
    bits: int = 20
    delta: float = 1e-5
    beta: float = DEFAULT_BETA
    k_stddevs: float = DEFAULT_K_STDDEVS

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mechanism", Mechanism(self.mechanism))
        except ValueError:
            raise ConfigurationError("dp mechanism must be 'ddg' or 'skellam'") from None
        _positive(self.noise_multiplier, "dp noise_multiplier")
        _positive(self.l2_clip, "dp l2_clip")
        if (
            isinstance(self.bits, bool)
            or not isinstance(self.bits, int)
            or not 8 <= self.bits <= 32
        ):
            raise ConfigurationError("dp bits must be an int from 8 to 32")
        if not (isinstance(self.delta, float) and 0 < self.delta < 1):
            raise ConfigurationError("dp delta must be a float in (0, 1), e.g. 1e-5")
        if (
            isinstance(self.beta, bool)
            or not isinstance(self.beta, float)
            or not 0 <= self.beta < 1
        ):
            raise ConfigurationError("dp beta must be a float in [0, 1), e.g. exp(-0.5)")
        _positive(self.k_stddevs, "dp k_stddevs")


@dataclass(frozen=True)
class NoisePlan:
    """What every member of a round does, in integer units: multiply the rotated update by
    ``scale``, round with squared-norm bound ``l2_sensitivity²``, add noise of variance
    ``local_variance`` (Skellam: Poisson mean ``local_variance / 2`` each side)."""

    dim: int
    padded_dim: int
    scale: float
    local_variance: float
    l2_sensitivity: float
    l1_sensitivity: float
    noise_members: int

    def event(self, mechanism: Mechanism, members: int | None = None) -> dp_event.DpEvent:
        """The round's event for the accountant, with the noise of ``members`` members
        (default: ``noise_members``, those the plan is calibrated for)."""
        count = self.noise_members if members is None else _count(members, "members")
        if mechanism is Mechanism.DDG:
            return DistributedDiscreteGaussianDpEvent(
                local_variance=self.local_variance,
                members=count,
                l2_sensitivity=self.l2_sensitivity,
                l1_sensitivity=self.l1_sensitivity,
                dim=self.padded_dim,
            )
        return SkellamDpEvent(
            variance=self.local_variance * count,
            l2_sensitivity=self.l2_sensitivity,
            l1_sensitivity=self.l1_sensitivity,
        )

    def epsilon(
        self, mechanism: Mechanism, delta: float, rounds: int, members: int | None = None
    ) -> float:
        """ε at ``delta`` after ``rounds`` rounds with the noise of ``members`` members."""
        accountant = DistributedDpAccountant()
        accountant.compose(self.event(mechanism, members), _count(rounds, "rounds", low=0))
        return float(accountant.get_epsilon(delta))


def _scale(dp: DistributedDp, flat: int, group_size: int, noise_members: int) -> float:
    """γ such that ``k_stddevs`` standard deviations of an aggregate coordinate fit in
    ``2**(bits-1)``: γ²(c²n²/d + n σ²) + n/4 = (2**(bits-1)/k)², with n the round's group
    (everyone's signal and noise are in the sum) and σ the per-member noise in update units
    (Kairouz et al. §4.4; TFF's ``heuristic_scale_factor`` with ρ = 1) — but no larger than
    puts :data:`MAX_PLANNED_VARIANCE` of noise on a member: resolution far below the noise
    buys nothing, and the exact sampler's table grows with σ."""
    n, c = group_size, dp.l2_clip
    local_std = dp.noise_multiplier * c / math.sqrt(noise_members)
    room = (2.0 ** (dp.bits - 1) / dp.k_stddevs) ** 2 - n / 4
    if room <= 0:
        raise ConfigurationError(
            f"dp bits={dp.bits} cannot hold the sum of {n} members' rounding alone; "
            "raise --bits or lower k_stddevs"
        )
    fitting = math.sqrt(room / (c * c * n * n / flat + n * local_std**2))
    return min(fitting, math.sqrt(MAX_PLANNED_VARIANCE) / local_std)


def plan(
    dp: DistributedDp, *, dim: int, group_size: int, noise_members: int, pad: bool = True
) -> NoisePlan:
    """The integer-domain parameters of a round: ``dim`` coordinates (padded to a power of
    two by :func:`~ssddl.hazmat.dp.rotate`; ``pad=False``: kept, by
    :func:`~ssddl.hazmat.dp.rotate_fixed`), at most ``group_size`` contributors, at least
    ``noise_members`` honest ones."""
    dim = _count(dim, "dim")
    group_size = _count(group_size, "group_size")
    noise_members = _count(noise_members, "noise_members")
    if noise_members > group_size:
        raise ConfigurationError("noise_members cannot exceed group_size")
    padded = padded_dimension(dim) if pad else dim
    flat = padded if pad else 1 << (dim.bit_length() - 1)  # the rotated blocks' length
    scale = _scale(dp, flat, group_size, noise_members)
    l2 = rounded_norm_bound(scale * dp.l2_clip, padded, dp.beta)
    total_std = dp.noise_multiplier * dp.l2_clip * scale
    local_variance = total_std**2 / noise_members
    if local_variance < MIN_GAUSSIAN_VARIANCE:
        raise NoiseTooSmall(
            f"each member's noise variance would be {local_variance:.3g} integer units, "
            "below 0.25; raise --noise-multiplier or --bits"
        )
    if local_variance > MAX_VARIANCE:
        raise ConfigurationError(
            f"each member's noise variance would be {local_variance:.3g} integer units, "
            "above 2**32; lower --noise-multiplier or --bits"
        )
    return NoisePlan(
        dim=dim,
        padded_dim=padded,
        scale=scale,
        local_variance=local_variance,
        l2_sensitivity=l2,
        l1_sensitivity=l2 * min(math.sqrt(padded), l2),
        noise_members=noise_members,
    )


def epsilon(
    dp: DistributedDp,
    *,
    rounds: int,
    dim: int,
    group_size: int,
    noise_members: int,
    pad: bool = True,
) -> float:
    """ε at ``dp.delta`` after ``rounds`` rounds, composed by the RDP accountant."""
    chosen = plan(dp, dim=dim, group_size=group_size, noise_members=noise_members, pad=pad)
    return chosen.epsilon(dp.mechanism, dp.delta, rounds)


def calibrate(
    mechanism: Mechanism | str,
    *,
    target_epsilon: float,
    rounds: int,
    l2_clip: float,
    dim: int,
    group_size: int,
    noise_members: int,
    bits: int = 20,
    delta: float = 1e-5,
    beta: float = DEFAULT_BETA,
    pad: bool = True,
) -> DistributedDp:
    """The smallest noise multiplier (to 0.1 %) whose ε after ``rounds`` rounds is at most
    ``target_epsilon``, by bisection (ε decreases as the noise grows)."""
    target = _positive(target_epsilon, "target_epsilon")

    def spec(z: float) -> DistributedDp:
        return DistributedDp(Mechanism(mechanism), z, l2_clip, bits, delta, beta)

    def eps(z: float) -> float:
        try:
            return epsilon(
                spec(z),
                rounds=rounds,
                dim=dim,
                group_size=group_size,
                noise_members=noise_members,
                pad=pad,
            )
        except NoiseTooSmall:
            return math.inf

    low, high = 1e-3, 1.0
    while eps(high) > target:
        low, high = high, high * 2
        if high > 1e6:
            raise ConfigurationError(
                f"no noise multiplier up to 1e6 reaches epsilon {target}; raise --target-epsilon"
            )
    while high / low > 1.001:
        middle = math.sqrt(low * high)
        low, high = (middle, high) if eps(middle) > target else (low, middle)
    return spec(high)
