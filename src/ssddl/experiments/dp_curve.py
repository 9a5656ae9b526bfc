"""``ssddl reproduce``'s DP experiment: final test accuracy against ε for the default model.

For each dataset and seed: plain FedAvg (no DP, the horizontal reference), and at each ε of
the plan SSDDL ``prg`` with distributed DP (``--dp ddg --target-epsilon ε``, the real
protocol, noise calibrated to the contributor floor) and DP-FedAvg with central Gaussian
noise (:mod:`ssddl.baselines.central_dp`, the noise calibrated to the same ε, δ, rounds and
clip). Writes ``dp_accuracy.csv`` (one row per run), ``dp_epsilon.csv`` (mean and spread per
ε) and ``dp_epsilon.png``; returns the ``dp`` entry of ``--json``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssddl.experiments.config import ExperimentConfig

__all__ = ["DpPlan", "dp_figure", "dp_section", "run_dp"]

Progress = Callable[[str, int, int], None]

DELTA = 1e-5
L2_CLIP = 1.0


@dataclass(frozen=True)
class DpPlan:
    """The sizes of the DP experiment: ``participants`` members (all in every round),
    ``rounds`` rounds of ``epochs`` local epochs, ``epsilons`` (δ = :data:`DELTA`)."""

    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    participants: int
    rounds: int
    epochs: int
    epsilons: tuple[float, ...]
    max_samples: int | None = None

    @classmethod
    def make(cls, *, quick: bool, seeds: tuple[int, ...]) -> DpPlan:
        if quick:
            return cls(("digits", "mnist1d"), seeds, 6, 2, 1, (8.0,))
        return cls(("digits", "mnist1d"), seeds, 50, 10, 5, (1.0, 2.0, 4.0, 8.0, 16.0, 32.0))


def _config(
    plan: DpPlan, dataset: str, seed: int, mode: str, dp: dict[str, Any]
) -> ExperimentConfig:
    protocol: dict[str, Any] = {"mode": mode, "rounds": plan.rounds, **dp}
    return ExperimentConfig.from_dict(
        {
            "dataset": dataset,
            "participants": plan.participants,
            "seed": seed,
            "protocol": protocol,
            "train": {"epochs": plan.epochs},
        }
    )


def _ssddl(plan: DpPlan, dataset: str, seed: int, epsilon: float) -> dict[str, Any]:
    from ssddl.experiments.run import prepare, run_experiment

    dp = {"dp": "ddg", "target_epsilon": epsilon, "l2_clip": L2_CLIP, "dp_delta": DELTA,
          "weighted": False}  # fmt: skip
    config = _config(plan, dataset, seed, "prg", dp)
    resolved = prepare(config).protocol
    history = run_experiment(config).history
    floor = resolved.threshold - (resolved.max_colluders or 0)
    return {
        "accuracy": float(history[-1].accuracy),
        "noise_multiplier": float(resolved.noise_multiplier),
        "noise_members": floor,
        "bits": resolved.bits,
    }


def _central(plan: DpPlan, dataset: str, seed: int, epsilon: float | None) -> dict[str, Any]:
    from ssddl.baselines.central_dp import CentralDp, calibrate_central, dp_fedavg_runner
    from ssddl.baselines.runners import run_baseline
    from ssddl.experiments.run import prepare, run_experiment, runner_config

    if epsilon is None:  # plain FedAvg, E1's reference
        history = run_experiment(_config(plan, dataset, seed, "fedavg", {})).history
        return {"accuracy": float(history[-1].accuracy)}
    config = _config(plan, dataset, seed, "dp-fedavg", {})
    z = calibrate_central(epsilon, plan.rounds, DELTA)
    prep = prepare(config)
    run = run_baseline(
        dp_fedavg_runner(CentralDp(z, L2_CLIP, DELTA)),
        prep.model,
        prep.datasets,
        runner_config(config),
        test=prep.split.test,
    )
    return {"accuracy": float(run.rows[-1]["accuracy"]), "noise_multiplier": z}


def _stats(values: Sequence[float]) -> tuple[float, float]:
    data = list(values)
    return statistics.fmean(data), statistics.stdev(data) if len(data) > 1 else 0.0


def run_dp(plan: DpPlan, out: Path, progress: Progress) -> dict[str, Any]:
    """Every run of the DP experiment; writes the CSVs and the figure; returns ``dp``."""
    from ssddl.experiments.reproduce import _write_csv

    todo: list[tuple[str, int, str, float | None]] = []
    for dataset in plan.datasets:
        for seed in plan.seeds:
            todo.append((dataset, seed, "fedavg", None))
            for eps in plan.epsilons:
                todo += [(dataset, seed, "ssddl-ddg", eps), (dataset, seed, "dp-fedavg", eps)]
    rows = []
    for done, (dataset, seed, scheme, point) in enumerate(todo):
        progress(f"DP {dataset} seed {seed} {scheme} ε={point}", done, len(todo))
        if scheme == "ssddl-ddg" and point is not None:
            got = _ssddl(plan, dataset, seed, point)
        else:
            got = _central(plan, dataset, seed, point)
        rows.append({"dataset": dataset, "seed": seed, "scheme": scheme,
                     "epsilon": "inf" if point is None else point, **got})  # fmt: skip
    progress("DP done", len(todo), len(todo))
    cols = ("dataset", "seed", "scheme", "epsilon", "accuracy", "noise_multiplier",
            "noise_members", "bits")  # fmt: skip
    _write_csv(out / "dp_accuracy.csv", [{c: r.get(c, "") for c in cols} for r in rows])
    summary = _summarize(plan, rows)
    _write_csv(out / "dp_epsilon.csv", summary["table"])
    dp_figure(plan, summary["table"], out)
    return summary


def _summarize(plan: DpPlan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    table: list[dict[str, Any]] = []
    per_dataset: dict[str, Any] = {}
    for dataset in plan.datasets:
        mine = [r for r in rows if r["dataset"] == dataset]
        base = _stats([r["accuracy"] for r in mine if r["scheme"] == "fedavg"])
        entry: dict[str, Any] = {"fedavg": {"mean": base[0], "spread": base[1]}, "epsilons": {}}
        for eps in plan.epsilons:
            ddg = [r for r in mine if r["scheme"] == "ssddl-ddg" and r["epsilon"] == eps]
            cen = [r for r in mine if r["scheme"] == "dp-fedavg" and r["epsilon"] == eps]
            d, c = _stats([r["accuracy"] for r in ddg]), _stats([r["accuracy"] for r in cen])
            point = {
                "ssddl_ddg": {"mean": d[0], "spread": d[1],
                              "noise_multiplier": ddg[0]["noise_multiplier"],
                              "noise_members": ddg[0]["noise_members"]},
                "central_dp": {"mean": c[0], "spread": c[1],
                               "noise_multiplier": cen[0]["noise_multiplier"]},
            }  # fmt: skip
            entry["epsilons"][str(eps)] = point
            table.append({
                "dataset": dataset, "epsilon": eps,
                "ssddl_ddg": round(d[0], 4), "ssddl_ddg_std": round(d[1], 4),
                "ssddl_noise_multiplier": round(ddg[0]["noise_multiplier"], 4),
                "noise_members": ddg[0]["noise_members"],
                "central_dp": round(c[0], 4), "central_dp_std": round(c[1], 4),
                "central_noise_multiplier": round(cen[0]["noise_multiplier"], 4),
                "fedavg": round(base[0], 4), "fedavg_std": round(base[1], 4),
            })  # fmt: skip
        points = entry["epsilons"]
        within = [e for e in plan.epsilons if base[0] - points[str(e)]["ssddl_ddg"]["mean"] <= 0.05]
        entry["smallest_epsilon_within_5_points"] = min(within) if within else None
        per_dataset[dataset] = entry
    return {
        "status": "measured",
        "mechanism": "ddg",
        "delta": DELTA,
        "l2_clip": L2_CLIP,
        "rounds": plan.rounds,
        "participants": plan.participants,
        "epochs": plan.epochs,
        "seeds": list(plan.seeds),
        "datasets": per_dataset,
        "table": table,
    }


def dp_figure(plan: DpPlan, table: list[dict[str, Any]], out: Path) -> None:
    """``dp_epsilon.png``: accuracy against ε (log axis) per dataset, SSDDL-DDG and central
    DP with error bars, FedAvg as a horizontal line with its spread as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plan.datasets), figsize=(6 * len(plan.datasets), 4.5))
    for ax, dataset in zip(list(getattr(axes, "flat", [axes])), plan.datasets, strict=True):
        mine = [r for r in table if r["dataset"] == dataset]
        xs = [r["epsilon"] for r in mine]
        for key, label, marker in (("ssddl_ddg", "SSDDL prg + distributed DP (ddg)", "o"),
                                   ("central_dp", "DP-FedAvg, central Gaussian", "s")):  # fmt: skip
            ax.errorbar(xs, [r[key] for r in mine], yerr=[r[f"{key}_std"] for r in mine],
                        marker=marker, capsize=3, label=label)  # fmt: skip
        base, std = mine[0]["fedavg"], mine[0]["fedavg_std"]
        ax.axhline(base, color="black", linestyle="--", label="FedAvg, no DP")
        ax.axhspan(base - std, base + std, color="black", alpha=0.08)
        ax.axhline(base - 0.05, color="grey", linestyle=":", label="FedAvg − 5 points")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_xlabel(f"ε (δ = {DELTA:g}) after {plan.rounds} rounds, {plan.participants} members")
        ax.set_ylabel(f"final test accuracy (mean ± std, {len(plan.seeds)} seeds)")
        ax.set_title(f"Accuracy against ε — {dataset}")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "dp_epsilon.png", dpi=120)
    plt.close(fig)


