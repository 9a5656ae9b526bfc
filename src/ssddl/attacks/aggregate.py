"""Attacks on the aggregate: what secure aggregation does not hide.

Secure aggregation hides *who contributed what*: the server learns no member's upload, only
the sum of the group's changes — and it learns that sum exactly, by design (it must, to
update the model). In FedAvg with one local SGD step, the mean change of n members who each
stepped on B samples is exactly one SGD step on the batch-mean loss of the n·B samples
together: the aggregate *is* a batch gradient, and every batch attack applies to it.

This module runs those attacks on the aggregate the server decoded in a real session
(:func:`ssddl.attacks.views.record_run`: real keys, masks and participants; the mean change
is ``RoundOutcome.update``, the vector the server itself applied):

* **DLG / iDLG** (:func:`ssddl.attacks.dlg.gradient_inversion` with ``batch = n·B``): n·B
  dummies matched to the aggregate; iDLG counts the labels from the output bias first.
* **First-layer** (:func:`ssddl.attacks.inversion.first_layer_candidates`): the ratio
  ``ΔW_k / Δb_k`` at every first-layer neuron k — the input of a sample wherever neuron k's
  bias gradient comes (almost) from that sample alone.

Each attack's reconstructions are matched one-to-one to the true inputs (Hungarian
assignment on MSE) and an input counts as *recovered* at PSNR ≥ :data:`SUCCESS_PSNR` on its
matched reconstruction. The attacker is assumed to know the model (the server sent it), the
learning rate, n and B (a public hyperparameter; in weighted mode the server learns the
sample total anyway). :func:`uniform_aggregate` is the control: uniform ring words read as an
aggregate, on which the same attacks must recover nothing.

Distributed differential privacy (noise added inside the aggregate) is the remedy; secure
aggregation alone is not.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from ssddl.attacks.attack import AttackContext, AttackOutcome
from ssddl.attacks.dlg import gradient_inversion
from ssddl.attacks.inversion import (
    SUCCESS_PSNR,
    first_layer_candidates,
    simulated_words,
    words_as_update,
)
from ssddl.attacks.target import FirstLayer, batch_trainer
from ssddl.attacks.views import RecordedRun, record_run
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import ring_sum
from ssddl.learning import model_to_vector
from ssddl.protocol import ProtocolConfig, SessionParams

__all__ = [
    "AGGREGATE_ATTACKS",
    "BEST",
    "CONTROL",
    "REAL_AGGREGATE",
    "SUCCESS_PSNR",
    "AggregateAttacks",
    "AggregateRow",
    "AggregateView",
    "aggregate_view",
    "attack_aggregate",
    "matched_psnr",
    "record_aggregate",
    "uniform_aggregate",
]

AGGREGATE_ATTACKS = ("iDLG", "DLG", "first-layer")
REAL_AGGREGATE = "prg aggregate"  #: the view label of the real aggregate's rows
CONTROL = "uniform words"  #: the control's: uniform ring words read as an aggregate
BEST = "best on the aggregate"  #: the outcome naming the best attack per (n, B)


@dataclass(frozen=True)
class AggregateView:
    """What the server decoded in one round: the ring words ``Σ x_i`` (count word last),
    the mean change it applied to the model, and how many members contributed."""

    params: SessionParams
    words: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    contributors: int


@dataclass(frozen=True)
class AggregateRow:
    """One attack on one aggregate: how many of its ``inputs`` (n·B) were recovered."""

    n: int
    batch: int
    attack: str
    view: str  #: "prg aggregate" (the real one) or "uniform words" (the control)
    inputs: int
    recovered: int
    best_psnr: float
    median_psnr: float
    match_loss: float | None  #: DLG / iDLG's final gradient-matching loss
    labels_correct: bool | None  #: iDLG / DLG: the multiset of labels was right
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "batch": self.batch,
            "attack": self.attack,
            "view": self.view,
            "inputs": self.inputs,
            "recovered": self.recovered,
            "best_psnr": _finite(self.best_psnr),
            "median_psnr": _finite(self.median_psnr),
            "match_loss": self.match_loss,
            "labels_correct": self.labels_correct,
            "seconds": round(self.seconds, 3),
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def record_aggregate(
    model: nn.Module,
    xs: np.ndarray,
    ys: np.ndarray,
    num_classes: int,
    *,
    members: int,
    lr: float,
    mode: str = "prg",
    crypto_seed: bytes | None = None,
    protocol: ProtocolConfig | None = None,
) -> RecordedRun:
    """A real one-round session of ``members`` participants; member p takes one SGD step on
    rows ``(p−1)·B … p·B−1`` of ``(xs, ys)`` as one batch (B = len(xs) / members).
    ``protocol`` (one round, unweighted) replaces the session's configuration, e.g. to turn
    distributed DP on; ``mode`` is then ignored."""
    if isinstance(members, bool) or not isinstance(members, int) or members < 2:
        raise ConfigurationError(f"members must be an int >= 2, got {members!r}")
    labels = np.asarray(ys).reshape(-1)
    inputs = np.asarray(xs)
    if inputs.ndim < 1 or inputs.shape[0] != labels.size:
        raise ConfigurationError(f"xs must hold one input per label ({labels.size} labels)")
    inputs = inputs.reshape(labels.size, -1)
    if labels.size % members:
        raise ConfigurationError(
            f"{labels.size} samples cannot be split evenly among {members} members"
        )
    batch = labels.size // members
    trainers = {
        p: batch_trainer(
            model,
            inputs[(p - 1) * batch : p * batch],
            labels[(p - 1) * batch : p * batch],
            num_classes,
            lr=lr,
        )
        for p in range(1, members + 1)
    }
    config = protocol or ProtocolConfig(mode=mode, rounds=1, weighted=False)
    return record_run(config, trainers, model_to_vector(model), crypto_seed=crypto_seed)


def aggregate_view(run: RecordedRun, round_number: int = 0) -> AggregateView:
    """The aggregate the server decoded in ``round_number`` of a recorded secure run."""
    for outcome in run.server.outcomes:
        if outcome.round == round_number:
            if outcome.aggregate is None or outcome.update is None:
                raise ConfigurationError(
                    f"round {round_number} holds no secure aggregate (status "
                    f"{outcome.status.value}; plain runs have no ring words)"
                )
            return AggregateView(
                run.params, outcome.aggregate, outcome.update, len(outcome.contributors)
            )
    raise ConfigurationError(f"the run has no round {round_number}")


def uniform_aggregate(
    params: SessionParams, size: int, contributors: int, rng: np.random.Generator
) -> AggregateView:
    """The control: ``size`` uniform ring words (+ a count word) read as an aggregate of
    ``contributors`` members — a view that carries nothing about any input."""
    words = simulated_words(params, size + 1, rng)
    return AggregateView(params, words, words_as_update(words, params) / contributors, contributors)


def matched_psnr(reconstructions: np.ndarray, truths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Match reconstructions one-to-one to the true inputs (Hungarian assignment on MSE;
    at least as many reconstructions as truths). Returns each truth's PSNR (peak 1) and its
    matched reconstruction, in the truths' order."""
    from scipy.optimize import linear_sum_assignment

    truth = np.asarray(truths, dtype=np.float64)
    truth = truth.reshape(truth.shape[0], -1)
    recs = np.asarray(reconstructions, dtype=np.float64).reshape(-1, truth.shape[1])
    if recs.shape[0] < truth.shape[0]:
        raise ConfigurationError(
            f"{recs.shape[0]} reconstructions cannot be matched to {truth.shape[0]} inputs"
        )
    mse = np.mean((recs[:, None, :] - truth[None, :, :]) ** 2, axis=-1)
    rows, cols = linear_sum_assignment(mse)
    order = np.argsort(cols)
    chosen, errors = rows[order], mse[rows, cols][order]
    with np.errstate(divide="ignore"):
        psnr = np.where(errors > 0.0, -10.0 * np.log10(errors), math.inf)
    return psnr, recs[chosen]


