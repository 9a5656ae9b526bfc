"""The privacy audit: every registered attack (:mod:`ssddl.attacks.attack`) against exactly
what the server (and its colluders) received in real runs, as tables, a PNG grid and one JSON
summary.

:func:`run_audit` runs the attacks of the registry in order — the built-ins of
:mod:`ssddl.attacks.suite`, then any added with ``register_attack`` — with one shared
:class:`~ssddl.attacks.attack.AttackContext`, and collects their
:class:`~ssddl.attacks.attack.AttackOutcome` values. A claim fails where an outcome does not
hold. The built-ins:

1. *Input recovery* (``first-layer``, ``gradient-inversion``) — n participants, one digits
   sample each, one plain SGD step on a small sigmoid network; one real session per mode
   (``plain``, ``prg``, ``explicit``, ``shamir``) plus DSSGD's sparse uploads. The
   first-layer attack, DLG and iDLG run on every member's upload as the server received it.
   Scored against the true input (in [0, 1]) after clipping to [0, 1]: max abs error, MSE,
   PSNR; *success* = PSNR ≥ 30 dB. The statistic for "no better than a random guess":
   ``p_sim``, the fraction of simulated views (uniform words — a view that carries nothing)
   on which the same attack scores a mean MSE at most the real one's; the real view gives
   nothing when ``p_sim ≥ 1e-4``. The expected MSE of a uniform random guess is listed
   beside it.
2. *The aggregate* (``aggregate``) — what secure aggregation does not hide: batch DLG, iDLG
   and the first-layer attack on the sum the server decodes in real ``prg`` sessions of n
   members with B samples each (:mod:`ssddl.attacks.aggregate`), with uniform words as the
   control.
   *Distributed DP* (``dp-aggregate``, ``empirical-epsilon``) — the same attacks, and a
   same-model imprint attack, on the aggregate of real DP sessions at several ε
   (:mod:`ssddl.attacks.dp_aggregate`), and a canary test that gives an empirical lower bound
   on ε (:mod:`ssddl.attacks.canary`), which must sit at or below the accountant's.
3. *Coalitions* (``coalition``) — :func:`ssddl.attacks.coalition.coalition_experiment` per
   secure mode.
4. *Server misbehaviour* (``stated-bounds``, ``policy``, ``model-inconsistency``) —
   :mod:`ssddl.attacks.server`.
5. *Phong's shared key* (``phong-shared-key``) — one colluder's key decrypts every other
   participant.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ssddl.attacks.aggregate import BEST, AggregateRow
from ssddl.attacks.attack import (
    SSDDL_MODES,
    Attack,
    AttackContext,
    AttackOutcome,
    AuditConfig,
    Progress,
    attack_names,
    get_attack,
)
from ssddl.attacks.coalition import ALPHA, CoalitionRow
from ssddl.attacks.inversion import SUCCESS_PSNR
from ssddl.attacks.server import AttackRow
from ssddl.attacks.suite import BUILT_IN
from ssddl.attacks.uploads import RecoveryRow

__all__ = ["AuditConfig", "AuditReport", "run_audit"]

SCHEMES = ("plain", "dssgd", *SSDDL_MODES)
#: the attacks whose rows make ``server_attacks``
SERVER_ATTACKS = ("stated-bounds", "policy", "model-inconsistency")
#: the order of the input-recovery table: schemes, then attacks
_SCHEME_ORDER = ("plain", *SSDDL_MODES, "dssgd", "dssgd(theta_u=1)", "phong")
_ATTACK_ORDER = ("first-layer", "iDLG", "DLG", "phong+first-layer")
R = TypeVar("R")


def _rows(outcomes: Iterable[AttackOutcome], kind: type[R]) -> list[R]:
    """The attack's own rows back from the outcomes that carry all of their fields."""
    names = [f.name for f in fields(kind)]  # type: ignore[arg-type]
    return [
        kind(**{name: o.measured[name] for name in names})
        for o in outcomes
        if all(name in o.measured for name in names)
    ]


