"""The ``ssddl`` command: a thin layer over :mod:`ssddl.experiments`.

``ssddl simulate`` runs the SSDDL protocol in one process and writes a run directory.
Options given on the command line override those of ``--config FILE.toml``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssddl import __version__
from ssddl.exceptions import SSDDLError
from ssddl.protocol.schemes import scheme_names

__all__ = ["main"]

#: command-line option -> (section of the config, key)
_OVERRIDES = {
    "dataset": (None, "dataset"),
    "data_dir": (None, "data_dir"),
    "download": (None, "download"),
    "participants": (None, "participants"),
    "partition": (None, "partition"),
    "alpha": (None, "alpha"),
    "model": (None, "model"),
    "seed": (None, "seed"),
    "validate": (None, "validate"),
    "mode": ("protocol", "mode"),
    "rounds": ("protocol", "rounds"),
    "group_size": ("protocol", "group_size"),
    "min_group_size": ("protocol", "min_group_size"),
    "threshold": ("protocol", "threshold"),
    "ring_bits": ("protocol", "ring_bits"),
    "frac_bits": ("protocol", "frac_bits"),
    "clip": ("protocol", "clip"),
    "cipher": ("protocol", "cipher"),
    "epochs": ("train", "epochs"),
    "steps": ("train", "steps"),
    "lr": ("train", "lr"),
    "batch_size": ("train", "batch_size"),
    "optimizer": ("train", "optimizer"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssddl",
        description="Privacy-preserving distributed deep learning based on secret sharing.",
    )
    parser.add_argument("--version", action="version", version=f"ssddl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser(
        "simulate",
        help="run participants and server in one process",
        description="Run the SSDDL protocol in one process and write a run directory "
        "(config.toml, metrics.csv, traffic.csv, summary.json, plot.png, report.md).",
    )
    sim.add_argument("--config", type=Path, help="a TOML file; command-line options override it")
    sim.add_argument("--mode", choices=scheme_names())
    sim.add_argument("--participants", type=int, help="number of participants (default 10)")
    sim.add_argument("--group-size", type=int, help="members per round (default: all)")
    sim.add_argument("--min-group-size", type=int)
    sim.add_argument("--threshold", type=int, help="shamir threshold t (default n//2+1)")
    sim.add_argument("--rounds", type=int, help="training rounds (default 40)")
    sim.add_argument("--dataset", choices=["digits", "mnist1d", "mnist", "fashion-mnist"])
    sim.add_argument("--data-dir", help="directory of the MNIST/Fashion-MNIST IDX files")
    sim.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="fetch missing IDX files into --data-dir (needs network)",
    )
    sim.add_argument("--partition", choices=["iid", "dirichlet", "shards"])
    sim.add_argument("--alpha", type=float, help="Dirichlet concentration (default 0.5)")
    sim.add_argument("--model", choices=["mlp", "cnn"])
    sim.add_argument("--seed", type=int, help="seed for data, model, training and selection")
    sim.add_argument("--ring-bits", type=int, choices=[32, 64])
    sim.add_argument("--frac-bits", type=int)
    sim.add_argument("--clip", type=float)
    sim.add_argument("--cipher", choices=["aes-256-ctr", "chacha20"])
    sim.add_argument("--epochs", type=int, help="local epochs per round (default 5)")
    sim.add_argument("--steps", type=int)
    sim.add_argument("--lr", type=float)
    sim.add_argument("--batch-size", type=int)
    sim.add_argument("--optimizer", choices=["sgd", "adam"])
    sim.add_argument(
        "--validate",
        action="store_true",
        default=None,
        help="check every round's secure aggregate against the plaintext sum",
    )
    sim.add_argument("--out", type=Path, default=Path("runs/latest"), help="run directory")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary object as the last line of stdout",
    )
    return parser


def _experiment_config(args: argparse.Namespace) -> Any:
    from ssddl.experiments.config import DEFAULT_EPOCHS, DEFAULT_ROUNDS, ExperimentConfig, load_toml

    data: dict[str, Any] = load_toml(args.config) if args.config else {}
    for option, (section, key) in _OVERRIDES.items():
        value = getattr(args, option)
        if value is None:
            continue
        target = data if section is None else data.setdefault(section, {})
        target[key] = value
    data.setdefault("protocol", {}).setdefault("rounds", DEFAULT_ROUNDS)
    data.setdefault("train", {}).setdefault("epochs", DEFAULT_EPOCHS)
    return ExperimentConfig.from_dict(data)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ssddl simulate — {summary['mode']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("participants / group", f"{summary['participants']} / {summary['group_size']}"),
        ("rounds (applied)", f"{summary['rounds']} ({summary['rounds_applied']})"),
        ("model parameters", f"{summary['model_size']:,}"),
        ("final test accuracy", f"{summary['final_accuracy']:.4f}"),
        ("upload B / participant / round", f"{summary['upload_bytes_per_participant_round']:,.0f}"),
        ("plain float32 upload B", f"{summary['plain_upload_bytes_per_participant_round']:,}"),
        ("median round s", f"{summary['round_seconds_median']:.3f}"),
        ("rejected messages", str(summary["rejections"])),
        ("run directory", str(out)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(highlight=False).print(table)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _simulate(args: argparse.Namespace) -> int:
    from ssddl.experiments.run import run_experiment

    config = _experiment_config(args)
    result = run_experiment(config, args.out, progress=not args.no_progress)
    summary = result.summary()
    _print_summary(summary, args.out)
    if args.json:
        print(json.dumps({k: _finite(v) for k, v in summary.items()}, sort_keys=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "simulate":
            return _simulate(args)
    except SSDDLError as exc:
        print(f"ssddl: error: {exc}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
