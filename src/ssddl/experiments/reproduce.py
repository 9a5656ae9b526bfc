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
import json
import os
import platform
import shutil
import statistics
import tempfile
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

__all__ = ["Plan", "e1_modes", "fmt", "reproduce", "spread"]

#: the partitions E1 also runs on (first dataset, the schemes in ``Plan.noniid_schemes``)
NONIID: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("dirichlet α=0.3", {"partition": "dirichlet", "alpha": 0.3}),
    ("shards", {"partition": "shards", "shards_per_participant": 2}),
)


def e1_modes() -> tuple[tuple[str, str, Mapping[str, Any]], ...]:
    """E1's schemes, as (label, mode, extra ExperimentConfig fields): every ``compared`` run
    of the catalogue of modes (:func:`ssddl.modes.comparison`) — the baselines (centralized,
    standalone, FedAvg, the paper's DSSGD (round robin) at θu = 0.01 and 0.1, the parallel
    DSSGD variant, Phong over Paillier and over BFV), then SSDDL's secure modes."""
    return modes.comparison()


Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Plan:
    """The sizes of a reproduce run. Every accuracy figure is run once per seed of
    ``seeds``; ``noniid_schemes`` (labels) also run on each partition of :data:`NONIID`
    (first dataset). The cost table measures every scheme ``cost_repeats`` times with
    ``participants`` members and ``cost_model_size`` parameters."""

    quick: bool
    datasets: tuple[str, ...]
    participants: int
    rounds: int
    epochs: int
    seeds: tuple[int, ...] = (0, 1, 2)
    paillier_real_rounds: int = 1
    paillier_real_participants: int | None = None
    group_sizes: tuple[int, ...] = (5, 10, 20, 50, 100)
    model_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    data_dir: str | None = None
    noniid_schemes: tuple[str, ...] = ("standalone", "fedavg", "dssgd-rr θu=0.1", "ssddl prg")
    cost_model_size: int = 100_000
    cost_repeats: int = 3
    mnist_note: str = ""

    @property
    def seed(self) -> int:
        return self.seeds[0]

    @classmethod
    def make(cls, *, quick: bool, data_dir: str | None) -> Plan:
        datasets: tuple[str, ...] = ("digits", "mnist1d")
        if data_dir is None:
            note = "MNIST not run: no --data-dir given (it holds the IDX files)"
        else:
            _check_mnist_dir(Path(data_dir))  # a typo must not drop MNIST silently
            datasets += ("mnist",)
            note = f"MNIST from the IDX files in {data_dir}"
        if quick:
            return cls(
                True, datasets, 3, 2, 1, (0, 1),
                paillier_real_participants=1,
                group_sizes=(3, 5), model_sizes=(10_000, 30_000), data_dir=data_dir,
                cost_model_size=10_000, cost_repeats=2, mnist_note=note,
            )  # fmt: skip
        return cls(
            False, datasets, 10, 10, 1, (0, 1, 2),
            paillier_real_participants=2,
            group_sizes=(5, 10, 20, 50), model_sizes=(10_000, 100_000, 1_000_000),
            data_dir=data_dir, mnist_note=note,
        )  # fmt: skip


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


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for one value) of ``values``."""
    data = [float(v) for v in values]
    if not data:
        return float("nan"), float("nan")
    return statistics.fmean(data), statistics.stdev(data) if len(data) > 1 else 0.0


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


def _experiment(
    plan: Plan,
    dataset: str,
    mode: str,
    extra: Mapping[str, Any],
    seed: int | None = None,
    partition: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    protocol: dict[str, Any] = {"mode": mode, "rounds": plan.rounds}
    data: dict[str, Any] = {
        "dataset": dataset,
        "participants": plan.participants,
        "seed": plan.seed if seed is None else seed,
        "protocol": protocol,
        "train": {"epochs": plan.epochs},
        **(partition or {}),
        **extra,
    }
    if dataset == "mnist":
        data["data_dir"] = plan.data_dir
    return ExperimentConfig.from_dict(data)


@dataclass(frozen=True)
class _Run:
    """One E1 run: a scheme on a dataset and partition with one seed."""

    dataset: str
    partition: str
    seed: int
    label: str
    mode: str
    config: ExperimentConfig


def _planned_runs(plan: Plan) -> list[_Run]:
    runs = []
    for dataset in plan.datasets:
        for seed in plan.seeds:
            for label, mode, extra in e1_modes():
                config = _experiment(plan, dataset, mode, extra, seed)
                runs.append(_Run(dataset, "iid", seed, label, mode, config))
    chosen = [c for c in e1_modes() if c[0] in plan.noniid_schemes]
    for name, partition in NONIID:
        for seed in plan.seeds:
            for label, mode, extra in chosen:
                config = _experiment(plan, plan.datasets[0], mode, extra, seed, partition)
                runs.append(_Run(plan.datasets[0], name, seed, label, mode, config))
    return runs


def _run_rows(plan: Plan, run: _Run, first: bool) -> list[dict[str, Any]]:
    """The per-round rows of one run. Phong-Paillier runs its first ``paillier_real_rounds``
    rounds on real ciphertexts (``paillier_real_participants`` members encrypting their own
    update) in the first of its runs only; the others run the same fixed-point arithmetic
    in the clear, which decrypts to the same words (the accuracy does not depend on it)."""
    from ssddl.experiments.run import (
        prepare,
        run_baseline_experiment,
        run_experiment,
        runner_config,
    )
    from ssddl.runtime.simulator import RoundMetrics

    config = run.config
    if config.runner is None:
        return [RoundMetrics.as_row(m) for m in run_experiment(config).history]
    runner = runner_config(config)
    if config.runner == "phong-paillier":
        runner = dataclasses.replace(
            runner,
            he_real_rounds=plan.paillier_real_rounds if first else 0,
            he_real_participants=plan.paillier_real_participants,
        )
    result = run_baseline_experiment(config, prep=prepare(config), runner=runner)
    rows = [dict(r) for r in result.rows]
    if config.runner == "phong-paillier":
        for r in rows:
            r["real_participants"] = result.extra["real_participants"] if r["encrypted"] else 0
    return rows


E1_COLUMNS = (
    "dataset", "partition", "seed", "scheme", "mode", "round", "accuracy", "loss",
    "upload_bytes_mean", "download_bytes_mean", "train_seconds_mean", "share_seconds_mean",
    "decrypt_seconds_mean", "server_seconds", "round_seconds", "encrypted", "real_participants",
)  # fmt: skip


def _train_runs(plan: Plan, out: Path, progress: Progress) -> list[dict[str, Any]]:
    """Every E1 run (each scheme, dataset and seed; the non-iid partitions); returns the
    per-round rows (with dataset, partition, seed, scheme)."""
    rows: list[dict[str, Any]] = []
    runs = _planned_runs(plan)
    first_paillier = True
    for done, run in enumerate(runs):
        what = f"E1 {run.dataset} {run.partition} seed {run.seed} {run.label}"
        progress(what, done, len(runs))
        first = run.mode == "phong-paillier" and first_paillier
        first_paillier = first_paillier and run.mode != "phong-paillier"
        for r in _run_rows(plan, run, first):
            r.setdefault("encrypted", "")
            r.setdefault("decrypt_seconds_mean", 0.0)
            r.setdefault("real_participants", "")
            rows.append(
                {
                    "dataset": run.dataset,
                    "partition": run.partition,
                    "seed": run.seed,
                    "scheme": run.label,
                    "mode": run.mode,
                    **r,
                }
            )
    progress("E1 done", len(runs), len(runs))
    _write_csv(out / "e1_rounds.csv", [{c: r[c] for c in E1_COLUMNS} for r in rows])
    return rows


def _final(
    rows: list[dict[str, Any]], dataset: str, partition: str, label: str
) -> dict[int, float]:
    """Each seed's final test accuracy of one scheme on one dataset and partition."""
    last: dict[int, float] = {}
    for r in rows:
        if r["dataset"] == dataset and r["partition"] == partition and r["scheme"] == label:
            last[int(r["seed"])] = float(r["accuracy"])  # rows are in round order
    return last


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