@dataclass
class AuditReport:
    """Every attack's outcomes (``results``: attack name -> outcomes, in the order run),
    the notes of what could not run, and the time taken. The JSON keys of earlier audits
    are views of the outcomes (:meth:`summary`)."""

    config: AuditConfig
    results: dict[str, list[AttackOutcome]] = field(default_factory=dict)
    guarantees: dict[str, str] = field(default_factory=dict)  #: attack -> what it tests
    notes: list[str] = field(default_factory=list)
    true_inputs: dict[int, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0

    # -- views of the outcomes -------------------------------------------------------------

    @property
    def outcomes(self) -> list[AttackOutcome]:
        """Every outcome, in the order the attacks ran."""
        return [o for found in self.results.values() for o in found]

    def _of(self, *names: str) -> list[AttackOutcome]:
        return [o for name in names for o in self.results.get(name, ())]

    @property
    def recovery(self) -> list[RecoveryRow]:
        """Each attack on one member's upload, in the order of the input-recovery table."""
        rows = _rows(self._of("first-layer", "gradient-inversion", "phong-shared-key"), RecoveryRow)

        def order(row: RecoveryRow) -> tuple[int, int]:
            s, a = _SCHEME_ORDER, _ATTACK_ORDER
            return (
                s.index(row.scheme) if row.scheme in s else len(s),
                a.index(row.attack) if row.attack in a else len(a),
            )

        return sorted(rows, key=order)

    @property
    def p_sim(self) -> dict[str, float]:
        """Scheme -> the first-layer attack's p against simulated uniform views."""
        return {
            o.setting: o.measured["p_sim"] for o in self._of("first-layer") if "p_sim" in o.measured
        }

    @property
    def coalition(self) -> list[CoalitionRow]:
        return _rows(self._of("coalition"), CoalitionRow)

    @property
    def server_attacks(self) -> list[dict[str, Any]]:
        """Every attack at a stated bound and one beyond (``AttackRow.as_dict``)."""
        return [AttackRow.from_outcome(o).as_dict() for o in self._of(*SERVER_ATTACKS)]

    @property
    def aggregate(self) -> list[AggregateRow]:
        return _rows(self._of("aggregate"), AggregateRow)

    @property
    def aggregate_exact(self) -> bool:
        """Every decoded aggregate was the ring sum of the updates (True if none ran)."""
        return all(o.measured["ring_sum_exact"] for o in self._of("aggregate") if o.attack == BEST)

    @property
    def dp_aggregate_recovery(self) -> list[dict[str, Any]]:
        """Each attack on the aggregate of a session with distributed DP at each audited ε,
        and without DP (``epsilon`` null): ``DpAggregateRow.as_dict``."""
        return [dict(o.measured) for o in self._of("dp-aggregate")]

    @property
    def empirical_epsilon(self) -> list[dict[str, Any]]:
        """Each canary setting: the accountant's ε beside the lower bound the canary test
        proves, its confidence and trials (``EpsilonEstimate.as_dict`` and ``holds``)."""
        return [dict(o.measured) | {"holds": o.holds} for o in self._of("empirical-epsilon")]

    @property
    def phong(self) -> dict[str, Any]:
        decrypted = [o for o in self._of("phong-shared-key") if o.attack == "phong-shared-key"]
        if not decrypted:
            return {}
        return {
            "colluder": decrypted[0].colluders,
            "decrypted": sorted(o.measured["participant"] for o in decrypted),
            "max_abs_error_of_decryption": max(o.measured["max_abs_error"] for o in decrypted),
            "all_decrypted": all(o.succeeded for o in decrypted),
        }

    @property
    def images(self) -> dict[str, dict[int, np.ndarray]]:
        """The grid: the true inputs, then each row the outcomes drew, in order."""
        grid: dict[str, dict[int, np.ndarray]] = {"true input": dict(self.true_inputs)}
        for outcome in self.outcomes:
            for row, pictures in outcome.images.items():
                grid.setdefault(row, {}).update(pictures)
        return grid

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
        best = [o.measured for o in self._of("aggregate") if o.attack == BEST]
        return [
            {
                "n": m["n"],
                "batch": m["batch"],
                "attack": m["by"],
                "recovered": m["recovered"],
                "inputs": m["inputs"],
                "best_psnr": m["best_psnr"],
            }
            for m in sorted(best, key=lambda m: (m["n"], m["batch"]))
        ]

    def coalition_recovered(self, mode: str = "prg") -> dict[str, bool]:
        return {str(r.c): r.recovered for r in self.coalition if r.mode == mode}

    def summary(self) -> dict[str, Any]:
        """The JSON object ``ssddl audit --json`` prints."""
        recovery = self.recovery
        server_attacks = self.server_attacks
        return {
            "attacks": [o.as_row() for o in self.outcomes],
            "input_recovery": self.input_recovery(),
            "coalition": self.coalition_recovered("prg"),
            "coalition_by_mode": {m: self.coalition_recovered(m) for m in SSDDL_MODES},
            "server_attacks": server_attacks,
            "model_inconsistency": [
                a for a in server_attacks if a["attack"].startswith("model_inconsistency")
            ],
            "random_view_p": self.p_sim,
            "gradient_inversion": {
                f"{r.attack}/{r.scheme}": max(
                    x.max_abs_error
                    for x in recovery
                    if x.attack == r.attack and x.scheme == r.scheme
                )
                for r in recovery
                if r.attack in ("DLG", "iDLG")
            },
            "phong": self.phong,
            "aggregate_recovery": [r.as_dict() for r in self.aggregate],
            "aggregate_best": self.aggregate_best(),
            "aggregate_is_plaintext_sum": self.aggregate_exact,
            "dp_aggregate_recovery": self.dp_aggregate_recovery,
            "empirical_epsilon": self.empirical_epsilon,
            "coalition_detail": [r.as_dict() for r in self.coalition],
            "recovery_detail": [r.as_dict() for r in recovery],
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
        """Every privacy claim the measurements contradict (empty: all held): each outcome
        that does not hold, and two checks across outcomes."""
        failed = [o.failure() for o in self.outcomes if not o.holds]
        if self.input_recovery().get("plain", 0.0) >= 1e-4:
            failed.append("first-layer recovery is not exact on the plain view")
        if not self.aggregate_exact:
            failed.append("a decoded aggregate is not the ring sum of the members' updates")
        return failed

    def markdown(self) -> str:
        return "\n".join(_markdown(self))

    def write(self, out: Path) -> list[Path]:
        """``report.md``, ``audit.json`` and ``reconstructions.png`` in ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "report.md", out / "audit.json", out / "reconstructions.png"]
        paths[0].write_text(self.markdown() + "\n", encoding="utf-8")
        paths[1].write_text(json.dumps(self.json_summary(), indent=2, allow_nan=False) + "\n")
        _grid(self.images, paths[2])
        return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- the run ---------------------------------------------------------------------------------


def run_audit(
    config: AuditConfig | None = None,
    *,
    quick: bool = False,
    progress: Progress | None = None,
    attacks: Sequence[str] | None = None,
) -> AuditReport:
    """Run every registered attack in order (or those named in ``attacks``, in the order
    given) against the same victims; ``progress`` receives one line per step."""
    config = config if config is not None else (AuditConfig.quick() if quick else AuditConfig())
    names = attack_names() if attacks is None else tuple(attacks)
    chosen: list[Attack] = [get_attack(name) for name in names]
    started = time.perf_counter()
    context = AttackContext(config, quick=quick, progress=progress)
    report = AuditReport(config, notes=context.notes)
    report.true_inputs = {p: x for p, x in enumerate(context.victims.xs, start=1)}
    for attack in chosen:
        report.guarantees[attack.name] = attack.guarantee
        report.results[attack.name] = list(attack.run(context))
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
    """The report: the attacks run, then each of the audit's own sections that has rows."""
    lines = [
        "# Privacy audit",
        "",
        f"{report.config.participants} participants, one digits sample each (inputs in "
        f"[0, 1]), one SGD step (lr={report.config.lr}) on a 64-32-10 sigmoid network; "
        f"success = PSNR >= {SUCCESS_PSNR:g} dB. {report.seconds:.1f} s.",
        "",
        *_attacks_markdown(report),
        *_recovery_markdown(report),
        *_aggregate_markdown(report),
        *_dp_markdown(report),
        *_coalition_markdown(report),
        *_server_markdown(report),
        *_phong_markdown(report),
    ]
    if report.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in report.notes]]
    lines += ["", "![true inputs and reconstructions](reconstructions.png)"]
    return lines


