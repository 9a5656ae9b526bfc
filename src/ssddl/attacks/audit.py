"""The privacy audit: every published attack against exactly what the server (and its
colluders) received in real runs, as tables, a PNG grid and one JSON summary.

1. *Input recovery* — n participants, one digits sample each, one plain SGD step on a small
   sigmoid network; one real session per mode (``plain``, ``prg``, ``explicit``,
   ``shamir``) plus DSSGD's sparse uploads. The first-layer attack runs on every member's
   upload as the server received it. Scored against the true input (in [0, 1]) after
   clipping to [0, 1]: max abs error, MSE, PSNR; *success* = PSNR ≥ 30 dB. The statistic
   for "no better than a random guess": ``p_sim``, the fraction of simulated views (uniform
   words — a view that carries nothing) on which the same attack scores a mean MSE at most
   the real one's; the real view gives nothing when ``p_sim ≥ 1e-4``. The expected MSE of
   a uniform random guess is listed beside it.
2. *Gradient inversion* — DLG and iDLG on the plain view and on each SSDDL server view.
3. *The aggregate* — what secure aggregation does not hide: batch DLG, iDLG and the
   first-layer attack on the sum the server decodes in real ``prg`` sessions of n members
   with B samples each (:mod:`ssddl.attacks.aggregate`), with uniform words as the control.
4. *Coalitions* — :func:`ssddl.attacks.coalition.coalition_experiment` per secure mode.
5. *Server misbehaviour* — :func:`ssddl.attacks.server.run_server_attacks`.
6. *Phong's shared key* — one colluder's key decrypts every other participant.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssddl.attacks.aggregate import (
    AGGREGATE_ATTACKS,
    AggregateRow,
    aggregate_view,
    attack_aggregate,
    record_aggregate,
    uniform_aggregate,
)
from ssddl.attacks.baseline_views import dssgd_uploads, shared_key_attack, sparse_as_seen
from ssddl.attacks.coalition import ALPHA, CoalitionRow, coalition_experiment
from ssddl.attacks.dlg import gradient_inversion
from ssddl.attacks.inversion import (
    SUCCESS_PSNR,
    first_layer_recovery,
    score,
    simulated_words,
    update_as_seen,
    words_as_update,
)
from ssddl.attacks.target import FirstLayer, SmallNet, first_layer, single_sample_trainer
from ssddl.attacks.views import RecordedRun, record_run
from ssddl.baselines.dssgd import DSSGDConfig
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import ring_sum
from ssddl.learning import load_digits, model_to_vector
from ssddl.modes import secure_modes
from ssddl.protocol import ProtocolConfig, SessionParams

__all__ = ["AuditConfig", "AuditReport", "run_audit"]

SSDDL_MODES = secure_modes()  #: every secure mode of the catalogue (the scheme registry's)
SCHEMES = ("plain", "dssgd", *SSDDL_MODES)
REAL_AGGREGATE = "prg aggregate"  #: the view label of the real aggregate's rows
CONTROL = "uniform words"  #: the control's: uniform ring words read as an aggregate
MAX_AGGREGATE_INPUTS = 64  #: n·B at most (the dummies of batch DLG grow with it)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class AuditConfig:
    """How big the audit is. ``quick`` is the ≤ 2-minute version; ``crypto_seed`` (32 bytes,
    tests only) derives keys, masks and shares from a seed."""

    participants: int = 8
    lr: float = 0.1
    dlg_iterations: int = 300
    dlg_members: int = 8
    coalition_n: int = 5
    coalition_size: int = 4000
    simulations: int = 50_000  #: simulated views for p_sim (its resolution is 1/simulations)
    theta_u: float = 0.1
    aggregate_groups: tuple[int, ...] = (2, 4, 8, 16)  #: n of the aggregate attacks
    aggregate_batches: tuple[int, ...] = (1, 2)  #: B, samples per member
    aggregate_iterations: int = 2000  #: L-BFGS iterations of batch DLG / iDLG
    seed: int = 0
    crypto_seed: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "participants",
            "dlg_iterations",
            "coalition_size",
            "simulations",
            "aggregate_iterations",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"AuditConfig.{name} must be an int >= 1, got {value!r}")
        for name, low in (("aggregate_groups", 2), ("aggregate_batches", 1)):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise ConfigurationError(f"AuditConfig.{name} must be a non-empty tuple of ints")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in values):
                raise ConfigurationError(
                    f"AuditConfig.{name} must hold ints >= {low}, got {values!r}"
                )
        if max(self.aggregate_groups) * max(self.aggregate_batches) > MAX_AGGREGATE_INPUTS:
            raise ConfigurationError(
                f"AuditConfig: n·B up to {MAX_AGGREGATE_INPUTS} samples in one aggregate; "
                "lower aggregate_groups or aggregate_batches"
            )
        if self.participants < 2:
            raise ConfigurationError("AuditConfig.participants must be >= 2 (a group)")
        if self.coalition_n < 3:
            raise ConfigurationError("AuditConfig.coalition_n must be >= 3")
        if self.crypto_seed is not None and len(self.crypto_seed) != 32:
            raise ConfigurationError("AuditConfig.crypto_seed must be 32 bytes or None")

    @classmethod
    def quick(cls, **overrides: Any) -> AuditConfig:
        base: dict[str, Any] = {
            "participants": 4,
            "dlg_iterations": 100,
            "dlg_members": 2,
            "coalition_size": 1500,
            "simulations": 20_000,
            "aggregate_groups": (2, 4, 8),
            "aggregate_iterations": 300,
        }
        return cls(**(base | overrides))


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
            "psnr": _finite(self.psnr),
            "random_guess_mse": self.random_guess_mse,
        }


@dataclass
class AuditReport:
    """Everything the audit measured, and the images for the grid."""

    config: AuditConfig
    recovery: list[RecoveryRow] = field(default_factory=list)
    p_sim: dict[str, float] = field(default_factory=dict)  #: scheme -> simulated-view p
    coalition: list[CoalitionRow] = field(default_factory=list)
    #: every attack at a stated bound and one beyond (``AttackRow.as_dict``)
    server_attacks: list[dict[str, Any]] = field(default_factory=list)
    phong: dict[str, Any] = field(default_factory=dict)
    aggregate: list[AggregateRow] = field(default_factory=list)
    aggregate_exact: bool = True  #: every decoded aggregate was the ring sum of the updates
    notes: list[str] = field(default_factory=list)
    images: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0

    # -- summaries -------------------------------------------------------------------------

    def input_recovery(self) -> dict[str, float]:
        """Scheme -> max abs error of the first-layer reconstruction over its members."""
        out: dict[str, float] = {}
        for row in self.recovery:
            if row.attack == "first-layer":
                out[row.scheme] = max(out.get(row.scheme, 0.0), row.max_abs_error)
        return out

    def aggregate_best(self) -> list[dict[str, Any]]:
        """Per (n, B) on the real aggregate: the attack that recovered most inputs (the
        higher best PSNR on a tie) — one row each."""
        best: dict[tuple[int, int], AggregateRow] = {}
        for row in self.aggregate:
            if row.view != REAL_AGGREGATE:
                continue
            key = (row.n, row.batch)
            held = best.get(key)
            if held is None or (row.recovered, row.best_psnr) > (held.recovered, held.best_psnr):
                best[key] = row
        return [
            {
                "n": r.n,
                "batch": r.batch,
                "attack": r.attack,
                "recovered": r.recovered,
                "inputs": r.inputs,
                "best_psnr": r.best_psnr,
            }
            for _, r in sorted(best.items())
        ]

    def coalition_recovered(self, mode: str = "prg") -> dict[str, bool]:
        return {str(r.c): r.recovered for r in self.coalition if r.mode == mode}

    def summary(self) -> dict[str, Any]:
        """The JSON object ``ssddl audit --json`` prints."""
        return {
            "input_recovery": self.input_recovery(),
            "coalition": self.coalition_recovered("prg"),
            "coalition_by_mode": {m: self.coalition_recovered(m) for m in SSDDL_MODES},
            "server_attacks": self.server_attacks,
            "model_inconsistency": [
                a for a in self.server_attacks if a["attack"].startswith("model_inconsistency")
            ],
            "random_view_p": self.p_sim,
            "gradient_inversion": {
                f"{r.attack}/{r.scheme}": max(
                    x.max_abs_error
                    for x in self.recovery
                    if x.attack == r.attack and x.scheme == r.scheme
                )
                for r in self.recovery
                if r.attack in ("DLG", "iDLG")
            },
            "phong": self.phong,
            "aggregate_recovery": [r.as_dict() for r in self.aggregate],
            "aggregate_best": self.aggregate_best(),
            "aggregate_is_plaintext_sum": self.aggregate_exact,
            "coalition_detail": [r.as_dict() for r in self.coalition],
            "recovery_detail": [r.as_dict() for r in self.recovery],
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }

    def json_summary(self) -> dict[str, Any]:
        """:meth:`summary` with every non-finite number as null (strict JSON)."""
        clean: dict[str, Any] = json.loads(
            json.dumps(self.summary(), default=_json_default), parse_constant=lambda _c: None
        )
        return clean

    def failed_claims(self) -> list[str]:
        """Every privacy claim the measurements contradict (empty: all held)."""
        return [
            *self._upload_claims(),
            *self._coalition_claims(),
            *self._server_claims(),
            *self._aggregate_claims(),
        ]

    def _upload_claims(self) -> list[str]:
        """Each member's upload: exact recovery on plain, nothing on an SSDDL mode."""
        failed: list[str] = []
        if self.input_recovery().get("plain", 1.0) >= 1e-4:
            failed.append("first-layer recovery is not exact on the plain view")
        failed += [
            f"first-layer recovery beats a random view on {mode}"
            for mode in SSDDL_MODES
            if self.p_sim.get(mode, 1.0) < ALPHA
        ]
        for row in self.recovery:
            if row.scheme in SSDDL_MODES and row.success:
                failed.append(
                    f"{row.attack} reconstructed member {row.participant} in {row.scheme}"
                )
            if row.attack in ("DLG", "iDLG") and row.scheme == "plain" and not row.success:
                failed.append(f"{row.attack} failed on the plain view of member {row.participant}")
        return failed

    def _coalition_claims(self) -> list[str]:
        """Nothing learned within the stated bound; the largest coalition recovers."""
        failed: list[str] = []
        for c in self.coalition:
            last = max(r.c for r in self.coalition if r.mode == c.mode)
            if c.c <= c.bound and (c.recovered or not c.indistinguishable):
                failed.append(f"{c.mode}: a coalition of c={c.c} learned about the target")
            if c.c == last and not c.recovered:
                failed.append(f"{c.mode}: c={c.c} did not recover the target (bound not tight)")
        return failed

    def _server_claims(self) -> list[str]:
        """Every stated bound held on both sides; Phong's shared key decrypted everyone."""
        failed = [
            f"{a['attack']} on {a['config']} with {a['colluders']} colluders "
            f"{'recovered a change' if a['recovered'] else 'failed beyond the bound'} "
            f"(stated bound {a['bound']})"
            for a in self.server_attacks
            if not a["holds"]
        ]
        if self.phong and not self.phong["all_decrypted"]:
            failed.append("Phong's shared key did not decrypt every other participant")
        return failed

    def _aggregate_claims(self) -> list[str]:
        """The decoded aggregate is the exact sum; the control gives nothing; the leak is
        there (some attack reads an input from two samples' sum)."""
        failed: list[str] = []
        if not self.aggregate_exact:
            failed.append("a decoded aggregate is not the ring sum of the members' updates")
        failed += [
            f"{agg.attack} recovered an input from {agg.view} (the control)"
            for agg in self.aggregate
            if agg.view != REAL_AGGREGATE and agg.recovered
        ]
        smallest = [r for r in self.aggregate if r.view == REAL_AGGREGATE and r.inputs == 2]
        if smallest and not any(r.recovered for r in smallest):
            failed.append("no attack recovered an input from a prg aggregate of two samples")
        return failed

    def markdown(self) -> str:
        return "\n".join(_markdown(self))

    def write(self, out: Path) -> list[Path]:
        """``report.md``, ``audit.json`` and ``reconstructions.png`` in ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "report.md", out / "audit.json", out / "reconstructions.png"]
        paths[0].write_text(self.markdown() + "\n", encoding="utf-8")
        paths[1].write_text(json.dumps(self.summary(), indent=2, default=_json_default) + "\n")
        _grid(self.images, paths[2])
        return paths


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Victims:
    xs: np.ndarray
    ys: np.ndarray
    model: SmallNet
    initial: np.ndarray
    layer: FirstLayer
    pool_x: np.ndarray  #: the samples the aggregate attacks draw from (xs first)
    pool_y: np.ndarray

    def trainers(self, lr: float) -> dict[int, Any]:
        return {
            p: single_sample_trainer(self.model, self.xs[p - 1], int(self.ys[p - 1]), 10, lr=lr)
            for p in range(1, len(self.xs) + 1)
        }


def _victims(config: AuditConfig) -> _Victims:
    split = load_digits(seed=config.seed)
    xs, ys = split.train.x, split.train.y
    chosen: list[int] = []
    for label in range(10):  # distinct digits first, so the grid reads at a glance
        chosen += [int(i) for i in np.flatnonzero(ys == label)[:1]]
    index = [*chosen, *range(len(ys))]
    pool = max(config.participants, max(config.aggregate_groups) * max(config.aggregate_batches))
    picked = list(dict.fromkeys(index))[:pool]
    n = config.participants
    model = SmallNet.seeded(64, 10, seed=config.seed)
    return _Victims(
        xs[picked[:n]],
        ys[picked[:n]],
        model,
        model_to_vector(model),
        first_layer(model),
        xs[picked],
        ys[picked],
    )


def _guess_mse(truth: np.ndarray) -> float:
    t = np.asarray(truth, dtype=np.float64)
    return float(np.mean(t * t - t + 1.0 / 3.0))


def _first_layer_row(
    scheme: str, pid: int, update: np.ndarray, v: _Victims, known: np.ndarray | None = None
) -> tuple[RecoveryRow, np.ndarray]:
    layer = v.layer
    rec = first_layer_recovery(
        update, weight=layer.weight, bias=layer.bias, in_features=layer.in_features, known=known
    )
    truth = v.xs[pid - 1]
    s = score(rec.x, truth)
    row = RecoveryRow("first-layer", scheme, pid, s.max_abs_error, s.mse, s.psnr, _guess_mse(truth))
    return row, rec.x


def _simulated_p(params: SessionParams, v: _Victims, real_mse: float, draws: int) -> float:
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


def _session(mode: str, v: _Victims, config: AuditConfig) -> RecordedRun:
    protocol = ProtocolConfig(mode=mode, rounds=1, weighted=False)
    return record_run(protocol, v.trainers(config.lr), v.initial, crypto_seed=config.crypto_seed)


def _inversions(
    report: AuditReport,
    scheme: str,
    uploads: Mapping[int, np.ndarray],
    v: _Victims,
    config: AuditConfig,
) -> None:
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
            report.recovery.append(
                RecoveryRow(attack, scheme, pid, s.max_abs_error, s.mse, s.psnr, _guess_mse(truth))
            )
            if scheme in ("plain", "prg"):
                report.images.setdefault(f"{attack} {scheme}", {})[pid] = result.x


def _input_recovery(report: AuditReport, v: _Victims, config: AuditConfig, say: Progress) -> None:
    report.images["true input"] = {p: v.xs[p - 1] for p in range(1, len(v.xs) + 1)}
    for mode in ("plain", *SSDDL_MODES):
        say(f"input recovery: a real {mode} session of {len(v.xs)} participants")
        run = _session(mode, v, config)
        uploads = {
            p: update_as_seen(m, run.params) for p, m in sorted(run.server.uploads(0).items())
        }
        errors = []
        for pid, update in uploads.items():
            row, image = _first_layer_row(mode, pid, update, v)
            report.recovery.append(row)
            report.images.setdefault(mode, {})[pid] = image
            errors.append(row.mse)
        if mode != "plain":
            report.p_sim[mode] = _simulated_p(
                run.params, v, float(np.mean(errors)), config.simulations
            )
        say(f"gradient inversion (DLG, iDLG) on the {mode} server view")
        _inversions(report, mode, uploads, v, config)
    for theta_u, scheme in ((config.theta_u, "dssgd"), (1.0, "dssgd(theta_u=1)")):
        say(f"input recovery: DSSGD uploads (theta_u={theta_u})")
        sparse = dssgd_uploads(v.trainers(config.lr), v.initial, DSSGDConfig(theta_u=theta_u))
        for pid, upload in sparse.items():
            dense, known = sparse_as_seen(upload)
            row, image = _first_layer_row(scheme, pid, dense, v, known)
            report.recovery.append(row)
            if scheme == "dssgd":
                report.images.setdefault(f"dssgd θu={theta_u:g}", {})[pid] = image


def _aggregate(report: AuditReport, v: _Victims, config: AuditConfig, say: Progress) -> None:
    """Every attack on the aggregate of real prg sessions, for each n and B; the control
    (uniform words read as an aggregate) at n = participants, B = 1."""
    for n in config.aggregate_groups:
        for batch in config.aggregate_batches:
            inputs = n * batch
            say(f"the aggregate: a real prg session of {n} members with {batch} sample(s) each")
            xs, ys = v.pool_x[:inputs], v.pool_y[:inputs]
            run = record_aggregate(
                v.model, xs, ys, 10, members=n, lr=config.lr, crypto_seed=config.crypto_seed
            )
            view = aggregate_view(run)
            truth = ring_sum([run.truth[p][0] for p in run.participants])
            report.aggregate_exact &= bool(np.array_equal(view.words, truth))
            views = [(REAL_AGGREGATE, view)]
            if n == config.participants and batch == 1:
                rng = np.random.default_rng(config.seed + 7)
                views.append((CONTROL, uniform_aggregate(view.params, view.mean.size, n, rng)))
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
                    report.aggregate.append(row)
                    if label == REAL_AGGREGATE and n == config.participants and batch == 1:
                        name = f"{attack} aggregate"  # the grid row; prg, B = 1
                        report.images[name] = {p: matched[p - 1] for p in range(1, n + 1)}


def _coalitions(report: AuditReport, config: AuditConfig, say: Progress) -> None:
    for mode in SSDDL_MODES:
        say(f"coalitions: server + c colluders in {mode} (n={config.coalition_n})")
        report.coalition += coalition_experiment(
            mode, n=config.coalition_n, size=config.coalition_size, crypto_seed=config.crypto_seed
        )


def _server_attacks(report: AuditReport, quick: bool, say: Progress) -> None:
    try:
        lying: Any = importlib.import_module("ssddl.attacks.server")
    except ImportError:
        report.notes.append("ssddl.attacks.server is not available: server attacks not run")
        return
    say("server misbehaviour and coalitions at each stated bound and one beyond it")
    report.server_attacks = [row.as_dict() for row in lying.run_server_attacks(quick)]


def _phong(report: AuditReport, v: _Victims, config: AuditConfig, say: Progress) -> None:
    try:
        from ssddl.baselines.he import PaillierBackend
        from ssddl.baselines.phong import phong_max_summands
        from ssddl.hazmat.codec import FixedPoint

        backend = PaillierBackend(
            FixedPoint(64, 32, 4.0), max_summands=phong_max_summands(len(v.xs), 1)
        )
    except (ImportError, ConfigurationError) as exc:
        report.notes.append(f"Phong attack not run: {exc} (install ssddl[he])")
        return
    say("Phong et al.: the server with one participant's copy of the shared key")
    victims = shared_key_attack(v.trainers(config.lr), v.initial, backend, colluder=1)
    for pid, victim in victims.items():
        row, image = _first_layer_row("phong", pid, victim.decrypted, v)
        report.recovery.append(
            RecoveryRow(
                "phong+first-layer",
                "phong",
                pid,
                row.max_abs_error,
                row.mse,
                row.psnr,
                row.random_guess_mse,
            )
        )
        report.images.setdefault("phong (decrypted)", {})[pid] = image
    report.phong = {
        "colluder": 1,
        "decrypted": sorted(victims),
        "max_abs_error_of_decryption": max(v.max_abs_error for v in victims.values()),
        "all_decrypted": all(v.max_abs_error < 1e-6 for v in victims.values()),
    }


def run_audit(
    config: AuditConfig | None = None, *, quick: bool = False, progress: Progress | None = None
) -> AuditReport:
    """Run every attack of the audit; ``progress`` receives one line per step."""
    config = config if config is not None else (AuditConfig.quick() if quick else AuditConfig())
    say: Progress = progress if progress is not None else (lambda _line: None)
    started = time.perf_counter()
    report = AuditReport(config)
    victims = _victims(config)
    _input_recovery(report, victims, config, say)
    _aggregate(report, victims, config, say)
    _coalitions(report, config, say)
    _server_attacks(report, quick, say)
    _phong(report, victims, config, say)
    report.seconds = time.perf_counter() - started
    return report


# -- report ----------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}"


def _short(text: str, limit: int = 90) -> str:
    """One table cell: no pipes or newlines, at most ``limit`` characters."""
    flat = " ".join(str(text).replace("|", "/").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _markdown(report: AuditReport) -> list[str]:
    lines = [
        "# Privacy audit",
        "",
        f"{report.config.participants} participants, one digits sample each (inputs in "
        f"[0, 1]), one SGD step (lr={report.config.lr}) on a 64-32-10 sigmoid network; "
        f"success = PSNR >= {SUCCESS_PSNR:g} dB. {report.seconds:.1f} s.",
        "",
        "## Input recovery from what the server received",
        "",
        "| attack | scheme | success | max abs error | MSE | PSNR (dB) | random-guess MSE |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[RecoveryRow]] = {}
    for row in report.recovery:
        groups.setdefault((row.attack, row.scheme), []).append(row)
    for (attack, scheme), rows in groups.items():
        ok = sum(r.success for r in rows)
        lines.append(
            f"| {attack} | {scheme} | {ok}/{len(rows)} | "
            f"{_fmt(max(r.max_abs_error for r in rows))} | "
            f"{_fmt(float(np.mean([r.mse for r in rows])))} | "
            f"{_fmt(float(np.mean([r.psnr for r in rows])))} | "
            f"{_fmt(float(np.mean([r.random_guess_mse for r in rows])))} |"
        )
    lines += [
        "",
        "No better than random: `p_sim` is the fraction of simulated views (uniform words, "
        "which carry nothing) on which the first-layer attack reaches a mean MSE at most the "
        f"real one's; the real view gives nothing usable when p_sim >= {ALPHA:g}.",
        "",
        "| scheme | p_sim | no better than random |",
        "|---|---|---|",
    ]
    lines += [
        f"| {m} | {_fmt(p)} | {'yes' if p >= ALPHA else 'NO'} |" for m, p in report.p_sim.items()
    ]
    lines += _aggregate_markdown(report)
    lines += [
        "",
        "## Coalitions: the server plus c colluders against member 1",
        "",
        "Two runs: member 1's input differs, the honest members' sum does not. `uniform p`: KS "
        "test that the coalition's estimate is uniform over the ring; `same p`: two-sample KS "
        "test between the runs; `upload p`: the masked upload alone, uniform.",
        "",
        "| mode | c | stated bound | recovered | max abs error | upload p | uniform p | same p "
        "| indistinguishable |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.mode} | {r.c} | {r.bound} | {'yes' if r.recovered else 'no'} | "
        f"{_fmt(r.max_abs_error)} | {_fmt(r.upload_uniform_p)} | {_fmt(r.estimate_uniform_p)} | "
        f"{_fmt(r.same_p)} | {'yes' if r.indistinguishable else 'no'} |"
        for r in report.coalition
    ]
    lines += ["", "## Stated bounds, attacked at the bound and one beyond it", ""]
    if report.server_attacks:
        lines += [
            "Each attack plays a server (honest-but-curious, or one that lies) with a coalition "
            "of colluders against the real participants. At or below the stated bound it must "
            "fail; one colluder beyond it is the control that shows the attack is real.",
            "",
            "| configuration | server | attack | colluders | bound | recovered | stopped by | "
            "as stated |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['config']} | {r['server']} | {r['attack']} | {r['colluders']} | "
            f"{'none' if r['bound'] is None else r['bound']} | "
            f"{'YES' if r['recovered'] else 'no'} | {_short(r['stopped_by'] or '—', 40)} | "
            f"{'yes' if r['holds'] else '**NO**'} |"
            for r in report.server_attacks
        ]
    lines += ["", "## Phong et al.: one colluder's copy of the shared key", ""]
    if report.phong:
        lines.append(
            f"The server, given participant {report.phong['colluder']}'s key, decrypted the "
            f"uploads of participants {report.phong['decrypted']} (max abs error of the "
            f"decryption {_fmt(report.phong['max_abs_error_of_decryption'])}); the "
            "`phong+first-layer` rows above read their inputs back."
        )
    if report.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in report.notes]]
    lines += ["", "![true inputs and reconstructions](reconstructions.png)"]
    return lines


def _aggregate_markdown(report: AuditReport) -> list[str]:
    if not report.aggregate:
        return []
    lines = [
        "",
        "## What secure aggregation does not hide: the aggregate",
        "",
        "Secure aggregation hides who contributed what (the rows above: each member's upload "
        "is noise). The server still decodes the sum of the group's changes, by design, and "
        "with one local SGD step the mean change of n members holding B samples each is one "
        "SGD step on all n·B samples: a batch gradient. Batch DLG / iDLG (n·B dummies) and "
        "the first-layer ratio at every neuron, run on the aggregate the server decoded in "
        "a real prg session; each input is matched one-to-one to a reconstruction and counts "
        f"as recovered at PSNR >= {SUCCESS_PSNR:g} dB. The control reads uniform ring words as "
        "an aggregate. Distributed differential privacy is the remedy, not secure "
        "aggregation. Every decoded aggregate equalled the ring sum of the members' updates: "
        f"{'yes' if report.aggregate_exact else 'NO'}.",
        "",
        "| n | B | inputs | recovered | by | best PSNR (dB) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {b['n']} | {b['batch']} | {b['inputs']} | **{b['recovered']}/{b['inputs']}** | "
        f"{b['attack']} | {_fmt(b['best_psnr'])} |"
        for b in report.aggregate_best()
    ]
    lines += [
        "",
        "| n | B | view | attack | recovered | best PSNR | median PSNR | labels right "
        "| match loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.n} | {r.batch} | {r.view} | {r.attack} | {r.recovered}/{r.inputs} | "
        f"{_fmt(r.best_psnr)} | {_fmt(r.median_psnr)} | "
        f"{'—' if r.labels_correct is None else ('yes' if r.labels_correct else 'no')} | "
        f"{'—' if r.match_loss is None else _fmt(r.match_loss)} |"
        for r in report.aggregate
    ]
    return lines


def _grid(images: Mapping[str, Mapping[int, np.ndarray]], path: Path) -> None:
    """Rows: the true inputs, then each attack's reconstructions; columns: participants."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = list(images)
    cols = sorted({p for row in images.values() for p in row})
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(1.1 * len(cols) + 2.2, 1.1 * len(rows)), squeeze=False
    )
    for i, name in enumerate(rows):
        for j, pid in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            image = images[name].get(pid)
            if image is None:  # hide the frame, keep the axis: it may carry the row's name
                for spine in ax.spines.values():
                    spine.set_visible(False)
            else:
                side = math.isqrt(image.size)
                ax.imshow(image.reshape(side, side), cmap="gray", vmin=0.0, vmax=1.0)
            if j == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
            if i == 0:
                ax.set_title(f"#{pid}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
