"""``ssddl reproduce``: the paper's comparison in one command.

Writes ``DIR/REPORT.md`` with tables and PNG figures, and the CSV behind each of them:

- E1 test accuracy against rounds for centralized, standalone, FedAvg, DSSGD (θu = 0.01,
  0.1), Phong (Paillier, BFV) and SSDDL (prg, explicit, shamir) on each dataset;
- E2 bytes per participant per round, up and down, for every scheme;
- E3 seconds per round split into local training, encoding/encryption, sharing, server
  aggregation, decoding/decryption;
- E6 scaling of one round's protocol cost with group size and model size (no training);
  Paillier points beyond the measured ones are extrapolated, and marked so;
- E7 the properties of each scheme (what the server sees, collusion and dropout tolerance,
  round trips), SSDDL's from its scheme's stated guarantee.

Every number in REPORT.md is read back from the CSVs this run wrote (``report_from_csvs``).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssddl import modes
from ssddl.exceptions import ConfigurationError
from ssddl.experiments.config import ExperimentConfig
from ssddl.protocol.config import ProtocolConfig

__all__ = ["Plan", "e1_modes", "fmt", "reproduce"]


def e1_modes() -> tuple[tuple[str, str, Mapping[str, Any]], ...]:
    """E1's schemes, as (label, mode, extra ExperimentConfig fields): every ``compared`` run
    of the catalogue of modes (:func:`ssddl.modes.comparison`) — the baselines (centralized,
    standalone, FedAvg, DSSGD θu = 0.01 and 0.1, Phong over Paillier and BFV), then SSDDL's
    secure modes."""
    return modes.comparison()


Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Plan:
    """The sizes of a reproduce run."""

    quick: bool
    datasets: tuple[str, ...]
    participants: int
    rounds: int
    epochs: int
    seed: int = 0
    paillier_real_rounds: int = 1
    paillier_real_participants: int | None = None
    group_sizes: tuple[int, ...] = (5, 10, 20, 50, 100)
    model_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    data_dir: str | None = None

    @classmethod
    def make(cls, *, quick: bool, data_dir: str | None, seed: int = 0) -> Plan:
        datasets: tuple[str, ...] = ("digits", "mnist1d")
        if data_dir is not None:
            _check_mnist_dir(Path(data_dir))
            datasets += ("mnist",)
        if quick:
            return cls(
                True, datasets, 3, 2, 1, seed,
                paillier_real_participants=1,
                group_sizes=(3, 5), model_sizes=(10_000, 30_000), data_dir=data_dir,
            )  # fmt: skip
        return cls(False, datasets, 10, 15, 2, seed, data_dir=data_dir)


def _check_mnist_dir(path: Path) -> None:
    """``--data-dir`` must hold the MNIST IDX files: a typo must not drop MNIST silently."""
    if not path.is_dir():
        raise ConfigurationError(
            f"--data-dir {path} does not exist or is not a directory; give the directory "
            f"that holds the MNIST IDX files (or leave --data-dir out to compare without MNIST)"
        )
    names = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
    missing = [n for n in names if not ((path / n).exists() or (path / f"{n}.gz").exists())]
    if missing:
        raise ConfigurationError(
            f"--data-dir {path} holds no {missing[0]} (raw or .gz); give the directory that "
            f"holds the MNIST IDX files (or leave --data-dir out to compare without MNIST)"
        )


def fmt(value: Any) -> str:
    """How REPORT.md prints a CSV value (the test formats CSV cells the same way)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if value.strip().lstrip("-").isdigit():
            return f"{int(value):,}"
    else:
        number = float(value)
    if number != number:
        return "—"
    if number == int(number) and abs(number) >= 1000:
        return f"{int(number):,}"
    return f"{number:.4g}"


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# -- E1, E2, E3: training runs -----------------------------------------------------------------