def _e3_split(
    mine: list[dict[str, Any]], mode: str, codec: tuple[float, float] | None
) -> dict[str, float]:
    """One scheme's seconds per round and member, split as E3 shows them."""

    def mean(key: str) -> float:
        return statistics.fmean(float(r[key]) for r in mine)

    share, server, decrypt = (
        mean("share_seconds_mean"),
        mean("server_seconds"),
        mean("decrypt_seconds_mean"),
    )
    encode_s, decode_s, sharing = 0.0, 0.0, 0.0
    if codec is not None:
        encode_s, decode_s = codec
        sharing = max(share - encode_s, 0.0)
        server = max(server - decode_s, 0.0)
    elif mode.startswith("phong"):
        encode_s, decode_s = share, decrypt
    else:
        sharing = share  # clipping or DSSGD's selection, in the clear
    return {
        "local_training": mean("train_seconds_mean"),
        "encoding_encryption": encode_s,
        "sharing": sharing,
        "server_aggregation": server,
        "decoding_decryption": decode_s,
    }


def _e2_e3(rows: list[dict[str, Any]], plan: Plan, out: Path, model_size: int) -> None:
    """E2 and E3 from the runs of the first dataset, iid, first seed (the run in which
    Phong-Paillier used real ciphertexts; bytes do not depend on the seed, and the fair
    seconds are the cost table's)."""
    e2, e3 = [], []
    secure = modes.secure_modes()
    codec = {m: _codec_seconds(model_size, m, plan) for m in secure}
    float32 = 4 * model_size
    for label, mode, _ in e1_modes():
        mine = [
            r for r in rows
            if (r["dataset"], r["partition"], r["scheme"], int(r["seed"]))
            == (plan.datasets[0], "iid", label, plan.seed)
        ]  # fmt: skip
        if not mine:
            continue
        up = statistics.fmean(float(r["upload_bytes_mean"]) for r in mine)
        down = statistics.fmean(float(r["download_bytes_mean"]) for r in mine)
        e2.append(
            {
                "scheme": label,
                "upload_bytes": _whole(up),
                "download_bytes": _whole(down),
                "upload_vs_float32": round(up / float32, 3),
            }
        )
        split = _e3_split(mine, mode, codec.get(mode))
        privacy = sum(v for k, v in split.items() if k != "local_training")
        e3.append(
            {
                "scheme": label,
                **{k: round(v, 5) for k, v in split.items()},
                "privacy_seconds": round(privacy, 5),
            }
        )
    _write_csv(out / "e2_bytes.csv", e2)
    _write_csv(out / "e3_seconds.csv", e3)


