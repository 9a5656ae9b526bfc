"""Round time and bytes of every sharing mode on the embedded default, against plain FedAvg
measured in the same run.

    python -m benchmarks.bench_modes [--quick] [--rounds N] [--out DIR]

Each mode runs the default experiment (digits, 10 participants, MLP of 85k parameters, same
seed); the table gives the median round time and the upload per participant and round, each
as a ratio to mode ``plain``, plus the ParaShare time per participant (encode + mask or split
+ encrypt) — the cost that secret sharing adds on top of training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

#: prg with each recovery and the consistency check
PRG_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("prg (double-mask)", {"mode": "prg"}),
    ("prg (double-mask + consistency)", {"mode": "prg", "consistency": True}),
    ("prg (recovery none)", {"mode": "prg", "recovery": "none"}),
    ("prg (unsafe-reveal-keys)", {"mode": "prg", "recovery": "unsafe-reveal-keys"}),
)


def modes() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(label, protocol options): plain first (the reference), then every secure mode of the
    catalogue (:func:`ssddl.modes.secure_modes`), prg with each of :data:`PRG_OPTIONS`."""
    from ssddl.modes import secure_modes

    rows: list[tuple[str, dict[str, Any]]] = [("plain", {"mode": "plain"})]
    for name in secure_modes():
        rows += PRG_OPTIONS if name == "prg" else [(name, {"mode": name})]
    return tuple(rows)


def measure(label: str, options: dict[str, Any], rounds: int, participants: int) -> dict[str, Any]:
    from ssddl.experiments.config import ExperimentConfig
    from ssddl.experiments.run import run_experiment

    base = ExperimentConfig(participants=participants)
    config = dataclasses.replace(
        base, protocol=dataclasses.replace(base.protocol, rounds=rounds, **options)
    )
    result = run_experiment(config)
    summary = result.summary()
    history = result.history
    return {
        "mode": label,
        "rounds": rounds,
        "final_accuracy": summary["final_accuracy"],
        "round_seconds_median": summary["round_seconds_median"],
        "train_seconds_median": statistics.median(h.train_seconds_mean for h in history),
        "share_seconds_median": statistics.median(h.share_seconds_mean for h in history),
        "server_seconds_median": statistics.median(h.server_seconds for h in history),
        "upload_bytes": summary["upload_bytes_per_participant_round"],
        "download_bytes": statistics.fmean(h.download_bytes_mean for h in history),
        "total_bytes": summary["total_bytes"],
        "model_size": summary["model_size"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_modes", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 rounds instead of 40")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--participants", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rounds = args.rounds or (10 if args.quick else 40)
    rows = [measure(label, options, rounds, args.participants) for label, options in modes()]
    plain = rows[0]
    for row in rows:
        plain_seconds = plain["round_seconds_median"]
        row["round_time_ratio_vs_plain"] = row["round_seconds_median"] / plain_seconds
        row["upload_ratio_vs_plain"] = row["upload_bytes"] / plain["upload_bytes"]
    lines = [
        f"## Sharing modes on the default run ({args.participants} participants, digits, "
        f"{plain['model_size']:,} parameters, {rounds} rounds)",
        "",
        "| mode | accuracy | median round s | × plain | ParaShare ms / member | server ms "
        "| upload B / member / round | × plain | download B |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['final_accuracy']:.4f} | {r['round_seconds_median']:.4f} "
            f"| {r['round_time_ratio_vs_plain']:.3f} | {1e3 * r['share_seconds_median']:.2f} "
            f"| {1e3 * r['server_seconds_median']:.2f} | {r['upload_bytes']:,.0f} "
            f"| {r['upload_ratio_vs_plain']:.3f} | {r['download_bytes']:,.0f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    result = {"benchmark": "modes", "rounds": rounds, "rows": rows}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_modes.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "bench_modes.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
