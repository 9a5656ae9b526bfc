"""The aggregate attacks again, on the aggregate a distributed-DP session decodes.

:mod:`ssddl.attacks.aggregate` reads training inputs back from the sum the server decodes in
a real ``prg`` session (batch DLG / iDLG, the first-layer ratio). Here the same attacks, with
the same scoring (Hungarian matching, recovered at PSNR ≥ 30 dB), run on the aggregate of a
real session with distributed DP on (``ProtocolConfig.dp = "ddg"``), its noise calibrated to
each ε of ``AuditConfig.dp_epsilons`` for that one round, beside the same session without DP.

The clip norm is set to the largest member's change, so clipping alone changes nothing and
the noise is all that stands between the attacks and the inputs (the attacker's best case).

**The same-model imprint attack** (Fowl et al., "Robbing the Fed", ICLR 2022; Boenisch et al.,
EuroS&P 2023): a server that sends *every* member the same malicious model breaks no protocol
rule (the model binding only stops a model sent to some members). :func:`imprint_model`
writes first-layer "bins" into the victims' network: every hidden neuron k reads the mean
brightness ``s(x)`` with a steep gain and threshold ``c_k`` at the (k + ½)/K quantile of the
brightness of public digits (the test split: the server knows the data's distribution, not the
members' samples), so a neuron's gradient comes almost only from the samples whose brightness
lies near its threshold — usually one — and the first-layer ratio ``ΔW_k / Δb_k`` of the
*aggregate* reads that sample back. It runs with and without the noise.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ssddl.attacks.aggregate import (
    AGGREGATE_ATTACKS,
    AggregateRow,
    AggregateView,
    aggregate_view,
    attack_aggregate,
    record_aggregate,
)
from ssddl.attacks.attack import AttackContext, AttackOutcome
from ssddl.attacks.target import batch_trainer
from ssddl.exceptions import ConfigurationError
from ssddl.learning import load_digits, model_to_vector
from ssddl.protocol import ProtocolConfig

__all__ = [
    "EXACT_PSNR",
    "IMPRINT",
    "DpAggregateRecovery",
    "DpAggregateRow",
    "dp_session",
    "imprint_model",
]

EXACT_PSNR = 60.0  #: an input counts as recovered *exactly* at this PSNR (RMS error 1e-3)
MECHANISM = "ddg"
IMPRINT = "imprint"  #: the attack name of the same-model imprint rows
IMPRINT_GAIN = 300.0  #: the imprint neurons' gain on the mean brightness


def imprint_model(model: nn.Module, prior: np.ndarray, *, gain: float = IMPRINT_GAIN) -> nn.Module:
    """A copy of ``model`` whose first linear layer holds imprint bins (module docstring):
    neuron k computes ``gain · (mean(x) − c_k)``, ``c_k`` the (k + ½)/K quantile of the mean
    brightness of the ``prior`` inputs (rows)."""
    rows = np.asarray(prior, dtype=np.float64).reshape(len(prior), -1)
    crafted = copy.deepcopy(model)
    first = next(m for m in crafted.modules() if isinstance(m, nn.Linear))
    neurons, width = first.weight.shape
    if rows.shape[1] != width:
        raise ConfigurationError(f"prior inputs have {rows.shape[1]} features; the model {width}")
    cuts = np.quantile(rows.mean(axis=1), (np.arange(neurons) + 0.5) / neurons)
    with torch.no_grad():
        first.weight.fill_(gain / width)
        first.bias.copy_(torch.as_tensor(-gain * cuts, dtype=first.bias.dtype))
    return crafted


@dataclasses.dataclass(frozen=True)
class DpAggregateRow:
    """One attack on one (noised or plain) aggregate of ``n`` members with one sample each."""

    model: str  #: "victim" (the model every member trains) or "imprint" (a malicious one)
    epsilon: float | None  #: the accountant's ε of the round (None: DP off)
    noise_multiplier: float | None
    l2_clip: float
    relative_error: float  #: ‖decoded mean − true mean‖ / ‖true mean‖
    exact_recovered: int  #: inputs at PSNR ≥ EXACT_PSNR
    row: AggregateRow

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "epsilon": self.epsilon,
            "mechanism": MECHANISM if self.epsilon is not None else None,
            "noise_multiplier": self.noise_multiplier,
            "l2_clip": self.l2_clip,
            "relative_error": self.relative_error,
            "exact_recovered": self.exact_recovered,
            **self.row.as_dict(),
        }


def dp_session(
    epsilon: float | None, *, members: int, dim: int, l2_clip: float
) -> tuple[ProtocolConfig, float | None]:
    """A one-round unweighted ``prg`` session of ``members``, with the distributed discrete
    Gaussian calibrated to ``epsilon`` for that round (None: DP off); and its accountant ε."""
    from ssddl.protocol.dp import calibrated_noise, epsilon_after

    plain = ProtocolConfig(mode="prg", rounds=1, weighted=False)
    if epsilon is None:
        return plain, None
    noised = dataclasses.replace(plain, dp=MECHANISM, l2_clip=l2_clip)
    z = calibrated_noise(noised.resolve(members), dim, epsilon)
    noised = dataclasses.replace(noised, noise_multiplier=z)
    return noised, epsilon_after(noised.resolve(members), dim, 1)


def _changes(model: nn.Module, xs: np.ndarray, ys: np.ndarray, lr: float) -> list[np.ndarray]:
    """Each member's true change (one SGD step on its own sample), as its trainer makes it."""
    initial = model_to_vector(model)
    return [
        np.asarray(
            batch_trainer(model, xs[p : p + 1], ys[p : p + 1], 10, lr=lr)(initial, 0).delta,
            dtype=np.float64,
        )
        for p in range(len(ys))
    ]