def _recovery_markdown(report: AuditReport) -> list[str]:
    if not report.recovery:
        return []
    lines = [
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
    if not report.p_sim:
        return lines
    lines += [
        "",
        "No better than random: `p_sim` is the fraction of simulated views (uniform words, "
        "which carry nothing) on which the first-layer attack reaches a mean MSE at most the "
        f"real one's; the real view gives nothing usable when p_sim >= {ALPHA:g}.",
        "",
        "| scheme | p_sim | no better than random |",
        "|---|---|---|",
    ]
    return lines + [
        f"| {m} | {_fmt(p)} | {'yes' if p >= ALPHA else 'NO'} |" for m, p in report.p_sim.items()
    ]


def _coalition_markdown(report: AuditReport) -> list[str]:
    if not report.coalition:
        return []
    lines = [
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
    return lines + [
        f"| {r.mode} | {r.c} | {r.bound} | {'yes' if r.recovered else 'no'} | "
        f"{_fmt(r.max_abs_error)} | {_fmt(r.upload_uniform_p)} | {_fmt(r.estimate_uniform_p)} | "
        f"{_fmt(r.same_p)} | {'yes' if r.indistinguishable else 'no'} |"
        for r in report.coalition
    ]


def _server_markdown(report: AuditReport) -> list[str]:
    rows = report.server_attacks
    if not rows:
        return []
    lines = [
        "",
        "## Stated bounds, attacked at the bound and one beyond it",
        "",
        "Each attack plays a server (honest-but-curious, or one that lies) with a coalition "
        "of colluders against the real participants. At or below the stated bound it must "
        "fail; one colluder beyond it is the control that shows the attack is real.",
        "",
        "| configuration | server | attack | colluders | bound | recovered | stopped by | "
        "as stated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return lines + [
        f"| {r['config']} | {r['server']} | {r['attack']} | {r['colluders']} | "
        f"{'none' if r['bound'] is None else r['bound']} | "
        f"{'YES' if r['recovered'] else 'no'} | {_short(r['stopped_by'] or '—', 40)} | "
        f"{'yes' if r['holds'] else '**NO**'} |"
        for r in rows
    ]


def _phong_markdown(report: AuditReport) -> list[str]:
    phong = report.phong
    if not phong:
        return []
    return [
        "",
        "## Phong et al.: one colluder's copy of the shared key",
        "",
        f"The server, given participant {phong['colluder']}'s key, decrypted the uploads of "
        f"participants {phong['decrypted']} (max abs error of the decryption "
        f"{_fmt(phong['max_abs_error_of_decryption'])}); the `phong+first-layer` rows above "
        "read their inputs back.",
    ]


def _attacks_markdown(report: AuditReport) -> list[str]:
    """One line per attack run: the guarantee it tests and how many of its claims held."""
    lines = [
        "## The attacks",
        "",
        "| attack | the guarantee it tests | runs | with a claim | held |",
        "|---|---|---|---|---|",
    ]
    for name, outcomes in report.results.items():
        claimed = [o for o in outcomes if o.expected is not None]
        held = sum(o.holds for o in claimed)
        mark = "" if held == len(claimed) else " **NO**"
        lines.append(
            f"| {name} | {_short(report.guarantees.get(name, ''), 200)} | {len(outcomes)} | "
            f"{len(claimed)} | {held}/{len(claimed)}{mark} |"
        )
    own = {a.name for a in BUILT_IN}
    added = [o for name, found in report.results.items() if name not in own for o in found]
    if added:  # the audit's own attacks have tables of their own below
        lines += [
            "",
            "| attack | setting | target | server | colluders | bound | succeeded | expected "
            "| as stated |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {o.attack} | {_short(o.setting, 40)} | {_short(o.target, 40)} | {o.server} | "
            f"{o.colluders} | {'none' if o.bound is None else o.bound} | "
            f"{'YES' if o.succeeded else 'no'} | "
            f"{'—' if o.expected is None else ('succeed' if o.expected else 'fail')} | "
            f"{'yes' if o.holds else '**NO**'} |"
            for o in added
        ]
    return [*lines, ""]


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


def _dp_markdown(report: AuditReport) -> list[str]:
    """The two distributed-DP tables: the aggregate attacks per ε, the canary's ε bound."""
    lines: list[str] = []
    rows = report.dp_aggregate_recovery
    if rows:
        lines += [
            "",
            "## Distributed DP: the aggregate attacks on the noised sum",
            "",
            "The same attacks on the aggregate of a real prg session with the distributed "
            "discrete Gaussian calibrated to each ε for that round (clip = the largest "
            f"member's change, so only the noise differs). Recovered: PSNR >= {SUCCESS_PSNR:g} "
            "dB; exactly: >= 60 dB. Relative error: of the decoded mean against the true one. "
            "Model `imprint`: the same malicious model sent to every member (first-layer bins "
            "on the mean brightness), read by the first-layer ratio; without DP it must work.",
            "",
            "| model | ε | noise multiplier | n | attack | recovered | exactly | best PSNR "
            "| median PSNR | relative error |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {'off' if r['epsilon'] is None else _fmt(r['epsilon'])} | "
            f"{'—' if r['noise_multiplier'] is None else _fmt(r['noise_multiplier'])} | "
            f"{r['n']} | {r['attack']} | {r['recovered']}/{r['inputs']} | "
            f"{r['exact_recovered']}/{r['inputs']} | {_fmt(_num(r['best_psnr']))} | "
            f"{_fmt(_num(r['median_psnr']))} | {_fmt(r['relative_error'])} |"
            for r in rows
        ]
    found = report.empirical_epsilon
    if found:
        lines += [
            "",
            "## Distributed DP: an empirical lower bound on ε (canary test)",
            "",
            "The server and its colluders guess, round by round, whether a canary at the clip "
            "norm was in the sum; Clopper–Pearson bounds on its error rates give the ε it "
            "proves. An honest setting must prove no more than the accountant's ε; a control "
            "(far less noise than claimed, or none) must prove more than its claim.",
            "",
            "| setting | via | trials | FP | FN | accountant ε | claimed ε | empirical ε "
            "(lower bound) | confidence | as stated |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f['setting']} | {f['via']} | {f['trials']} | {f['false_positives']} | "
            f"{f['false_negatives']} | {_fmt(_num(f['accountant_epsilon']))} | "
            f"{_fmt(f['claimed_epsilon'])} | {_fmt(f['empirical_epsilon'])} | "
            f"{f['confidence']:.0%} | {'yes' if f['holds'] else '**NO**'} |"
            for f in found
        ]
    return lines


def _num(value: float | None) -> float:
    return math.inf if value is None else float(value)


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