def dp_section(dp: dict[str, Any], out: Path) -> list[str]:
    """REPORT.md's lines for the DP experiment (its table read from ``dp_epsilon.csv``)."""
    from ssddl.experiments.reproduce import _table

    if dp.get("status") != "measured":
        return [f"Distributed DP and DP-FedAvg: {dp['status']} — {dp['reason']}.", ""]
    lines = [
        "## DP — final accuracy against ε",
        "",
        f"{dp['participants']} members (all in every round), {dp['rounds']} rounds of "
        f"{dp['epochs']} local epoch(s), L2 clip {dp['l2_clip']}, δ = {dp['delta']:g}, seeds "
        f"{', '.join(map(str, dp['seeds']))}. SSDDL: `prg --dp ddg --no-weighted "
        "--target-epsilon ε` (the real protocol at 20 bits; the noise multiplier is calibrated "
        "to the contributor floor, `noise_members` honest members). DP-FedAvg: a trusted "
        "server adds Gaussian noise to the clipped mean (RDP of the Gaussian mechanism over "
        "the rounds). FedAvg: no clipping, no noise.",
        "",
        "Columns: final accuracy mean and standard deviation over the seeds of SSDDL-DDG, "
        "DP-FedAvg (central) and FedAvg; each one's noise multiplier z.",
        "",
        *_table(out / "dp_epsilon.csv"),
    ]
    lines.append("")
    for dataset, entry in dp["datasets"].items():
        eps = entry["smallest_epsilon_within_5_points"]
        said = (
            f"ε = {eps:g} is the smallest tested ε within 5 points of FedAvg"
            if eps is not None and not math.isinf(eps)
            else "no tested ε keeps SSDDL-DDG within 5 points of FedAvg at this scale"
        )
        lines.append(f"- {dataset}: {said}.")
    lines += ["", "![DP](dp_epsilon.png)", ""]
    return lines
