"""The attacks on each member's upload, as the server received it in a real session.

* :class:`FirstLayerOnUploads` — first-layer input recovery
  (:func:`ssddl.attacks.inversion.first_layer_recovery`) on every member's upload in
  ``plain`` and each SSDDL mode, and on DSSGD's sparse uploads; for each SSDDL mode, ``p_sim``
  against views that carry nothing.
* :class:`InversionOnUploads` — DLG and iDLG (:func:`ssddl.attacks.dlg.gradient_inversion`)
  on the same uploads.
* :class:`PhongSharedKey` — Phong et al.'s uploads, decrypted with one colluder's copy of
  the shared key (:func:`ssddl.attacks.baseline_views.shared_key_attack`), then read back by
  the first-layer attack.

Scored against the true input (in [0, 1]) after clipping to [0, 1]; a reconstruction
*succeeds* at PSNR ≥ :data:`~ssddl.attacks.inversion.SUCCESS_PSNR`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssddl.attacks.attack import SSDDL_MODES, AttackContext, AttackOutcome
from ssddl.attacks.baseline_views import dssgd_uploads, shared_key_attack, sparse_as_seen
from ssddl.attacks.coalition import ALPHA
from ssddl.attacks.dlg import gradient_inversion
from ssddl.attacks.inversion import (
    SUCCESS_PSNR,
    first_layer_recovery,
    score,
    simulated_words,
    update_as_seen,
    words_as_update,
)
from ssddl.attacks.target import Victims
from ssddl.baselines.dssgd import DSSGDConfig
from ssddl.exceptions import ConfigurationError
from ssddl.protocol import SessionParams

__all__ = [
    "FirstLayerOnUploads",
    "InversionOnUploads",
    "PhongSharedKey",
    "RecoveryRow",
    "first_layer_row",
    "simulated_p",
]


@dataclass(frozen=True)
class RecoveryRow:
    """One attack on one member's upload in one scheme."""

    attack: str  #: "first-layer", "DLG", "iDLG", "phong+first-layer"
    scheme: str
    participant: int
    max_abs_error: float
    mse: float
    psnr: float
    random_guess_mse: float  #: expected MSE of a uniform random guess of this input

    @property
    def success(self) -> bool:
        return self.psnr >= SUCCESS_PSNR

    def as_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "scheme": self.scheme,
            "participant": self.participant,
            "success": self.success,
            "max_abs_error": self.max_abs_error,
            "mse": self.mse,
            "psnr": self.psnr if np.isfinite(self.psnr) else None,
            "random_guess_mse": self.random_guess_mse,
        }

    def outcome(
        self, expected: bool | None, images: Mapping[str, Mapping[int, np.ndarray]] | None = None
    ) -> AttackOutcome:
        """This row as an :class:`AttackOutcome` (its fields in ``measured``)."""
        return AttackOutcome(
            self.attack,
            self.scheme,
            self.success,
            expected,
            target=f"member {self.participant}",
            measured=dataclasses.asdict(self),
            images=images or {},
        )


def _guess_mse(truth: np.ndarray) -> float:
    t = np.asarray(truth, dtype=np.float64)
    return float(np.mean(t * t - t + 1.0 / 3.0))


def first_layer_row(
    scheme: str, pid: int, update: np.ndarray, v: Victims, known: np.ndarray | None = None
) -> tuple[RecoveryRow, np.ndarray]:
    """The first-layer attack on member ``pid``'s update as seen, scored: (row, image)."""
    layer = v.layer
    rec = first_layer_recovery(
        update, weight=layer.weight, bias=layer.bias, in_features=layer.in_features, known=known
    )
    truth = v.xs[pid - 1]
    s = score(rec.x, truth)
    row = RecoveryRow("first-layer", scheme, pid, s.max_abs_error, s.mse, s.psnr, _guess_mse(truth))
    return row, rec.x


def simulated_p(params: SessionParams, v: Victims, real_mse: float, draws: int) -> float:
    """P(mean MSE of the attack on simulated uniform views <= the real mean MSE).

    The attack reads the first layer's biases and then one weight row, the strongest
    neuron's; in a uniform view that row is independent of the biases, so each draw
    simulates the biases and one row (all draws at once)."""
    rng = np.random.default_rng(2024)
    members, inputs = v.xs.shape
    hidden = v.layer.bias.stop - v.layer.bias.start

    def uniform(shape: tuple[int, ...]) -> np.ndarray:
        words = simulated_words(params, int(np.prod(shape)) + 1, rng)  # + the count word
        return words_as_update(words, params).reshape(shape)

    hits = 0
    for start in range(0, draws, 5000):  # chunks keep the memory small
        chunk = min(5000, draws - start)
        biases = uniform((chunk, members, hidden))
        rows = uniform((chunk, members, inputs))
        best = np.argmax(np.abs(biases), axis=-1)[..., None]
        pivot = np.take_along_axis(biases, best, axis=-1)
        with np.errstate(all="ignore"):
            ratio = np.nan_to_num(rows / pivot, nan=0.0, posinf=1.0, neginf=0.0)
        mse = np.mean((np.clip(ratio, 0.0, 1.0) - v.xs[None, :, :]) ** 2, axis=(1, 2))
        hits += int(np.count_nonzero(mse <= real_mse))
    return float((hits + 1) / (draws + 1))


def uploads_as_seen(context: AttackContext, mode: str) -> dict[int, np.ndarray]:
    """Each member's upload in the recorded ``mode`` session, read as an update."""
    run = context.recorded(mode)
    return {p: update_as_seen(m, run.params) for p, m in sorted(run.server.uploads(0).items())}