class DpAggregateRecovery:
    """iDLG, DLG and the first-layer attack on the aggregate of a real session of
    ``dp_group`` members (one sample each) with distributed DP at each ε of ``dp_epsilons``,
    and without DP. Measured only: DP bounds what the aggregate reveals about one member, not
    any attack's PSNR; the rows show what the noise does to the attacks that work today."""

    name = "dp-aggregate"
    guarantee = (
        "measured: what distributed DP's noise leaves of the aggregate attacks that read "
        "every input from the plain aggregate"
    )
    adversary = "an honest-but-curious server holding the noised sum it decoded, the model, lr, n"

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        config, v = context.config, context.victims
        n = config.dp_group
        imprint = imprint_model(v.model, load_digits(seed=config.seed).test.x)
        outcomes: list[AttackOutcome] = []
        for label, model, attacks in (
            ("victim", v.model, AGGREGATE_ATTACKS),
            (IMPRINT, imprint, ("first-layer",)),
        ):
            changes = _changes(model, v.pool_x[:n], v.pool_y[:n], config.lr)
            clip = max(float(np.linalg.norm(c)) for c in changes) * (1 + 1e-6)
            for epsilon in (None, *config.dp_epsilons):
                view, spent, z = self._session(context, model, label, epsilon, clip)
                mean = np.mean(changes, axis=0)
                error = float(np.linalg.norm(view.mean - mean) / np.linalg.norm(mean))
                for attack in attacks:
                    row, exact, matched = self._attack(context, view, model, attack, epsilon)
                    found = DpAggregateRow(label, spent, z, clip, error, exact, row)
                    draw = epsilon is None or epsilon == max(config.dp_epsilons)
                    outcomes.append(_outcome(found, matched, draw))
        return outcomes

    def _session(
        self,
        context: AttackContext,
        model: nn.Module,
        label: str,
        epsilon: float | None,
        clip: float,
    ) -> tuple[AggregateView, float | None, float | None]:
        """The aggregate of a real session of ``dp_group`` members training ``model``."""
        config, v = context.config, context.victims
        n = config.dp_group
        dim = model_to_vector(model).size
        protocol, spent = dp_session(epsilon, members=n, dim=dim, l2_clip=clip)
        what = "without DP" if epsilon is None else f"with ddg at eps={epsilon:g}"
        context.say(f"the noised aggregate: {n} members, the {label} model, {what}")
        run = record_aggregate(
            model,
            v.pool_x[:n],
            v.pool_y[:n],
            10,
            members=n,
            lr=config.lr,
            crypto_seed=config.crypto_seed,
            protocol=protocol,
        )
        z = protocol.noise_multiplier if epsilon is not None else None
        return aggregate_view(run), spent, z

    def _attack(
        self,
        context: AttackContext,
        view: AggregateView,
        model: nn.Module,
        attack: str,
        epsilon: float | None,
    ) -> tuple[AggregateRow, int, np.ndarray]:
        config, v = context.config, context.victims
        n = view.contributors
        xs = v.pool_x[:n]
        row, matched = attack_aggregate(
            view,
            attack,
            model=model,
            layer=v.layer,
            lr=config.lr,
            batch=1,
            num_classes=10,
            truths=xs,
            labels=[int(c) for c in v.pool_y[:n]],
            iterations=config.aggregate_iterations,
            seed=config.seed + n,
            label="prg aggregate" if epsilon is None else f"ddg eps={epsilon:g}",
        )
        truth = np.asarray(xs, dtype=np.float64).reshape(n, -1)
        mse = np.mean((np.asarray(matched, dtype=np.float64) - truth) ** 2, axis=1)
        exact = int(np.count_nonzero(mse <= 10.0 ** (-EXACT_PSNR / 10)))
        return row, exact, matched


def _outcome(found: DpAggregateRow, matched: np.ndarray, draw: bool) -> AttackOutcome:
    """Measured only, except the imprint without DP: the trap must work (the control that
    shows the noised rows of the same attack mean something)."""
    row = found.row
    imprint = found.model == IMPRINT
    name = IMPRINT if imprint else row.attack
    images = {}
    if draw and row.attack == ("first-layer" if imprint else "iDLG"):
        images = {f"{name} {row.view}": {p: matched[p - 1] for p in range(1, row.n + 1)}}
    eps = "off" if found.epsilon is None else f"{found.epsilon:.3g}"
    return AttackOutcome(
        name,
        f"{row.view} n={row.n} B=1" + (" (imprint model)" if imprint else ""),
        row.recovered > 0,
        True if imprint and found.epsilon is None else None,
        target="the aggregate",
        detail=(
            f"eps {eps}: {row.recovered} of {row.inputs} inputs at PSNR >= 30 dB "
            f"({found.exact_recovered} exactly), best {_db(row.best_psnr)} dB"
        ),
        measured=found.as_dict(),
        images=images,
    )


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"