def _experiment(plan: Plan, dataset: str, mode: str, extra: Mapping[str, Any]) -> ExperimentConfig:
    protocol: dict[str, Any] = {"mode": mode, "rounds": plan.rounds}
    data: dict[str, Any] = {
        "dataset": dataset,
        "participants": plan.participants,
        "seed": plan.seed,
        "protocol": protocol,
        "train": {"epochs": plan.epochs},
        **extra,
    }
    if dataset == "mnist":
        data["data_dir"] = plan.data_dir
    if mode == "phong-paillier":
        data["he_real_rounds"] = plan.paillier_real_rounds
    return ExperimentConfig.from_dict(data)


def _train_runs(plan: Plan, out: Path, progress: Progress) -> list[dict[str, Any]]:
    """Every E1 scheme on every dataset; returns the per-round rows (with dataset, scheme)."""
    from ssddl.experiments.run import (
        prepare,
        run_baseline_experiment,
        run_experiment,
        runner_config,
    )
    from ssddl.runtime.simulator import RoundMetrics

    rows: list[dict[str, Any]] = []
    compared = e1_modes()
    total = len(plan.datasets) * len(compared)
    done = 0
    for dataset in plan.datasets:
        for label, mode, extra in compared:
            config = _experiment(plan, dataset, mode, extra)
            progress(f"E1 {dataset} {label}", done, total)
            round_rows: list[dict[str, Any]]
            if config.runner is not None:
                runner = dataclasses.replace(
                    runner_config(config), he_real_participants=plan.paillier_real_participants
                )
                run = run_baseline_experiment(config, prep=prepare(config), runner=runner)
                round_rows = [dict(r) for r in run.rows]
                if config.runner == "phong-paillier":
                    plan_note = run.extra["real_participants"]
                    for r in round_rows:
                        r["real_participants"] = plan_note if r["encrypted"] else 0
            else:
                result = run_experiment(config)
                round_rows = [RoundMetrics.as_row(m) for m in result.history]
            for r in round_rows:
                r.setdefault("encrypted", "")
                r.setdefault("decrypt_seconds_mean", 0.0)
                r.setdefault("real_participants", "")
                rows.append({"dataset": dataset, "scheme": label, "mode": mode, **r})
            done += 1
            progress(f"E1 {dataset} {label}", done, total)
    columns = [
        "dataset", "scheme", "mode", "round", "accuracy", "loss", "upload_bytes_mean",
        "download_bytes_mean", "train_seconds_mean", "share_seconds_mean",
        "decrypt_seconds_mean", "server_seconds", "round_seconds", "encrypted",
        "real_participants",
    ]  # fmt: skip
    _write_csv(out / "e1_rounds.csv", [{c: r[c] for c in columns} for r in rows])
    return rows


def _codec_seconds(model_size: int, mode: str, plan: Plan) -> tuple[float, float]:
    """Median seconds to encode a model-sized change and to decode a sum, with the fixed
    point SSDDL resolves for this group (E3 splits ParaShare and ParaUpdate with them)."""
    from ssddl.hazmat.codec import decode, encode

    params = ProtocolConfig(mode=mode, max_samples=1024).resolve(plan.participants)
    codec = params.codec()
    delta = np.random.default_rng(0).normal(0, 0.01, model_size)
    enc, dec = [], []
    for _ in range(5):
        mark = time.perf_counter()
        words = encode(delta, codec)
        enc.append(time.perf_counter() - mark)
        mark = time.perf_counter()
        decode(words, codec)
        dec.append(time.perf_counter() - mark)
    return statistics.median(enc), statistics.median(dec)