def _whole(value: float) -> float | int:
    """``value`` rounded to an int, NaN (not measured) kept."""
    return value if value != value else round(value)


def _e1_final(rows: list[dict[str, Any]], plan: Plan, out: Path) -> None:
    table = []
    for label, _, _ in e1_modes():
        entry: dict[str, Any] = {"scheme": label}
        for dataset in plan.datasets:
            mean, std = spread(list(_final(rows, dataset, "iid", label).values()))
            entry[dataset] = round(mean, 4)
            entry[f"{dataset}_std"] = round(std, 4)
        entry["seeds"] = len(plan.seeds)
        table.append(entry)
    _write_csv(out / "e1_final.csv", table)
    noniid = []
    for name, _ in (("iid", {}), *NONIID):
        for label in plan.noniid_schemes:
            mean, std = spread(list(_final(rows, plan.datasets[0], name, label).values()))
            noniid.append(
                {
                    "partition": name,
                    "scheme": label,
                    "accuracy": round(mean, 4),
                    "accuracy_std": round(std, 4),
                    "seeds": len(plan.seeds),
                }
            )
    _write_csv(out / "e1_noniid.csv", noniid)


# -- costs: CPU and wall time, repeated, every scheme at one point -----------------------------


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread, so a mask engine's thread is in) and of
    its children that have ended (``resource.getrusage``)."""
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


@dataclass
class _Sample:
    """One repeat of one scheme's round: CPU and wall seconds of everything it computes
    (all members and the server), the setup CPU seconds (SSDDL: its Init, part of ``cpu``;
    Phong: key generation, not part of it), and bytes per member."""

    cpu: float
    wall: float
    setup_cpu: float
    up: float
    down: float


def _ssddl_sample(mode: str, n: int, model_size: int, seed: int) -> _Sample:
    """A one-round session with a synthetic change: the CPU of every member and the server,
    the mask engine's background thread (and a worker process, if one ran) included. Init
    is charged too: a member starts building its first round's mask during Init (each
    later round builds the next one's), so the round alone would miss it; Init's key
    agreement rides along (``setup`` says how much Init took)."""
    from ssddl.protocol.localtrain import LocalUpdate
    from ssddl.protocol.select import UniformSubset
    from ssddl.runtime.inmemory import InMemoryExchange
    from ssddl.runtime.masking import MaskEngine
    from ssddl.runtime.session import Session

    ids = list(range(1, n + 1))
    protocol = ProtocolConfig(mode=mode, rounds=1, max_samples=64)
    delta = np.random.default_rng(model_size + n + seed).normal(0, 0.01, model_size)

    def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
        return LocalUpdate(delta, 32)

    exchange = InMemoryExchange()
    masks = MaskEngine("thread")
    try:
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        session = Session.build(
            protocol,
            dict.fromkeys(ids, trainer),
            np.zeros(model_size, dtype=np.float32),
            selection=UniformSubset(np.random.default_rng(seed)),
            rounding_rngs={p: np.random.default_rng(p) for p in ids},
            masks=masks,
            exchange=exchange.attach,
        )
        session.driver.init()
        cpu1 = cpu_seconds() + masks.worker_cpu_seconds()
        outcome = session.driver.round()
        session.driver.finish()
        worker = masks.worker_cpu_seconds()
        masks.close()  # waits for every mask job still on the thread: charged to the round
        cpu2, wall2 = cpu_seconds() + worker, time.perf_counter()
    finally:
        masks.close()
    traffic = exchange.bytes_by_participant(outcome.round)
    up = statistics.fmean(traffic[p].get("up", 0) for p in ids)
    down = statistics.fmean(traffic[p].get("down", 0) for p in ids)
    return _Sample(cpu2 - cpu0, wall2 - wall0, cpu1 - cpu0, up, down)


def _phong_sample(mode: str, key_bits: int, n: int, model_size: int, seed: int) -> _Sample:
    """Phong's round with real ciphertexts: every member encodes and encrypts its update
    and decrypts the downloaded E(w), the server adds the n uploads. One member's
    encryption and decryption are measured and charged n times (each member does the same
    work); the server's n−1 additions are measured and scaled to n."""
    from ssddl.baselines.runners import RunnerConfig, make_he_backend
    from ssddl.hazmat.codec import encode

    backend = make_he_backend(mode, RunnerConfig(rounds=1, he_key_bits=key_bits), n)
    cpu0 = cpu_seconds()
    keys = backend.keygen()
    setup = cpu_seconds() - cpu0
    delta = np.random.default_rng(model_size + n + seed).normal(0, 0.01, model_size)
    marks = [(cpu_seconds(), time.perf_counter())]
    blob = backend.ciphertext_to_bytes(backend.encrypt(keys.public, encode(delta, backend.codec)))
    marks.append((cpu_seconds(), time.perf_counter()))
    one = backend.ciphertext_from_bytes(keys.public, blob)
    total = one
    for _ in range(n - 1):
        total = backend.add(total, one)
    marks.append((cpu_seconds(), time.perf_counter()))
    down = backend.ciphertext_to_bytes(total)
    backend.decrypt(keys.secret, backend.ciphertext_from_bytes(keys.public, down))
    marks.append((cpu_seconds(), time.perf_counter()))
    scale = (n, n / max(n - 1, 1), n)
    cost = [sum(k * (marks[i + 1][j] - marks[i][j]) for i, k in enumerate(scale)) for j in (0, 1)]
    return _Sample(cost[0], cost[1], setup, float(len(blob)), float(len(down)))