def attack_aggregate(
    view: AggregateView,
    attack: str,
    *,
    model: nn.Module,
    layer: FirstLayer,
    lr: float,
    batch: int,
    num_classes: int,
    truths: np.ndarray,
    labels: Sequence[int],
    iterations: int,
    seed: int = 0,
    label: str = "prg aggregate",
) -> tuple[AggregateRow, np.ndarray]:
    """Run ``attack`` on ``view`` as one batch of ``contributors · batch`` samples; score it
    against ``truths`` (and ``labels``, for DLG / iDLG). Returns the row and each truth's
    matched reconstruction."""
    if attack not in AGGREGATE_ATTACKS:
        raise ConfigurationError(f"attack must be one of {AGGREGATE_ATTACKS}, got {attack!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigurationError(f"batch must be an int >= 1, got {batch!r}")
    inputs = view.contributors * batch
    truth = np.asarray(truths, dtype=np.float64)
    if truth.ndim < 1 or truth.shape[0] != inputs:
        raise ConfigurationError(
            f"truths must hold the n·B = {inputs} true inputs of the aggregate"
        )
    truth = truth.reshape(inputs, -1)
    started = time.perf_counter()
    loss: float | None = None
    labels_ok: bool | None = None
    if attack == "first-layer":
        recs = first_layer_candidates(
            view.mean, weight=layer.weight, bias=layer.bias, in_features=layer.in_features
        )
    else:
        result = gradient_inversion(
            model,
            view.mean,
            lr=lr,
            input_shape=(truth.shape[1],),
            num_classes=num_classes,
            label_trick=attack == "iDLG",
            iterations=iterations,
            seed=seed,
            batch=inputs,
        )
        recs, loss = result.x, result.match_loss
        labels_ok = sorted(result.labels) == sorted(int(c) for c in labels)
    psnr, matched = matched_psnr(recs, truth)
    row = AggregateRow(
        n=view.contributors,
        batch=batch,
        attack=attack,
        view=label,
        inputs=inputs,
        recovered=int(np.count_nonzero(psnr >= SUCCESS_PSNR)),
        best_psnr=float(np.max(psnr)),
        median_psnr=float(np.median(psnr)),
        match_loss=loss,
        labels_correct=labels_ok,
        seconds=time.perf_counter() - started,
    )
    return row, matched


class AggregateAttacks:
    """Every attack of :data:`AGGREGATE_ATTACKS` on the aggregate of real prg sessions, for
    each n of ``aggregate_groups`` and B of ``aggregate_batches``; the control (uniform words
    read as an aggregate) at n = ``participants``, B = 1. Per (n, B), one more outcome
    (:data:`BEST`) names the attack that recovered most, and whether the decoded aggregate
    was the ring sum of the members' updates."""

    name = "aggregate"
    guarantee = (
        "none: the aggregate is revealed by design — some attack reads an input from the sum "
        "of two samples (the leak is there), and none reads one from uniform words"
    )
    adversary = "an honest-but-curious server holding the sum it decoded, the model, lr, n, B"

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        config = context.config
        return [
            outcome
            for n in config.aggregate_groups
            for batch in config.aggregate_batches
            for outcome in self._session(context, n, batch)
        ]

    def _session(self, context: AttackContext, n: int, batch: int) -> list[AttackOutcome]:
        config, v = context.config, context.victims
        inputs = n * batch
        context.say(f"the aggregate: a real prg session of {n} members with {batch} sample(s) each")
        xs, ys = v.pool_x[:inputs], v.pool_y[:inputs]
        run = record_aggregate(
            v.model, xs, ys, 10, members=n, lr=config.lr, crypto_seed=config.crypto_seed
        )
        view = aggregate_view(run)
        exact = bool(
            np.array_equal(view.words, ring_sum([run.truth[p][0] for p in run.participants]))
        )
        views = [(REAL_AGGREGATE, view)]
        if n == config.participants and batch == 1:
            rng = np.random.default_rng(config.seed + 7)
            views.append((CONTROL, uniform_aggregate(view.params, view.mean.size, n, rng)))
        outcomes = []
        for label, seen in views:
            for attack in AGGREGATE_ATTACKS:
                row, matched = attack_aggregate(
                    seen,
                    attack,
                    model=v.model,
                    layer=v.layer,
                    lr=config.lr,
                    batch=batch,
                    num_classes=10,
                    truths=xs,
                    labels=[int(c) for c in ys],
                    iterations=config.aggregate_iterations,
                    seed=config.seed + inputs,
                    label=label,
                )
                grid = {}
                if label == REAL_AGGREGATE and n == config.participants and batch == 1:
                    grid = {f"{attack} aggregate": {p: matched[p - 1] for p in range(1, n + 1)}}
                outcomes.append(_outcome(row, grid))
        return [*outcomes, _best(outcomes, exact)]


def _outcome(row: AggregateRow, images: dict[str, dict[int, np.ndarray]]) -> AttackOutcome:
    return AttackOutcome(
        row.attack,
        f"{row.view} n={row.n} B={row.batch}",
        row.recovered > 0,
        False if row.view == CONTROL else None,
        target="the aggregate",
        detail=f"{row.recovered} of {row.inputs} inputs at PSNR >= {SUCCESS_PSNR:g} dB",
        measured=dataclasses.asdict(row),
        images=images,
    )


def _best(outcomes: list[AttackOutcome], exact: bool) -> AttackOutcome:
    """The attack that recovered most inputs from the real aggregate (the higher best PSNR
    on a tie); it must recover one from two samples (the leak the page documents)."""
    real = [o.measured for o in outcomes if o.measured["view"] == REAL_AGGREGATE]
    top = max(real, key=lambda r: (r["recovered"], r["best_psnr"]))
    return AttackOutcome(
        BEST,
        f"{REAL_AGGREGATE} n={top['n']} B={top['batch']}",
        top["recovered"] > 0,
        True if top["inputs"] == 2 else None,
        target="the aggregate",
        detail=f"{top['attack']} recovered {top['recovered']} of {top['inputs']}",
        measured={
            "n": top["n"],
            "batch": top["batch"],
            "by": top["attack"],
            "recovered": top["recovered"],
            "inputs": top["inputs"],
            "best_psnr": top["best_psnr"],
            "ring_sum_exact": exact,
        },
    )