def _e2_e3(rows: list[dict[str, Any]], plan: Plan, out: Path, model_size: int) -> None:
    first = plan.datasets[0]
    e2, e3 = [], []
    secure = modes.secure_modes()
    codec = {m: _codec_seconds(model_size, m, plan) for m in secure}
    float32 = 4 * model_size
    for label, mode, _ in e1_modes():
        mine = [r for r in rows if r["dataset"] == first and r["scheme"] == label]
        if not mine:
            continue
        up = statistics.fmean(float(r["upload_bytes_mean"]) for r in mine)
        down = statistics.fmean(float(r["download_bytes_mean"]) for r in mine)
        e2.append(
            {
                "scheme": label,
                "upload_bytes": round(up),
                "download_bytes": round(down),
                "upload_vs_float32": round(up / float32, 3),
            }
        )
        train = statistics.fmean(float(r["train_seconds_mean"]) for r in mine)
        share = statistics.fmean(float(r["share_seconds_mean"]) for r in mine)
        server = statistics.fmean(float(r["server_seconds"]) for r in mine)
        decrypt = statistics.fmean(float(r["decrypt_seconds_mean"]) for r in mine)
        encode_s, decode_s, sharing = 0.0, 0.0, 0.0
        if mode in secure:
            encode_s, decode_s = codec[mode]
            sharing = max(share - encode_s, 0.0)
            server = max(server - decode_s, 0.0)
        elif mode.startswith("phong"):
            encode_s, decode_s = share, decrypt
        else:
            sharing = share  # clipping or DSSGD's selection, in the clear
        e3.append(
            {
                "scheme": label,
                "local_training": round(train, 5),
                "encoding_encryption": round(encode_s, 5),
                "sharing": round(sharing, 5),
                "server_aggregation": round(server, 5),
                "decoding_decryption": round(decode_s, 5),
            }
        )
    _write_csv(out / "e2_bytes.csv", e2)
    _write_csv(out / "e3_seconds.csv", e3)


def _e1_final(rows: list[dict[str, Any]], plan: Plan, out: Path) -> None:
    table = []
    for label, _, _ in e1_modes():
        entry: dict[str, Any] = {"scheme": label}
        for dataset in plan.datasets:
            mine = [r for r in rows if r["dataset"] == dataset and r["scheme"] == label]
            entry[dataset] = round(float(mine[-1]["accuracy"]), 4) if mine else ""
        table.append(entry)
    _write_csv(out / "e1_final.csv", table)


# -- E6: scaling of one round's protocol cost ---------------------------------------------------


def _protocol_round(mode: str, n: int, model_size: int) -> tuple[float, float, float, float]:
    """One protocol round with a synthetic change (no training): per-member ParaShare
    seconds, server seconds, per-member upload and download bytes."""
    from ssddl.protocol.localtrain import LocalUpdate
    from ssddl.protocol.select import UniformSubset
    from ssddl.runtime.inmemory import InMemoryExchange
    from ssddl.runtime.masking import MaskEngine
    from ssddl.runtime.session import Session

    ids = list(range(1, n + 1))
    protocol = ProtocolConfig(mode=mode, rounds=1, max_samples=64)
    rng = np.random.default_rng(model_size + n)
    delta = rng.normal(0, 0.01, model_size)

    def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
        return LocalUpdate(delta, 32)

    exchange = InMemoryExchange()
    with MaskEngine("thread") as masks:  # built while the members train, as a runtime does
        session = Session.build(
            protocol,
            dict.fromkeys(ids, trainer),
            np.zeros(model_size, dtype=np.float32),
            selection=UniformSubset(np.random.default_rng(0)),
            rounding_rngs={p: np.random.default_rng(p) for p in ids},
            masks=masks,
            exchange=exchange.attach,
        )
        participants, driver = session.participants, session.driver
        driver.init()
        outcome = driver.round()
        traffic = exchange.bytes_by_participant(outcome.round)
        share = statistics.fmean(participants[p].timings.get("share", 0.0) for p in ids)
        up = statistics.fmean(traffic[p].get("up", 0) for p in ids)
        down = statistics.fmean(traffic[p].get("down", 0) for p in ids)
        driver.finish()
        return share, driver.server_seconds, up, down


def _he_point(mode: str, n: int, model_size: int) -> tuple[float, float, float, float]:
    """Phong's per-member seconds (encrypt + decrypt), server seconds (n adds) and bytes up
    and down for one round, measured on real ciphertexts."""
    from ssddl.baselines.runners import RunnerConfig, make_he_backend

    backend = make_he_backend(mode, RunnerConfig(rounds=1), n)
    keys = backend.keygen()
    words = np.zeros(model_size, dtype=backend.codec.dtype)
    mark = time.perf_counter()
    c = backend.encrypt(keys.public, words)
    enc = time.perf_counter() - mark
    mark = time.perf_counter()
    total = c
    for _ in range(n - 1):
        total = backend.add(total, c)
    server = (time.perf_counter() - mark) * n / max(n - 1, 1)
    mark = time.perf_counter()
    backend.decrypt(keys.secret, total)
    dec = time.perf_counter() - mark
    size = len(backend.ciphertext_to_bytes(c))
    return enc + dec, server, float(size), float(len(backend.ciphertext_to_bytes(total)))