def cost_schemes() -> tuple[tuple[str, str, int], ...]:
    """The cost table's rows: (label, mode, Paillier key bits): SSDDL's secure modes, FedAvg,
    Phong on Paillier at 2048 bits and at 3072 bits (the paper's size, 128-bit security)
    and on BFV (the stand-in for the paper's LWE scheme)."""
    own = tuple((f"ssddl {m}", m, 0) for m in modes.secure_modes())
    return (
        *own,
        ("fedavg", "fedavg", 0),
        ("phong-paillier-2048", "phong-paillier", 2048),
        ("phong-paillier-3072", "phong-paillier", 3072),
        ("phong-bfv-4096", "phong-bfv", 0),
    )


def _costs(plan: Plan, out: Path, progress: Progress) -> list[dict[str, Any]]:
    n, m = plan.participants, plan.cost_model_size
    schemes = cost_schemes()
    rows: list[dict[str, Any]] = []
    total = len(schemes) * plan.cost_repeats
    for index, (label, mode, bits) in enumerate(schemes):
        samples = []
        for repeat in range(plan.cost_repeats):
            progress(
                f"costs {label} repeat {repeat + 1}", index * plan.cost_repeats + repeat, total
            )
            if mode.startswith("phong"):
                samples.append(_phong_sample(mode, bits, n, m, repeat))
            else:
                samples.append(_ssddl_sample(mode, n, m, repeat))
        cpu, cpu_std = spread([s.cpu for s in samples])
        wall, wall_std = spread([s.wall for s in samples])
        rows.append(
            {
                "scheme": label, "participants": n, "model_size": m,
                "repeats": len(samples),
                "cpu_seconds": round(cpu, 5), "cpu_seconds_std": round(cpu_std, 5),
                "wall_seconds": round(wall, 5), "wall_seconds_std": round(wall_std, 5),
                "setup_cpu_seconds": round(spread([s.setup_cpu for s in samples])[0], 5),
                "upload_bytes": round(samples[0].up), "download_bytes": round(samples[0].down),
                "cpu_samples": " ".join(f"{s.cpu:.5g}" for s in samples),
            }
        )  # fmt: skip
    progress("costs done", total, total)
    prg = next(r for r in rows if r["scheme"] == "ssddl prg")
    for r in rows:
        r["cpu_vs_prg"] = round(r["cpu_seconds"] / max(prg["cpu_seconds"], 1e-9), 2)
    _write_csv(out / "costs.csv", rows)
    return rows


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
        if label.startswith("dssgd-rr θu=0.01"):
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


# -- SecAgg+ and DP: reference rows --------------------------------------------------------------