class FirstLayerOnUploads:
    """x = ΔW_k / Δb_k on each member's upload as the server holds it."""

    name = "first-layer"
    guarantee = (
        "a member's upload in prg, explicit or shamir tells the server no more about its input "
        "than uniform words would (p_sim >= 1e-4); a plain upload gives the input exactly"
    )
    adversary = "an honest-but-curious server reading each member's upload of one SGD step"

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        v = context.victims
        outcomes: list[AttackOutcome] = []
        for mode in ("plain", *SSDDL_MODES):
            secure = mode != "plain"
            errors = []
            for pid, update in uploads_as_seen(context, mode).items():
                row, image = first_layer_row(mode, pid, update, v)
                outcomes.append(row.outcome(not secure, {mode: {pid: image}}))
                errors.append(row.mse)
            if secure:
                params = context.recorded(mode).params
                p = simulated_p(params, v, float(np.mean(errors)), context.config.simulations)
                outcomes.append(_p_sim_outcome(mode, p, float(np.mean(errors))))
        return outcomes + self._dssgd(context)

    def _dssgd(self, context: AttackContext) -> list[AttackOutcome]:
        """DSSGD's sparse uploads: the entries the server received, the rest read as 0."""
        v = context.victims
        outcomes = []
        for theta_u, scheme in ((context.config.theta_u, "dssgd"), (1.0, "dssgd(theta_u=1)")):
            context.say(f"input recovery: DSSGD uploads (theta_u={theta_u})")
            trainers = v.trainers(context.config.lr)
            sparse = dssgd_uploads(trainers, v.initial, DSSGDConfig(theta_u=theta_u))
            for pid, upload in sparse.items():
                dense, known = sparse_as_seen(upload)
                row, image = first_layer_row(scheme, pid, dense, v, known)
                grid = {f"dssgd θu={theta_u:g}": {pid: image}} if scheme == "dssgd" else {}
                outcomes.append(row.outcome(None, grid))
        return outcomes


def _p_sim_outcome(mode: str, p: float, mean_mse: float) -> AttackOutcome:
    return AttackOutcome(
        "first-layer",
        mode,
        p < ALPHA,
        False,
        target="every member, against uniform views",
        detail=f"p_sim = {p:.3g}: the share of uniform views that score at most the real one's",
        measured={"p_sim": p, "mean_mse": mean_mse},
    )


class InversionOnUploads:
    """DLG and iDLG on each member's upload, for the first ``dlg_members`` members."""

    name = "gradient-inversion"
    guarantee = (
        "DLG and iDLG recover no member's input from its upload in prg, explicit or shamir; "
        "they recover it from a plain upload"
    )
    adversary = "an honest-but-curious server that knows the model, lr and one SGD step"

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        v, config = context.victims, context.config
        outcomes = []
        for mode in ("plain", *SSDDL_MODES):
            context.say(f"gradient inversion (DLG, iDLG) on the {mode} server view")
            uploads = uploads_as_seen(context, mode)
            for pid in sorted(uploads)[: config.dlg_members]:
                truth = v.xs[pid - 1]
                for attack, trick in (("iDLG", True), ("DLG", False)):
                    result = gradient_inversion(
                        v.model,
                        uploads[pid],
                        lr=config.lr,
                        input_shape=(64,),
                        num_classes=10,
                        label_trick=trick,
                        iterations=config.dlg_iterations,
                        seed=config.seed + pid,
                    )
                    s = score(result.x, truth)
                    row = RecoveryRow(
                        attack, mode, pid, s.max_abs_error, s.mse, s.psnr, _guess_mse(truth)
                    )
                    grid = {f"{attack} {mode}": {pid: result.x}} if mode in ("plain", "prg") else {}
                    outcomes.append(row.outcome(mode == "plain", grid))
        return outcomes


class PhongSharedKey:
    """One Phong et al. round over Paillier with real ciphertexts; the server, handed the
    shared secret key by participant 1, decrypts every other participant's upload and reads
    its input back with the first-layer attack. Needs ``ssddl[he]``: without it the attack
    is not run and the report says so."""

    name = "phong-shared-key"
    guarantee = (
        "none: Phong et al. give every participant the one secret key, so the server plus one "
        "participant decrypts every other upload"
    )
    adversary = "an honest-but-curious server plus one participant's copy of the key"
    colluder = 1

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        v = context.victims
        try:
            from ssddl.baselines.he import PaillierBackend
            from ssddl.baselines.phong import phong_max_summands
            from ssddl.hazmat.codec import FixedPoint

            backend = PaillierBackend(
                FixedPoint(64, 32, 4.0), max_summands=phong_max_summands(len(v.xs), 1)
            )
        except (ImportError, ConfigurationError) as exc:
            context.note(f"Phong attack not run: {exc} (install ssddl[he])")
            return []
        context.say("Phong et al.: the server with one participant's copy of the shared key")
        trainers = v.trainers(context.config.lr)
        victims = shared_key_attack(trainers, v.initial, backend, colluder=self.colluder)
        outcomes = []
        for pid, victim in victims.items():
            outcomes.append(
                AttackOutcome(
                    self.name,
                    "phong",
                    victim.max_abs_error < 1e-6,
                    True,
                    target=f"member {pid}",
                    colluders=1,
                    detail="the upload decrypted with the colluder's key",
                    measured={"participant": pid, "max_abs_error": victim.max_abs_error},
                )
            )
            row, image = first_layer_row("phong", pid, victim.decrypted, v)
            row = dataclasses.replace(row, attack="phong+first-layer")
            outcomes.append(row.outcome(None, {"phong (decrypted)": {pid: image}}))
        return outcomes