def _e6(plan: Plan, out: Path, progress: Progress) -> None:
    rows: list[dict[str, Any]] = []
    base_n = plan.group_sizes[min(1, len(plan.group_sizes) - 1)]
    base_m = plan.model_sizes[0]
    points = [("group", n, base_m) for n in plan.group_sizes]
    points += [("model", base_n, m) for m in plan.model_sizes]
    schemes = (*modes.secure_modes(), "fedavg", "phong-bfv", "phong-paillier")
    total = len(points) * len(schemes)
    done = 0
    paillier_probe = min(plan.model_sizes[0], 10_000)
    probe: dict[int, tuple[float, float, float, float]] = {}
    for sweep, n, m in points:
        for scheme in schemes:
            progress(f"E6 {scheme} n={n} M={m}", done, total)
            how = "measured"
            if scheme.startswith("phong-paillier"):
                # Paillier costs grow linearly in M (ciphertext count); measured once per n
                # at M = paillier_probe and scaled, except at that size
                if n not in probe:
                    probe[n] = _he_point(scheme, n, paillier_probe)
                secs, server, up, down = probe[n]
                if m != paillier_probe:
                    factor = m / paillier_probe
                    secs, server, up, down = (v * factor for v in (secs, server, up, down))
                    how = f"extrapolated from M={paillier_probe:,}"
            elif scheme == "phong-bfv":
                secs, server, up, down = _he_point(scheme, n, m)
            else:
                secs, server, up, down = _protocol_round(scheme, n, m)
            rows.append(
                {
                    "sweep": sweep,
                    "scheme": scheme,
                    "group_size": n,
                    "model_size": m,
                    "member_seconds": round(secs, 5),
                    "server_seconds": round(server, 5),
                    "upload_bytes": round(up),
                    "download_bytes": round(down),
                    "how": how,
                }
            )
            done += 1
    progress("E6 done", total, total)
    _write_csv(out / "e6_scaling.csv", rows)


# -- E7: properties ----------------------------------------------------------------------------


def _e7(plan: Plan, out: Path) -> None:
    n = plan.participants
    rows = []
    for label, mode, extra in e1_modes():
        if label.startswith("dssgd θu=0.01"):
            continue
        entry = modes.entry(mode)
        if entry.engine is modes.Engine.RUNNER:
            stated = entry.guarantee(n)
        else:
            config = _experiment(plan, plan.datasets[0], mode, extra)
            stated = entry.guarantee(n, config.protocol.resolve(n, max_samples=1024))
        rows.append(
            {
                "scheme": label.replace(" θu=0.1", ""),
                "server_sees": stated.text,
                "collusion_tolerated": stated.collusion_bound,
                "dropouts_tolerated": stated.dropout_bound,
                "round_trips": stated.round_trips,
            }
        )
    _write_csv(out / "e7_properties.csv", rows)


# -- figures -----------------------------------------------------------------------------------