def _secaggplus(plan: Plan, out: Path, progress: Progress) -> dict[str, Any]:
    """Flower's SecAgg+ beside SSDDL (prg, on Flower) at the cost point, measured in this
    run with ``benchmarks/bench_flower.py`` (a source checkout with Flower installed), or
    why not."""
    import importlib.util
    import sys

    checkout = Path(__file__).resolve().parents[3]
    if not (checkout / "benchmarks" / "bench_flower.py").is_file():
        return {"status": "not run", "reason": "benchmarks/ not found (not a source checkout)"}
    if importlib.util.find_spec("flwr") is None:
        return {
            "status": "not run",
            "reason": "Flower is not installed (pip install -e '.[flower]')",
        }
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    from benchmarks import bench_flower

    n, m = plan.participants, plan.cost_model_size
    shares = min(bench_flower.NUM_SHARES, n)
    threshold = min(bench_flower.THRESHOLD, n // 2 + 1)
    # Ray's session files (sockets, logs) stay out of the report's directory; kept on error
    scratch = Path(tempfile.mkdtemp(prefix="ssddl-secaggplus-"))
    result: dict[str, Any] = {
        "status": "measured",
        "source": "benchmarks/bench_flower.py (Flower simulation engine, Ray), this run",
        "participants": n, "model_size": m, "rounds": 3, "num_shares": shares,
        "threshold": threshold, "entries": {},
    }  # fmt: skip
    for done, entry in enumerate(("secagg+", "ssddl")):
        progress(f"secagg+ {entry}", done, 2)
        spec = bench_flower.Spec(entry, n, m, 3, num_shares=shares, threshold=threshold, pull=0.005)
        row = bench_flower.run_point(spec, scratch, 600.0)
        keep = ("round_seconds", "upload_bytes_per_client", "download_bytes_per_client", "error")
        result["entries"][entry] = {k: row[k] for k in keep if k in row}
    progress("secagg+ done", 2, 2)
    if not any("error" in e for e in result["entries"].values()):
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _dp(plan: Plan, out: Path, progress: Progress) -> dict[str, Any]:
    """The DP experiment (:mod:`ssddl.experiments.dp_curve`): accuracy against ε for SSDDL
    with distributed DP and DP-FedAvg with central noise, FedAvg as the reference."""
    from ssddl.experiments.dp_curve import DpPlan, run_dp

    return run_dp(DpPlan.make(quick=plan.quick, seeds=plan.seeds), out, progress)


# -- figures -----------------------------------------------------------------------------------


def _curves(
    rounds: list[dict[str, str]], dataset: str, label: str
) -> tuple[list[int], list[float], list[float]]:
    """Round numbers, mean and standard deviation over seeds of one scheme's accuracy."""
    mine = [r for r in rounds if r["dataset"] == dataset and r["partition"] == "iid"]
    mine = [r for r in mine if r["scheme"] == label]
    by_round: dict[int, list[float]] = {}
    for r in mine:
        by_round.setdefault(int(r["round"]), []).append(float(r["accuracy"]))
    xs = sorted(by_round)
    stats = [spread(by_round[x]) for x in xs]
    return [x + 1 for x in xs], [s[0] for s in stats], [s[1] for s in stats]


def _e1_figures(plan: Plan, out: Path, plt: Any) -> None:
    rounds = _read_csv(out / "e1_rounds.csv")
    for dataset in plan.datasets:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # a colour for each scheme
        for label, _, _ in e1_modes():
            xs, mean, std = _curves(rounds, dataset, label)
            ax.errorbar(xs, mean, yerr=std, marker="o", markersize=3, capsize=2, label=label)
        ax.set_xlabel(f"round ({plan.epochs} local epoch(s) each)")
        ax.set_ylabel(f"test accuracy (mean ± std over {len(plan.seeds)} seeds)")
        ax.set_title(f"E1 accuracy — {dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"e1_{dataset}.png", dpi=100)
        plt.close(fig)
    noniid = _read_csv(out / "e1_noniid.csv")
    fig, ax = plt.subplots(figsize=(8, 4))
    parts = list(dict.fromkeys(r["partition"] for r in noniid))
    width = 0.8 / max(len(plan.noniid_schemes), 1)
    for k, label in enumerate(plan.noniid_schemes):
        mine = [
            next(r for r in noniid if r["partition"] == p and r["scheme"] == label) for p in parts
        ]
        pos = np.arange(len(parts)) + k * width
        ax.bar(pos, [float(r["accuracy"]) for r in mine], width, label=label,
               yerr=[float(r["accuracy_std"]) for r in mine], capsize=3)  # fmt: skip
    ax.set_xticks(list(np.arange(len(parts)) + 0.4 - width / 2), parts)
    ax.set_ylabel(f"final test accuracy ({plan.datasets[0]}, ± std)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "e1_noniid.png", dpi=100)
    plt.close(fig)


def _bar_figures(out: Path, plt: Any) -> None:
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
    parts = ["local_training", "encoding_encryption", "sharing", "server_aggregation",
             "decoding_decryption"]  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(len(e3))
    for part in parts:
        values = np.array([float(r[part]) for r in e3])
        ax.bar(np.arange(len(e3)), values, bottom=bottom, label=part)
        bottom += values
    ax.set_xticks(list(range(len(e3))), [r["scheme"] for r in e3], rotation=30, ha="right")
    ax.set_ylabel("seconds / round (mean over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "e3_seconds.png", dpi=100)
    plt.close(fig)
    costs = _read_csv(out / "costs.csv")
    fig, ax = plt.subplots(figsize=(8, 4))
    pos = np.arange(len(costs))
    ax.bar(pos - 0.2, [float(r["cpu_seconds"]) for r in costs], 0.4, label="CPU",
           yerr=[float(r["cpu_seconds_std"]) for r in costs], capsize=3)  # fmt: skip
    ax.bar(pos + 0.2, [float(r["wall_seconds"]) for r in costs], 0.4, label="wall",
           yerr=[float(r["wall_seconds_std"]) for r in costs], capsize=3)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(list(pos), [r["scheme"] for r in costs], rotation=30, ha="right")
    ax.set_ylabel("seconds / round, all members + server (± std)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "costs.png", dpi=100)
    plt.close(fig)


def _e6_figure(out: Path, plt: Any) -> None:
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


def _figures(plan: Plan, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _e1_figures(plan, out, plt)
    _bar_figures(out, plt)
    _e6_figure(out, plt)


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


#: Phong's rows of the headline, against SSDDL prg at the cost point
HEADLINE = (
    ("phong-paillier-2048", "paillier_2048"),
    ("phong-paillier-3072", "paillier"),
    ("phong-bfv-4096", "lattice"),
)


def _headline(out: Path) -> list[str]:
    """Phong over SSDDL prg as ratios of CPU time, wall time and bytes, from costs.csv
    (also written as headline.csv)."""
    costs = {r["scheme"]: r for r in _read_csv(out / "costs.csv")}
    prg = costs["ssddl prg"]
    rows = []

    def ratio(he: dict[str, str], key: str) -> float:
        return round(float(he[key]) / max(float(prg[key]), 1e-9), 2)

    for scheme, _ in HEADLINE:
        he = costs[scheme]
        rows.append(
            {
                "comparison": f"{scheme} / ssddl prg",
                "cpu_seconds_ratio": ratio(he, "cpu_seconds"),
                "wall_seconds_ratio": ratio(he, "wall_seconds"),
                "upload_bytes_ratio": ratio(he, "upload_bytes"),
                "download_bytes_ratio": ratio(he, "download_bytes"),
            }
        )
    _write_csv(out / "headline.csv", rows)
    return _table(out / "headline.csv")


def _paillier_note(out: Path) -> str:
    rounds = _read_csv(out / "e1_rounds.csv")
    paillier = [r for r in rounds if r["mode"] == "phong-paillier"]
    real = sorted({int(r["round"]) for r in paillier if r["encrypted"] == "True"})
    sampled = sorted({r["real_participants"] for r in paillier if r["encrypted"] == "True"})
    return (
        f"Phong with Paillier (2048-bit keys in E1: the accuracy does not depend on the key "
        f"size) ran on real ciphertexts in round(s) {real or 'none'} of its first run only "
        f"(members encrypting their own update per real round: {', '.join(sampled) or '—'}; "
        "the others' updates went in as one encryption); its other runs and rounds ran the "
        "same fixed-point arithmetic in the clear "
        "(`encrypted` column of `e1_rounds.csv`), which decrypts to the same words bit for "
        "bit. BFV ran every round on real ciphertexts. Phong runs as in the paper: the "
        "server holds E(w) and the members take turns (the paper's asynchronous SGD, one "
        "member at a time), each downloading and decrypting the current E(w), training and "
        "uploading E(Δw), added at once; so its curve is not FedAvg's. (The synchronous "
        'variant, FedAvg on ciphertexts, is `RunnerConfig(he_schedule="sync")`.) Phong\'s '
        "accuracy would differ from FedAvg's even synchronously because its members train "
        "with other training seeds (the baseline runner derives them otherwise than the "
        "simulator), not because of the encryption: its decrypted sums are exact, identical "
        "for both back ends."
    )


def _intro(plan: Plan, command: str, seconds: float) -> list[str]:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return [
        "# ssddl reproduce — SSDDL against its baselines",
        "",
        f"Command: `{command}`",
        "",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPU(s), "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        f"- versions: {_versions()}",
        f"- seeds {', '.join(map(str, plan.seeds))} (data split, model, training; keys always "
        "from the OS CSPRNG); every accuracy is the mean ± sample standard deviation over them",
        f"- {plan.participants} participants, iid split (and Dirichlet α = 0.3, shards), MLP, "
        f"{plan.rounds} rounds of {plan.epochs} local epoch(s), SGD lr 0.05 momentum 0.9, "
        "batch 32" + (" (quick: small sizes, not the headline figures)" if plan.quick else ""),
        f"- {plan.mnist_note}",
        f"- finished {now} after {seconds:.0f} s",
        "",
    ]


def _e1_section(plan: Plan, out: Path) -> list[str]:
    return [
        "## E1 — test accuracy",
        "",
        "Final test accuracy per scheme, mean and standard deviation over the seeds (the "
        "curves with error bars: `e1_<dataset>.png`; every round of every seed in "
        "`e1_rounds.csv`). Standalone is the mean over participants. DSSGD is the paper's "
        "algorithm (`dssgd-rr`: round robin, each member keeps its local model, downloads "
        "the θd = 1 fraction of the global parameters that changed most, uploads its θu "
        "largest changes, which the server adds); `dssgd-parallel` is a variant, not the "
        "paper's (every member at once, the server averages the sparse uploads), shown as "
        "such. Phong-BFV uses BFV as a stand-in for the paper's LWE scheme.",
        "",
        *_table(out / "e1_final.csv"),
        "",
        _paillier_note(out),
        "",
        *[f"![E1 {d}](e1_{d}.png)" for d in plan.datasets],
        "",
        f"### E1 on non-iid partitions ({plan.datasets[0]})",
        "",
        *_table(out / "e1_noniid.csv"),
        "",
        "![E1 non-iid](e1_noniid.png)",
        "",
    ]


def _cost_section(plan: Plan, out: Path) -> list[str]:
    return [
        f"## Costs — CPU and wall time per round at n = {plan.participants}, "
        f"M = {plan.cost_model_size:,}",
        "",
        f"Every scheme at the same point, {plan.cost_repeats} repeats (mean ± sample std; "
        "each repeat's CPU seconds in `cpu_samples`), no training. CPU = "
        "`time.process_time()` of this process (every thread: SSDDL's mask engine builds "
        "masks on a background thread, which is counted) plus ended children "
        "(`getrusage`) and the mask worker process if one ran. Charged: everything the "
        "round computes for all members and the server. SSDDL: a one-round session through "
        "the real protocol, Init included because a member starts its first mask during "
        "Init (`setup_cpu_seconds` is the part Init took, key agreement included, which "
        "over-charges SSDDL): masks, sharing, encoding, aggregation, decoding. Phong: every "
        "member encodes and encrypts its update and decrypts the downloaded E(w), the "
        "server adds the n uploads (one member's encryption and decryption measured and "
        "charged n times); key generation, once per training run, is apart "
        "(`setup_cpu_seconds`, not in `cpu_seconds`). Paillier at 2048 bits (≈112-bit "
        "security) and 3072 bits (≈128-bit, NIST SP 800-57; the level of the paper's "
        "LWE parameters); BFV (TenSEAL, N = 4096, log q = 109, 128-bit) "
        "stands in for the paper's LWE scheme.",
        "",
        *_table(out / "costs.csv"),
        "",
        "![costs](costs.png)",
        "",
        "## Headline — Phong against SSDDL (prg), at the cost point",
        "",
        *_headline(out),
        "",
    ]


def report_from_csvs(plan: Plan, out: Path, command: str, seconds: float) -> str:
    lines = [
        *_intro(plan, command, seconds),
        *_e1_section(plan, out),
        f"## E2 — bytes per participant per round ({plan.datasets[0]})",
        "",
        *_table(out / "e2_bytes.csv"),
        "",
        "![E2](e2_bytes.png)",
        "",
        f"## E3 — seconds per round, per participant ({plan.datasets[0]}, wall)",
        "",
        f"From the E1 runs ({plan.datasets[0]}, iid, seed {plan.seed}). SSDDL's encoding "
        "and decoding are timed apart on a model-sized vector and taken out of its "
        "ParaShare and server times; Phong's encryption and decryption are measured in "
        "its real rounds. Wall time on a shared machine: the fair comparison is the cost "
        "table below.",
        "",
        *_table(out / "e3_seconds.csv"),
        "",
        "![E3](e3_seconds.png)",
        "",
        *_cost_section(plan, out),
        "## E6 — scaling of one round's protocol cost (no training, wall, one sample)",
        "",
        "SSDDL and FedAvg: one real protocol round with a synthetic change; Phong-BFV: real "
        "ciphertexts; Phong-Paillier (2048): measured at the smallest model size and scaled "
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


# -- results.json ------------------------------------------------------------------------------


def _seeded(rows: list[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    """E1's rows for results.json: each scheme, dataset and partition with every seed's
    final accuracy, their mean and spread."""
    keys = dict.fromkeys((r["dataset"], r["partition"], r["scheme"]) for r in rows)
    found = []
    for dataset, partition, label in keys:
        final = _final(rows, dataset, partition, label)
        mean, std = spread(list(final.values()))
        found.append(
            {
                "dataset": dataset,
                "partition": partition,
                "scheme": label,
                "seeds": sorted(final),
                "values": [final[s] for s in sorted(final)],
                "mean": mean,
                "spread": std,
                "spread_kind": "sample standard deviation",
            }
        )
    return found


def _csv_rows(out: Path, name: str, seeds: list[int], metric: str | None) -> list[dict[str, Any]]:
    """A CSV's rows for results.json, with the seeds behind each, and the mean and spread of
    ``metric`` (its ``_std`` column; none if the table is of one seed)."""
    found = []
    for r in _read_csv(out / name):
        entry: dict[str, Any] = {**r, "seeds": seeds}
        if metric is not None:
            std = r.get(f"{metric}_std")
            entry["mean"] = float(r[metric])
            entry["spread"] = None if std is None else float(std)
            entry["spread_kind"] = (
                "sample standard deviation"
                if std is not None
                else f"one seed ({seeds[0]}); the cost table has repeats with their spread"
            )
        found.append(entry)
    return found


def _results(
    plan: Plan, out: Path, rows: list[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    seeds = list(plan.seeds)
    costs = []
    for r in _read_csv(out / "costs.csv"):
        samples = [float(x) for x in r["cpu_samples"].split()]
        costs.append(
            {
                **r,
                "seeds": list(range(len(samples))),
                "values": samples,
                "mean": float(r["cpu_seconds"]),
                "spread": float(r["cpu_seconds_std"]),
                "spread_kind": "sample standard deviation over repeats",
            }
        )
    e6 = [
        {**r, "seeds": [0], "mean": float(r["member_seconds"]), "spread": None,
         "spread_kind": "one sample (scaling sweep; the cost table has the repeats)"}
        for r in _read_csv(out / "e6_scaling.csv")
    ]  # fmt: skip
    return {
        "plan": {k: v for k, v in dataclasses.asdict(plan).items()},
        "seeds": seeds,
        "e1_dssgd_variant": modes.DSSGD_E1_VARIANT,
        "experiments": {
            "e1": _seeded(rows, plan),
            "e2": _csv_rows(out, "e2_bytes.csv", [plan.seed], "upload_bytes"),
            "e3": _csv_rows(out, "e3_seconds.csv", [plan.seed], "privacy_seconds"),
            "costs": costs,
            "e6": e6,
            "e7": _csv_rows(out, "e7_properties.csv", [], None),
        },
        **extra,
    }


def _ratios(out: Path) -> dict[str, float]:
    by = {r["comparison"].split(" / ")[0]: r for r in _read_csv(out / "headline.csv")}
    return {
        f"cost_cpu_ratio_{key}": float(by[scheme]["cpu_seconds_ratio"]) for scheme, key in HEADLINE
    }


def reproduce(
    out: Path,
    *,
    quick: bool,
    data_dir: str | None,
    command: str,
    progress: Progress | None = None,
    secaggplus: bool = True,
) -> dict[str, Any]:
    """Run the comparison and write ``out/REPORT.md`` and ``out/results.json``; returns the
    summary ``--json`` prints (report and results paths, the seeds, E1's DSSGD variant, the
    cost ratios, the SecAgg+ and DP entries)."""
    plan = Plan.make(quick=quick, data_dir=data_dir)
    report = progress if progress is not None else (lambda *_: None)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rows = _train_runs(plan, out, report)
    _e1_final(rows, plan, out)
    _e2_e3(rows, plan, out, _model_size(plan))
    _costs(plan, out, report)
    _e6(plan, out, report)
    _e7(plan, out)
    _figures(plan, out)
    reference = {
        "secaggplus": _secaggplus(plan, out, report) if secaggplus else
        {"status": "not run", "reason": "skipped on request"},
        "dp": _dp(plan, out, report),
    }  # fmt: skip
    path = out / "REPORT.md"
    text = report_from_csvs(plan, out, command, time.perf_counter() - started)
    path.write_text(text + _reference_section(reference, out))
    summary = {
        "report": str(path),
        "results": str(out / "results.json"),
        "seeds": list(plan.seeds),
        "e1_dssgd_variant": modes.DSSGD_E1_VARIANT,
        **_ratios(out),
        **reference,
        "seconds": round(time.perf_counter() - started, 1),
    }
    results = _results(plan, out, rows, {k: v for k, v in summary.items() if k != "results"})
    (out / "results.json").write_text(json.dumps(_finite(results), indent=1, sort_keys=True))
    return summary


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _reference_section(reference: dict[str, Any], out: Path) -> str:
    from ssddl.experiments.dp_curve import dp_section

    lines = ["## Reference rows: Flower SecAgg+ and distributed DP", ""]
    sec = reference["secaggplus"]
    if sec.get("status") == "measured":
        lines.append(
            f"Flower SecAgg+ (num_shares {sec['num_shares']}, threshold {sec['threshold']}) "
            f"and SSDDL prg on Flower at n = {sec['participants']}, M = {sec['model_size']:,}, "
            f"{sec['rounds']} rounds, measured in this run with {sec['source']} (wall seconds "
            "per aggregation round, median of rounds 2..R; bytes per client and round):"
        )
        lines += [
            "",
            "| entry | round seconds | upload bytes | download bytes |",
            "|---|---|---|---|",
        ]
        for name, e in sec["entries"].items():
            cells = [fmt(e.get(k, "")) for k in ("round_seconds", "upload_bytes_per_client",
                                                   "download_bytes_per_client")]  # fmt: skip
            lines.append(
                f"| {name} | "
                + " | ".join(cells)
                + " |"
                + (f" {e['error']}" if "error" in e else "")
            )
    else:
        lines.append(f"Flower SecAgg+: {sec['status']} — {sec['reason']}.")
    lines += ["", *dp_section(reference["dp"], out)]
    return "\n".join(lines)


def _model_size(plan: Plan) -> int:
    from ssddl.experiments.run import prepare

    config = _experiment(plan, plan.datasets[0], "fedavg", {})
    prep = prepare(config)
    return sum(int(p.numel()) for p in prep.model.parameters())
