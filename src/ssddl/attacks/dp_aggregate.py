"""The aggregate attacks again, on the aggregate a distributed-DP session decodes.

:mod:`ssddl.attacks.aggregate` reads training inputs back from the sum the server decodes in
a real ``prg`` session (batch DLG / iDLG, the first-layer ratio). Here the same attacks, with
the same scoring (Hungarian matching, recovered at PSNR ≥ 30 dB), run on the aggregate of a
real session with distributed DP on (``ProtocolConfig.dp = "ddg"``), its noise calibrated to
each ε of ``AuditConfig.dp_epsilons`` for that one round, beside the same session without DP.

The clip norm is set to the largest member's change, so clipping alone changes nothing and
the noise is all that stands between the attacks and the inputs (the attacker's best case).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ssddl.attacks.aggregate import (
    AGGREGATE_ATTACKS,
    AggregateRow,
    AggregateView,
    aggregate_view,
    attack_aggregate,
    record_aggregate,
)
from ssddl.attacks.attack import AttackContext, AttackOutcome
from ssddl.attacks.target import Victims, batch_trainer
from ssddl.learning import model_to_vector
from ssddl.protocol import ProtocolConfig

__all__ = ["EXACT_PSNR", "DpAggregateRecovery", "DpAggregateRow", "dp_session"]

EXACT_PSNR = 60.0  #: an input counts as recovered *exactly* at this PSNR (RMS error 1e-3)
MECHANISM = "ddg"


@dataclasses.dataclass(frozen=True)
class DpAggregateRow:
    """One attack on one (noised or plain) aggregate of ``n`` members with one sample each."""

    epsilon: float | None  #: the accountant's ε of the round (None: DP off)
    noise_multiplier: float | None
    l2_clip: float
    relative_error: float  #: ‖decoded mean − true mean‖ / ‖true mean‖
    exact_recovered: int  #: inputs at PSNR ≥ EXACT_PSNR
    row: AggregateRow

    def as_dict(self) -> dict[str, Any]:
        return {
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


def _changes(victims: Victims, members: int, lr: float) -> list[np.ndarray]:
    """Each member's true change (one SGD step on its own sample), as its trainer makes it."""
    initial = model_to_vector(victims.model)
    return [
        np.asarray(
            batch_trainer(
                victims.model, victims.pool_x[p : p + 1], victims.pool_y[p : p + 1], 10, lr=lr
            )(initial, 0).delta,
            dtype=np.float64,
        )
        for p in range(members)
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
        changes = _changes(v, n, config.lr)
        true_mean = np.mean(changes, axis=0)
        clip = max(float(np.linalg.norm(c)) for c in changes) * (1 + 1e-6)
        outcomes: list[AttackOutcome] = []
        for epsilon in (None, *config.dp_epsilons):
            protocol, spent = dp_session(epsilon, members=n, dim=true_mean.size, l2_clip=clip)
            what = "without DP" if epsilon is None else f"with ddg at eps={epsilon:g}"
            context.say(f"the noised aggregate: a real prg session of {n} members {what}")
            run = record_aggregate(
                v.model,
                v.pool_x[:n],
                v.pool_y[:n],
                10,
                members=n,
                lr=config.lr,
                crypto_seed=config.crypto_seed,
                protocol=protocol,
            )
            view = aggregate_view(run)
            error = float(np.linalg.norm(view.mean - true_mean) / np.linalg.norm(true_mean))
            for attack in AGGREGATE_ATTACKS:
                row = self._attack(context, view, attack, epsilon)
                found = DpAggregateRow(
                    spent,
                    protocol.noise_multiplier if epsilon is not None else None,
                    clip,
                    error,
                    row[1],
                    row[0],
                )
                outcomes.append(
                    _outcome(found, row[2], epsilon is None or epsilon == max(config.dp_epsilons))
                )
        return outcomes

    def _attack(
        self, context: AttackContext, view: AggregateView, attack: str, epsilon: float | None
    ) -> tuple[AggregateRow, int, np.ndarray]:
        config, v = context.config, context.victims
        n = view.contributors
        xs = v.pool_x[:n]
        row, matched = attack_aggregate(
            view,
            attack,
            model=v.model,
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
    row = found.row
    images = {}
    if draw and row.attack == "iDLG":
        images = {f"iDLG {row.view}": {p: matched[p - 1] for p in range(1, row.n + 1)}}
    eps = "off" if found.epsilon is None else f"{found.epsilon:.3g}"
    return AttackOutcome(
        row.attack,
        f"{row.view} n={row.n} B=1",
        row.recovered > 0,
        None,
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