def _figures(plan: Plan, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = _read_csv(out / "e1_rounds.csv")
    for dataset in plan.datasets:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, _, _ in e1_modes():
            mine = [r for r in rounds if r["dataset"] == dataset and r["scheme"] == label]
            ax.plot(
                [int(r["round"]) + 1 for r in mine],
                [float(r["accuracy"]) for r in mine],
                marker="o",
                markersize=3,
                label=label,
            )
        ax.set_xlabel(f"round ({plan.epochs} local epoch(s) each)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"E1 accuracy — {dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"e1_{dataset}.png", dpi=100)
        plt.close(fig)
    e2 = _read_csv(out / "e2_bytes.csv")
    fig, ax = plt.subplots(figsize=(8, 4))
    pos = np.arange(len(e2))
    ax.bar(pos - 0.2, [float(r["upload_bytes"]) for r in e2], 0.4, label="up")
    ax.bar(pos + 0.2, [float(r["download_bytes"]) for r in e2], 0.4, label="down")
    ax.set_yscale("log")
    ax.set_xticks(list(pos), [r["scheme"] for r in e2], rotation=30, ha="right")
    ax.set_ylabel("bytes / participant / round")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "e2_bytes.png", dpi=100)
    plt.close(fig)
    e3 = _read_csv(out / "e3_seconds.csv")
    parts = [
        "local_training",
        "encoding_encryption",
        "sharing",
        "server_aggregation",
        "decoding_decryption",
    ]
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(len(e3))
    for part in parts:
        values = np.array([float(r[part]) for r in e3])
        ax.bar(np.arange(len(e3)), values, bottom=bottom, label=part)
        bottom += values
    ax.set_xticks(list(range(len(e3))), [r["scheme"] for r in e3], rotation=30, ha="right")
    ax.set_ylabel("seconds / round")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "e3_seconds.png", dpi=100)
    plt.close(fig)
    e6 = _read_csv(out / "e6_scaling.csv")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (sweep, key) in enumerate((("group", "group_size"), ("model", "model_size"))):
        for scheme in sorted({r["scheme"] for r in e6}):
            mine = [r for r in e6 if r["sweep"] == sweep and r["scheme"] == scheme]
            xs = [int(r[key]) for r in mine]
            style = "--" if any(r["how"] != "measured" for r in mine) else "-"
            axes[0][col].plot(
                xs, [float(r["member_seconds"]) for r in mine], style, marker="o", label=scheme
            )
            axes[1][col].plot(
                xs, [float(r["upload_bytes"]) for r in mine], style, marker="o", label=scheme
            )
        for row, what in ((0, "seconds / member / round"), (1, "upload bytes / member")):
            ax = axes[row][col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(key.replace("_", " "))
            ax.set_ylabel(what)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("E6 scaling (dashed: extrapolated)")
    fig.tight_layout()
    fig.savefig(out / "e6_scaling.png", dpi=100)
    plt.close(fig)


# -- the report --------------------------------------------------------------------------------


def _table(path: Path, columns: Sequence[str] | None = None) -> list[str]:
    rows = _read_csv(path)
    cols = list(columns) if columns is not None else list(rows[0])
    lines = [f"<!-- source: {path.name} -->", "| " + " | ".join(cols) + " |"]
    lines.append("|" + "---|" * len(cols))
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return lines


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"python {platform.python_version()}"]
    for name in ("ssddl", "torch", "numpy", "phe", "gmpy2", "tenseal", "cryptography"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def _headline(out: Path) -> list[str]:
    """SSDDL prg vs Phong as ratios, from e2/e3 (also written as headline.csv)."""
    e2 = {r["scheme"]: r for r in _read_csv(out / "e2_bytes.csv")}
    e3 = {r["scheme"]: r for r in _read_csv(out / "e3_seconds.csv")}
    keys = ("encoding_encryption", "sharing", "server_aggregation", "decoding_decryption")

    def crypto(scheme: str) -> float:
        return sum(float(e3[scheme][k]) for k in keys)

    rows = []
    for he in ("phong-paillier", "phong-bfv"):
        if he not in e2 or "ssddl prg" not in e2:
            continue
        rows.append(
            {
                "comparison": f"{he} / ssddl prg",
                "privacy_seconds_ratio": round(crypto(he) / max(crypto("ssddl prg"), 1e-9), 2),
                "upload_bytes_ratio": round(
                    float(e2[he]["upload_bytes"]) / float(e2["ssddl prg"]["upload_bytes"]), 2
                ),
                "download_bytes_ratio": round(
                    float(e2[he]["download_bytes"]) / float(e2["ssddl prg"]["download_bytes"]), 2
                ),
            }
        )
    _write_csv(out / "headline.csv", rows)
    return _table(out / "headline.csv")


def report_from_csvs(plan: Plan, out: Path, command: str, seconds: float) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    rounds = _read_csv(out / "e1_rounds.csv")
    paillier = [r for r in rounds if r["mode"] == "phong-paillier"]
    real = sorted({int(r["round"]) for r in paillier if r["encrypted"] == "True"})
    sampled = sorted({r["real_participants"] for r in paillier if r["encrypted"] == "True"})
    lines = [
        "# ssddl reproduce — SSDDL against its baselines",
        "",
        f"Command: `{command}`",
        "",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPU(s)",
        f"- versions: {_versions()}",
        f"- seed {plan.seed} (data split, model, training; keys always from the OS CSPRNG)",
        f"- {plan.participants} participants, iid split, MLP, {plan.rounds} rounds of "
        f"{plan.epochs} local epoch(s), SGD lr 0.05 momentum 0.9, batch 32"
        + (" (quick: small sizes, not the headline figures)" if plan.quick else ""),
        f"- finished {now} after {seconds:.0f} s",
        "",
        "## E1 — test accuracy",
        "",
        "Final test accuracy per scheme (the curves: `e1_<dataset>.png`, every round in "
        "`e1_rounds.csv`). Standalone is the mean over participants.",
        "",
        *_table(out / "e1_final.csv"),
        "",
        f"Phong with Paillier ran on real ciphertexts in round(s) {real} "
        f"(members encrypting their own update per real round: {', '.join(sampled)}; the "
        "others' sum went in as one encryption); the other rounds ran the same fixed-point "
        "arithmetic in the clear (`encrypted` column of `e1_rounds.csv`), which decrypts to "
        "the same words bit for bit. BFV ran every round on real ciphertexts.",
        "",
        *[f"![E1 {d}](e1_{d}.png)" for d in plan.datasets],
        "",
        f"## E2 — bytes per participant per round ({plan.datasets[0]})",
        "",
        *_table(out / "e2_bytes.csv"),
        "",
        "![E2](e2_bytes.png)",
        "",
        f"## E3 — seconds per round, per participant ({plan.datasets[0]})",
        "",
        "SSDDL's encoding and decoding are timed apart on a model-sized vector and taken "
        "out of its ParaShare and server times; Phong's encryption and decryption are "
        "measured in its real rounds.",
        "",
        *_table(out / "e3_seconds.csv"),
        "",
        "![E3](e3_seconds.png)",
        "",
        "## Headline — Phong against SSDDL (prg)",
        "",
        "Seconds: encoding/encryption + sharing + server aggregation + decoding/decryption "
        "per round (training excluded).",
        "",
        *_headline(out),
        "",
        "## E6 — scaling of one round's protocol cost (no training)",
        "",
        "SSDDL and FedAvg: one real protocol round with a synthetic change; Phong-BFV: real "
        "ciphertexts; Phong-Paillier: measured at the smallest model size and scaled "
        "linearly in the model size (`how` says which).",
        "",
        *_table(out / "e6_scaling.csv"),
        "",
        "![E6](e6_scaling.png)",
        "",
        "## E7 — properties",
        "",
        "SSDDL's rows are its schemes' stated guarantees for this group size.",
        "",
        *_table(out / "e7_properties.csv"),
        "",
    ]
    return "\n".join(lines)


def reproduce(
    out: Path,
    *,
    quick: bool,
    data_dir: str | None,
    command: str,
    progress: Progress | None = None,
) -> Path:
    """Run the comparison and write ``out/REPORT.md``; returns its path."""
    plan = Plan.make(quick=quick, data_dir=data_dir)
    report = progress if progress is not None else (lambda *_: None)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rows = _train_runs(plan, out, report)
    _e1_final(rows, plan, out)
    model_size = _model_size(plan)
    _e2_e3(rows, plan, out, model_size)
    _e6(plan, out, report)
    _e7(plan, out)
    _figures(plan, out)
    path = out / "REPORT.md"
    path.write_text(report_from_csvs(plan, out, command, time.perf_counter() - started))
    return path


def _model_size(plan: Plan) -> int:
    from ssddl.experiments.run import prepare

    config = _experiment(plan, plan.datasets[0], "fedavg", {})
    prep = prepare(config)
    return sum(int(p.numel()) for p in prep.model.parameters())
