"""Secure aggregation on Flower: Flower's SecAgg+, plain FedAvg and SSDDL through the same
engine and the same harness.

    python -m benchmarks.bench_flower [--quick] [--rounds R] [--pull-interval S] [--repeat K]
                                      [--out DIR]
    python -m benchmarks.bench_flower --engine deployment [--n 5] [--m 100000] [--out DIR]
    python -m benchmarks --only flower --quick

``--pull-interval S`` sets how often the simulation engine's in-memory grid pulls replies, for
every entry alike. Flower's default is 0.1 s, so a round there takes a whole number of pulls
and one late reply moves a short median by 0.1 s; ``ssddl bench`` measures the target point
(N = 10, M = 10^6) again with a 5 ms pull and 8 rounds, three times (``--repeat 3``: the
entries run K times in turn; each ratio is the median of the K repeats' ratios, each against
FedAvg of its own repeat, with their range).

``--engine deployment`` runs the same entries on Flower's deployment engine instead: a TLS
SuperLink with SuperNode authentication and N SuperNodes on 127.0.0.1, started and stopped
(by process group) through ``tests/flower/harness.py``, one ``flwr run`` of
``benchmarks/flower_app`` per point. There SecAgg+ uses num_shares = min(7, N) and threshold
4, or N // 2 + 1 below 7 nodes (N = 5: 5 and 3).

For every N (clients) and M (model entries) each entry runs in a fresh subprocess: Flower's
``run_simulation`` (Ray, kept on 127.0.0.1, one CPU per client actor), N virtual SuperNodes
whose client returns a fixed float32 vector of M entries, R aggregation rounds. Measured:

* seconds per aggregation round — from the strategy's ``configure_fit`` (the first message of
  a round) to its ``aggregate_fit`` (the aggregate is ready), median over rounds 2..R (round 1
  pays Ray's actor start-up);
* bytes uploaded per client per round — payload bytes of every reply a client sends during
  those rounds (arrays, config/metric values), counted by wrapping the ServerApp's grid.

Ratios are against plain FedAvg measured in the same run. Entries:

* ``fedavg``  — legacy ``DefaultWorkflow`` + ``FedAvg``, plain ``NumPyClient``;
* ``secagg+`` — ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=7,
  reconstruction_threshold=4))`` + ``secaggplus_mod`` (Flower's SecAgg+ exists only on the
  legacy API);
* ``ssddl``   — SSDDL mode ``prg`` with double masking (``ssddl.runtime.flower``: the
  ``SSDDLSession`` workflow + ``SSDDLClient`` ClientApp), two round trips per round;
* ``ssddl-none`` — the same with recovery ``none`` (the paper's: one round trip per round).

A subprocess is used because Ray is initialised once per process; its process group is
killed by pid when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks import environment, markdown_table, write_report

NUM_SHARES = 7
THRESHOLD = 4
FULL_N = (5, 10, 20)
FULL_M = (100_000, 1_000_000)
QUICK_N = (5, 10)
QUICK_M = (100_000,)
DEPLOY_N = (5,)
DEPLOY_M = (100_000,)


@dataclass(frozen=True)
class Spec:
    entry: str
    n: int
    m: int
    rounds: int
    seed: int = 7
    num_shares: int = NUM_SHARES  #: SecAgg+'s
    threshold: int = THRESHOLD  #: SecAgg+'s
    keys: str = ""  #: SSDDL identity keys (deployment: shared by the app's processes)
    #: the simulation engine's grid pull interval in seconds (0: Flower's default, 0.1 s)
    pull: float = 0.0


def spec_from_run_config(run: Any) -> Spec:
    """The point a deployment run measures, from the app's run config."""
    return Spec(
        entry=str(run["entry"]),
        n=int(run["n"]),
        m=int(run["m"]),
        rounds=int(run["rounds"]),
        seed=int(run["seed"]),
        num_shares=int(run["num-shares"]),
        threshold=int(run["threshold"]),
        keys=str(run["keys"]),
        pull=float(run["pull"]),
    )


@dataclass
class RoundClock:
    """Per-round wall time and the payload bytes moved while a round is open."""

    seconds: list[float] = field(default_factory=list)
    up: list[int] = field(default_factory=list)
    down: list[int] = field(default_factory=list)
    _start: float | None = None

    def begin(self) -> None:
        self._start = time.perf_counter()
        self.up.append(0)
        self.down.append(0)

    def end(self) -> None:
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None

    def count(self, up: int, down: int) -> None:
        if self._start is not None:
            self.up[-1] += up
            self.down[-1] += down


@dataclass(frozen=True)
class Entry:
    """A protocol under test: ``server(grid, context, spec, clock)`` runs ``spec.rounds``
    aggregation rounds, calling ``clock.begin()``/``clock.end()`` around each; ``client(spec)``
    returns the ClientApp."""

    name: str
    server: Callable[[Any, Any, Spec, RoundClock], None]
    client: Callable[[Spec], Any]


# -- payload accounting --------------------------------------------------------------------


def _value_bytes(value: Any) -> int:
    if isinstance(value, (bytes, str)):
        return len(value.encode() if isinstance(value, str) else value)
    if isinstance(value, list):
        return sum(_value_bytes(v) for v in value)
    return 8  # int, float, bool: one word


def content_bytes(content: Any) -> int:
    """Payload bytes of a Flower ``RecordDict``: array data plus config/metric values."""
    total = 0
    for record in content.array_records.values():
        total += sum(len(array.data) for array in record.values())
    for cfg in (*content.config_records.values(), *content.metric_records.values()):
        total += sum(_value_bytes(v) for v in cfg.values())
    return total


def count_traffic(grid: Any, clock: RoundClock) -> None:
    """Wrap ``grid.send_and_receive`` so that every round's payload bytes reach ``clock``."""
    inner = grid.send_and_receive

    def send_and_receive(messages: Any, *, timeout: float | None = None) -> Any:
        messages = list(messages)
        down = sum(content_bytes(m.content) for m in messages)
        replies = list(inner(messages, timeout=timeout))
        up = sum(content_bytes(r.content) for r in replies if r.has_content())
        clock.count(up, down)
        return replies

    grid.send_and_receive = send_and_receive


# -- the Flower entries (imported in the worker only) -------------------------------------


def _client_vector(spec: Spec, node_id: int) -> Any:
    import numpy as np

    rng = np.random.default_rng([spec.seed, node_id % (1 << 63)])
    return rng.normal(0.0, 0.5, size=spec.m).astype(np.float32)


def _legacy_client(spec: Spec, *, secagg: bool) -> Any:
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod

    class Client(NumPyClient):
        def __init__(self, node_id: int) -> None:
            self.node_id = node_id

        def fit(self, parameters: Any, config: Any) -> Any:
            return [_client_vector(spec, self.node_id)], 1, {}

    def client_fn(context: Any) -> Any:
        return Client(context.node_id).to_client()

    return ClientApp(client_fn=client_fn, mods=[secaggplus_mod] if secagg else [])


def _legacy_server(spec: Spec, grid: Any, context: Any, clock: RoundClock, secagg: bool) -> None:
    import numpy as np
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    class TimedFedAvg(FedAvg):
        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
            clock.begin()
            return super().configure_fit(server_round, parameters, client_manager)

        def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
            out = super().aggregate_fit(server_round, results, failures)
            clock.end()
            return out

    strategy = TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=spec.n,
        min_available_clients=spec.n,
        initial_parameters=ndarrays_to_parameters([np.zeros(spec.m, dtype=np.float32)]),
    )
    fit_workflow = (
        SecAggPlusWorkflow(
            num_shares=spec.num_shares, reconstruction_threshold=spec.threshold, timeout=600
        )
        if secagg
        else None
    )
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=spec.rounds), strategy=strategy)
    DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)


def identity_dir(scratch: Path, n: int) -> Path:
    """SSDDL identity keys and roster for N nodes under ``scratch`` (written once, read by
    the ServerApp and every ClientApp, in whatever process they run)."""
    from ssddl.runtime.keyfiles import write_identities

    directory = scratch / f"identities-{n}"
    if not (directory / "roster.json").exists():
        directory.mkdir(parents=True, exist_ok=True)
        write_identities(directory, n)
    return directory


def _key_dir(spec: Spec) -> Path:
    if not spec.keys:
        raise ValueError("an SSDDL point needs Spec.keys (see identity_dir)")
    return Path(spec.keys)


def _ssddl_client(spec: Spec, keys: Path) -> Any:
    from flwr.clientapp import ClientApp

    from ssddl.protocol.localtrain import LocalUpdate
    from ssddl.protocol.policy import ParticipantPolicy
    from ssddl.runtime.flower import NodeSettings, SSDDLClient
    from ssddl.runtime.keyfiles import identity_file, load_identity, load_roster

    def settings(context: Any) -> NodeSettings:
        part = int(context.node_config["partition-id"])
        return NodeSettings(
            identity=load_identity(identity_file(keys, part + 1)),
            roster=load_roster(keys / "roster.json"),
            policy=ParticipantPolicy(),
        )

    def train(weights: Any, round_number: int, participant: int, context: Any) -> LocalUpdate:
        return LocalUpdate(_client_vector(spec, participant), 1)

    client = SSDDLClient(train, settings=settings)
    app = ClientApp()
    app.query("ssddl")(client.query)
    return app


def _ssddl_server(
    spec: Spec, grid: Any, context: Any, clock: RoundClock, keys: Path, recovery: str
) -> None:
    import numpy as np
    from flwr.app import ArrayRecord

    from ssddl.protocol.config import ProtocolConfig, Recovery
    from ssddl.runtime.flower import SSDDLSession, WorkflowConfig
    from ssddl.runtime.keyfiles import load_roster

    protocol = ProtocolConfig(
        mode="prg", rounds=spec.rounds, recovery=Recovery(recovery), max_samples=1
    )
    config = WorkflowConfig(
        protocol,
        load_roster(keys / "roster.json"),
        stage_timeout=600.0,
        discovery_timeout=600.0,
        poll_interval=None,  # the in-memory grid's own 0.1 s pull, as for the other entries
    )
    session = SSDDLSession(config)
    session.open(grid, ArrayRecord(numpy_ndarrays=[np.zeros(spec.m, dtype=np.float32)]))
    try:
        for _ in range(spec.rounds):
            clock.begin()
            outcome = session.round()
            clock.end()
            if len(outcome.contributors) != spec.n:
                raise RuntimeError(f"round {outcome.round}: {outcome.status.name}")
    finally:
        session.close()


def ssddl_entry(recovery: str = "double-mask") -> Entry | None:
    """SSDDL mode ``prg`` through the Flower workflow and ClientApp (``query.ssddl``)."""
    name = "ssddl" if recovery == "double-mask" else f"ssddl-{recovery}"
    return Entry(
        name,
        lambda g, c, s, k: _ssddl_server(s, g, c, k, _key_dir(s), recovery),
        lambda s: _ssddl_client(s, _key_dir(s)),
    )


def entries() -> dict[str, Entry]:
    found = {
        "fedavg": Entry(
            "fedavg",
            lambda g, c, s, k: _legacy_server(s, g, c, k, secagg=False),
            lambda s: _legacy_client(s, secagg=False),
        ),
        "secagg+": Entry(
            "secagg+",
            lambda g, c, s, k: _legacy_server(s, g, c, k, secagg=True),
            lambda s: _legacy_client(s, secagg=True),
        ),
    }
    for recovery in ("double-mask", "none"):
        slot = ssddl_entry(recovery)
        if slot is not None:
            found[slot.name] = slot
    return found


def serve_point(grid: Any, context: Any, spec: Spec, out: str | Path) -> None:
    """The ServerApp of one point (either engine): run ``spec``'s entry with its traffic
    counted and write the per-round clock as JSON to ``out``."""
    clock = RoundClock()
    if spec.pull > 0 and hasattr(grid, "pull_interval"):  # the in-memory grid (simulation)
        grid.pull_interval = spec.pull
    count_traffic(grid, clock)
    started = time.perf_counter()
    entries()[spec.entry].server(grid, context, spec, clock)
    run_seconds = time.perf_counter() - started  # every round and the entry's own setup
    Path(out).write_text(json.dumps({"spec": asdict(spec), "clock": {
        "seconds": clock.seconds, "up": clock.up, "down": clock.down,
        "run_seconds": run_seconds}}))  # fmt: skip


def worker(spec: Spec, out: Path) -> None:
    """Run one (entry, N, M) point on the simulation engine in this process."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Any, context: Any) -> None:
        serve_point(grid, context, spec, out)

    run_simulation(
        server_app=server_app,
        client_app=entries()[spec.entry].client(spec),
        num_supernodes=spec.n,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": os.cpu_count() or 1, "include_dashboard": False},
        },
    )


# -- the driver ----------------------------------------------------------------------------


def run_point(spec: Spec, scratch: Path, limit: float) -> dict[str, Any]:
    """One point on the simulation engine, in a subprocess (killed by its group at the end)."""
    spec = replace(spec, keys=spec.keys or str(identity_dir(scratch, spec.n)))
    out = scratch / f"{spec.entry}-{spec.n}-{spec.m}.json"
    env = dict(os.environ)
    env.update(
        {
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray binds 127.0.0.1, not 0.0.0.0
            "RAY_USAGE_STATS_ENABLED": "0",
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_HOME": str(scratch / "flwr-home"),
            "RAY_TMPDIR": str(scratch),
        }
    )
    argv = [sys.executable, "-m", "benchmarks.bench_flower", "--worker", json.dumps(asdict(spec)),
            "--worker-out", str(out)]  # fmt: skip
    started = time.perf_counter()
    with open(scratch / f"{spec.entry}-{spec.n}-{spec.m}.log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # Ray leftovers in the worker's group
            proc.wait()
    error = None if proc.returncode == 0 else f"exit code {proc.returncode}; log in {scratch}"
    return point_row(spec, out, time.perf_counter() - started, error)


def point_row(spec: Spec, out: Path, wall: float, error: str | None = None) -> dict[str, Any]:
    """One table row from a point's clock file (median of rounds 2..R)."""
    row: dict[str, Any] = {"entry": spec.entry, "n": spec.n, "m": spec.m, "pull": spec.pull,
                           "wall_seconds": wall, "load": os.getloadavg()[0]}  # fmt: skip
    if error is not None or not out.exists():
        row["error"] = error or f"no result; logs in {out.parent}"
        return row
    clock = json.loads(out.read_text())["clock"]
    measured = clock["seconds"][1:] or clock["seconds"]
    rounds = len(measured)
    row["round_seconds"] = statistics.median(measured)
    row["mean_round_seconds"] = statistics.fmean(measured)
    row["upload_bytes_per_client"] = sum(clock["up"][-rounds:]) / (rounds * spec.n)
    row["download_bytes_per_client"] = sum(clock["down"][-rounds:]) / (rounds * spec.n)
    row["rounds_measured"] = rounds
    row["per_round"] = [round(x, 3) for x in clock["seconds"]]
    if "run_seconds" in clock:
        row["run_seconds"] = clock["run_seconds"]
        row["rounds"] = spec.rounds
    return row


# -- the deployment engine -----------------------------------------------------------------

#: The Flower app of ``--engine deployment`` (its ServerApp/ClientApp run bench entries).
DEPLOY_APP = Path(__file__).resolve().parent / "flower_app"


def deployment_shares(n: int) -> tuple[int, int]:
    """SecAgg+'s (num_shares, threshold) for N nodes: 7 and 4, or every node and a majority
    when N < 7 (N = 5: 5 and 3; Flower would accept 7 but the ring then wraps onto itself)."""
    return (NUM_SHARES, THRESHOLD) if n >= NUM_SHARES else (n, n // 2 + 1)


def run_deployment(specs: list[Spec], scratch: Path, limit: float) -> list[dict[str, Any]]:
    """Every point of ``specs`` (one N) on Flower's deployment engine: a TLS SuperLink with
    SuperNode authentication and N SuperNodes on 127.0.0.1 (``tests/flower/harness.py``),
    one ``flwr run`` per point. Every process is stopped by its process group, whatever
    happens."""
    from tests.flower.harness import Deployment

    n = specs[0].n
    if any(spec.n != n for spec in specs):
        raise ValueError("run_deployment runs one N at a time")
    root = Path(tempfile.mkdtemp(prefix="deploy-", dir=scratch))
    keys = identity_dir(root, n)
    deployment = Deployment.create(root / "flwr")
    env = deployment.procs.env
    checkout = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (checkout, env.get("PYTHONPATH")) if p)
    rows = []
    try:
        deployment.start_superlink()
        for k in range(n):
            name = f"sn{k + 1}"
            key = deployment.node_key(name, register=True)
            deployment.start_supernode(name, key, f"partition-id={k} num-partitions={n}")
        for spec in specs:
            spec = replace(spec, keys=str(keys))
            out = root / f"{spec.entry}-{spec.n}-{spec.m}.json"
            settings = {**{k.replace("_", "-"): v for k, v in asdict(spec).items()},
                        "out": str(out)}  # fmt: skip
            text = " ".join(
                f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in settings.items()
            )
            started = time.perf_counter()
            proc = deployment.flwr_run(DEPLOY_APP, text)
            try:
                code: int | None = proc.popen.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                deployment.procs.stop(proc)
            error = None if code == 0 else f"flwr run: exit code {code}; logs in {root}"
            row = point_row(spec, out, time.perf_counter() - started, error)
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        deployment.procs.stop_all()
    return rows


def _point(row: dict[str, Any]) -> tuple[int, int, float, int]:
    return row["n"], row["m"], row.get("pull", 0.0), row.get("repeat", 0)


#: bytes Flower's SecAgg+ ships per ring value: its 2^32 ring as int64 (4 would hold it)
SECAGG_WORD = 8
RING_WORD = 4


def same_width_upload(row: dict[str, Any]) -> float:
    """Upload bytes per client and round with every ring value counted at 4 bytes: SecAgg+'s
    masked vector (M + 1 values: its weight leads) at 4 bytes instead of 8; SSDDL and FedAvg
    as sent (they ship 4-byte words and float32 already)."""
    upload = float(row["upload_bytes_per_client"])
    if row["entry"] == "secagg+":
        upload -= (SECAGG_WORD - RING_WORD) * (row["m"] + 1)
    return upload


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's ratios to FedAvg and SecAgg+ at the same point (N, M, pull interval) and
    in the same repeat: a ratio compares runs made one after the other. Against SecAgg+:
    time per round, time of the whole run (``run_seconds``: every round plus the entry's
    setup -- SSDDL's discovery and key setup, which SecAgg+ repeats in every round), upload
    bytes as sent and at the same value width (:func:`same_width_upload`)."""
    base = {_point(r): r for r in rows if r["entry"] == "fedavg" and "error" not in r}
    for r in rows:
        plain = base.get(_point(r))
        if plain is None or "error" in r:
            continue
        r["time_vs_fedavg"] = r["round_seconds"] / plain["round_seconds"]
        r["upload_vs_fedavg"] = r["upload_bytes_per_client"] / plain["upload_bytes_per_client"]
    secagg = {_point(r): r for r in rows if r["entry"] == "secagg+" and "error" not in r}
    for r in rows:
        other = secagg.get(_point(r))
        if other is None or "error" in r or not r["entry"].startswith("ssddl"):
            continue
        r["time_vs_secagg"] = r["round_seconds"] / other["round_seconds"]
        r["upload_vs_secagg"] = r["upload_bytes_per_client"] / other["upload_bytes_per_client"]
        r["upload_vs_secagg_same_width"] = same_width_upload(r) / same_width_upload(other)
        if "run_seconds" in r and "run_seconds" in other:
            r["run_time_vs_secagg"] = r["run_seconds"] / other["run_seconds"]


_RATIOS = ("time_vs_fedavg", "time_vs_secagg", "upload_vs_fedavg", "upload_vs_secagg",
           "run_time_vs_secagg", "upload_vs_secagg_same_width")  # fmt: skip


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (entry, N, M, pull) over its repeats (rows with ratios already added):
    the median time per round and, for every ratio, the median of the repeats' ratios with
    their range (``<ratio>_range``). Rows measured once come back as they are."""
    groups: dict[tuple[str, int, int, float], list[dict[str, Any]]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((r["entry"], *_point(r)[:3]), []).append(r)
    out = []
    for (entry, n, m, pull), group in groups.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        row: dict[str, Any] = {"entry": entry, "n": n, "m": m, "pull": pull,
                               "repeats": len(group)}  # fmt: skip
        for key in ("round_seconds", "upload_bytes_per_client", "download_bytes_per_client"):
            row[key] = statistics.median(r[key] for r in group)
        if all("run_seconds" in r for r in group):
            row["run_seconds"] = statistics.median(r["run_seconds"] for r in group)
            row["rounds"] = group[0]["rounds"]
        for key in _RATIOS:
            values = [r[key] for r in group if key in r]
            if len(values) == len(group):
                row[key] = statistics.median(values)
                row[f"{key}_range"] = (min(values), max(values))
        out.append(row)
    failed = [r for r in rows if "error" in r]
    return out + failed


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ["entry", "N", "M", "s / round", "× FedAvg", "× SecAgg+", "s / run",
               "× SecAgg+", "upload B / client / round", "× FedAvg", "× SecAgg+",
               "× SecAgg+ (same width)"]  # fmt: skip
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["entry"], r["n"], r["m"], r["error"], *[""] * 8])
            continue

        def ratio(key: str, row: dict[str, Any] = r) -> str:
            if key not in row:
                return ""
            low, high = row.get(f"{key}_range", (row[key], row[key]))
            spread = f" ({low:.2f}–{high:.2f})" if (low, high) != (row[key], row[key]) else ""
            return f"{row[key]:.2f}{spread}"

        run = f"{r['run_seconds']:.2f}" if "run_seconds" in r else ""
        table.append([
            r["entry"], r["n"], f"{r['m']:,}", f"{r['round_seconds']:.3f}",
            ratio("time_vs_fedavg"), ratio("time_vs_secagg"),
            run, ratio("run_time_vs_secagg"),
            f"{r['upload_bytes_per_client']:,.0f}",
            ratio("upload_vs_fedavg"), ratio("upload_vs_secagg"),
            ratio("upload_vs_secagg_same_width"),
        ])  # fmt: skip
    return markdown_table(headers, table)


def _pull_text(pull: float) -> str:
    if pull <= 0:
        return "the grid pulls replies every 0.1 s (Flower's default)"
    return f"the grid pulls replies every {pull * 1e3:g} ms"


def render(rows: list[dict[str, Any]], rounds: int, engine: str = "simulation") -> tuple[str, str]:
    """The Markdown section (one table per pull interval) and the CSV of ``rows``."""
    if engine == "deployment":
        shares = ", ".join(
            "N={}: {}/{}".format(n, *deployment_shares(n)) for n in sorted({r["n"] for r in rows})
        )
        where = "deployment engine (TLS SuperLink + SuperNodes on 127.0.0.1, `flwr run`)"
    else:
        shares, where = f"{NUM_SHARES}/{THRESHOLD}", "simulation engine (Ray)"
    md = (
        f"## Secure aggregation on Flower's {where}\n\n{rounds} rounds, median of rounds "
        f"2..{rounds}; SecAgg+ num_shares/threshold {shares}. `s / run`: the ServerApp's "
        f"whole run, all {rounds} rounds and each entry's setup (SSDDL's discovery and key "
        "setup happen once; SecAgg+ agrees keys in every round). `same width`: SecAgg+'s "
        "upload with its 2^32-ring values counted at 4 bytes (Flower ships them as int64).\n"
    )
    pulls = sorted({r.get("pull", 0.0) for r in rows})
    for pull in pulls:
        if engine != "deployment":
            md += f"\n{_pull_text(pull)[0].upper()}{_pull_text(pull)[1:]}:\n"
        md += "\n" + _table([r for r in rows if r.get("pull", 0.0) == pull]) + "\n"
    buffer = io.StringIO()
    fields = ["entry", "n", "m", "pull", "repeats", "round_seconds", "mean_round_seconds", "load",
              "time_vs_fedavg", "time_vs_secagg", "run_seconds", "run_time_vs_secagg",
              "upload_bytes_per_client", "upload_vs_fedavg", "upload_vs_secagg",
              "upload_vs_secagg_same_width",
              "download_bytes_per_client", "rounds_measured", "wall_seconds", "error"]  # fmt: skip
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return md, buffer.getvalue()


def run_grid(
    ns: tuple[int, ...],
    ms: tuple[int, ...],
    names: list[str],
    rounds: int,
    scratch: Path,
    limit: float,
    log: Callable[[str], None] = print,
    pull: float = 0.0,
    repeats: int = 1,
) -> list[dict[str, Any]]:
    """Every (M, N, entry) point on the simulation engine, entries interleaved per point;
    with ``repeats`` the whole set of entries runs that many times in turn (rows carry
    ``repeat``), so that each repeat's ratios compare runs made side by side."""
    rows = []
    for m in ms:
        for n in ns:
            for repeat in range(repeats):
                for name in names:
                    row = run_point(Spec(name, n, m, rounds, pull=pull), scratch, limit)
                    if repeats > 1:
                        row["repeat"] = repeat
                    log(json.dumps(row))
                    rows.append(row)
    return rows


#: ``ssddl bench``'s Flower rows: (N values, M values, rounds) for --quick and the full run
PERF_QUICK = ((5,), (100_000,), 3)
PERF_FULL = (FULL_N, FULL_M, 3)
#: the issue's target point (N, M), measured again in the full run with a fine grid pull and
#: more rounds: with Flower's 0.1 s pull a round's time is a whole number of pulls, so one
#: late reply moves a two-round median by a third
TARGET_POINT = (10, 1_000_000)
FINE_PULL = 0.005
TARGET_ROUNDS = 8
#: the target point's entries run this many times in turn: one run's ratio moves by ±0.15
#: with the shared machine, so the report gives the median of the repeats and their range
TARGET_REPEATS = 3


def _headline_point(rows: list[dict[str, Any]]) -> tuple[int, int, float] | None:
    """:data:`TARGET_POINT` at the fine pull when it was measured (the full run), otherwise
    the largest (N, M) at which both SSDDL and SecAgg+ were measured (``--quick``)."""
    compared = {(r["n"], r["m"], r.get("pull", 0.0)) for r in rows if "time_vs_secagg" in r}
    target = (*TARGET_POINT, FINE_PULL)
    if target in compared:
        return target
    return max(compared, key=lambda p: (p[1], p[0], -p[2])) if compared else None


def target_headline(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The headline ratios at one point (:func:`_headline_point`): SSDDL without recovery
    against FedAvg (time per round); SSDDL with double masking against SecAgg+: time per
    round, time of the whole run including SSDDL's key setup, upload bytes as sent and at
    the same value width; ``flower_point_n``/``_m``/``_rounds`` say where."""
    point = _headline_point(rows)
    if point is None:
        return {}
    at = {r["entry"]: r for r in summarize(rows)
          if (r["n"], r["m"], r.get("pull", 0.0)) == point}  # fmt: skip
    found: dict[str, float] = {"flower_point_n": point[0], "flower_point_m": point[1]}
    if "rounds" in at.get("ssddl", {}):
        found["flower_point_rounds"] = at["ssddl"]["rounds"]
    if "time_vs_fedavg" in at.get("ssddl-none", {}):
        found["flower_none_over_fedavg"] = at["ssddl-none"]["time_vs_fedavg"]
    ssddl = at.get("ssddl", {})
    for key, name in (
        ("time_vs_secagg", "flower_ssddl_over_secagg_time"),
        ("run_time_vs_secagg", "flower_ssddl_over_secagg_run_time"),
        ("upload_vs_secagg", "flower_ssddl_over_secagg_bytes"),
        ("upload_vs_secagg_same_width", "flower_ssddl_over_secagg_bytes_same_width"),
    ):
        if key in ssddl:
            found[name] = ssddl[key]
    return found


def perf_section(quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The Flower rows of ``ssddl bench`` (``benchmarks/bench_perf.py``): FedAvg, Flower's
    SecAgg+ and SSDDL through the same simulation-engine harness, in the same run as the
    rest of the report. ``lines`` is its Markdown section; without the ``flower`` extra
    the section says so and holds no rows."""
    try:
        import flwr  # noqa: F401
    except ImportError:
        note = "Not measured: needs the `flower` extra (`pip install -e '.[flower]'`)."
        return {"rows": [], "lines": ["## Flower: SecAgg+, FedAvg and SSDDL", "", note, ""]}
    ns, ms, rounds = PERF_QUICK if quick else PERF_FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ssddl-bench-", dir="/tmp") as tmp:
        rows = run_grid(ns, ms, list(entries()), rounds, Path(tmp), 900.0, log)
        target: list[dict[str, Any]] = []
        if not quick:
            n, m = TARGET_POINT
            target = run_grid((n,), (m,), list(entries()), TARGET_ROUNDS, Path(tmp), 900.0, log,
                              pull=FINE_PULL, repeats=TARGET_REPEATS)  # fmt: skip
    add_ratios(rows)
    add_ratios(target)
    md, _ = render(rows, rounds)
    seconds = time.perf_counter() - started
    body = md.split("\n", 1)[1]  # under this report's own heading
    note = (
        f"Command: `python -m benchmarks.bench_flower --rounds {rounds}"
        + "".join(f" --n {n}" for n in ns)
        + "".join(f" --m {m}" for m in ms)
        + f"` ({seconds:.0f} s of this run with the target point below; each point a fresh "
        "Ray simulation, one CPU per client actor, round 1 left out). `ssddl` is mode `prg` "
        "with double masking, `ssddl-none` with recovery `none`; ratios are to FedAvg and "
        "SecAgg+ measured at the same point in this run."
    )
    lines = ["## Flower: SecAgg+, FedAvg and SSDDL", "", note, *body.splitlines(), ""]
    if target:
        n, m = TARGET_POINT
        lines += [
            f"### The target point, N = {n}, M = {m:,}, with a {FINE_PULL * 1e3:g} ms grid pull",
            "",
            f"`python -m benchmarks.bench_flower --n {n} --m {m} --rounds {TARGET_ROUNDS} "
            f"--pull-interval {FINE_PULL} --repeat {TARGET_REPEATS}`: the same entries with "
            f"the in-memory grid pulling replies every {FINE_PULL * 1e3:g} ms instead of 0.1 s "
            "(every entry alike), so that a round's time is its work rather than a whole "
            f"number of pulls; the entries run {TARGET_REPEATS} times in turn, and each ratio "
            "is the median of the repeats' ratios (their range in brackets).",
            "",
            _table(summarize(target)),
            "",
        ]
    return {"rows": rows + target, "rounds": rounds, "seconds": seconds, "lines": lines}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_flower", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N in {5, 10}, M = 10^5")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, action="append", help="numbers of clients")
    parser.add_argument("--m", type=int, action="append", help="model sizes")
    parser.add_argument("--limit", type=float, default=900.0, help="seconds per point")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--entry", action="append", help="run only these entries")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="simulation engine: run every point's entries K times in turn and report the "
        "median of the K ratios with their range (default 1)",
    )
    parser.add_argument(
        "--pull-interval",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="simulation engine: how often the ServerApp's grid pulls replies, for every "
        "entry alike (default: Flower's 0.1 s; a round then takes a whole number of pulls)",
    )
    parser.add_argument(
        "--engine",
        choices=("simulation", "deployment"),
        default="simulation",
        help="Flower's simulation engine (Ray) or its deployment engine (SuperLink + "
        "SuperNodes on 127.0.0.1; default N = 5, M = 10^5)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the headline ratios as one JSON object last"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(Spec(**json.loads(args.worker)), args.worker_out)
        return 0
    try:
        import flwr  # noqa: F401
    except ImportError:
        print("bench_flower: needs the 'flower' extra (pip install -e '.[flower]')")
        return 1
    if args.rounds < 2:
        parser.error("--rounds must be >= 2 (round 1 pays Ray's start-up and is not measured)")
    if not 0 <= args.pull_interval <= 1:
        parser.error("--pull-interval must be between 0 (Flower's default) and 1 second")
    if args.pull_interval and args.engine == "deployment":
        parser.error("--pull-interval applies to the simulation engine only")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be between 1 and 20")
    if args.repeat > 1 and args.engine == "deployment":
        parser.error("--repeat applies to the simulation engine only")
    deploy = args.engine == "deployment"
    default_n, default_m = (DEPLOY_N, DEPLOY_M) if deploy else (FULL_N, FULL_M)
    ns = tuple(args.n or (QUICK_N if args.quick and not deploy else default_n))
    ms = tuple(args.m or (QUICK_M if args.quick else default_m))
    names = [n for n in entries() if not args.entry or n in args.entry or n == "fedavg"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ssddl-bench-", dir="/tmp") as tmp:
        for n in ns if deploy else ():
            shares, threshold = deployment_shares(n)
            specs = [Spec(name, n, m, args.rounds, num_shares=shares, threshold=threshold)
                     for m in ms for name in names]  # fmt: skip
            rows += run_deployment(specs, Path(tmp), args.limit)
        if not deploy:
            log = (lambda m: print(m, file=sys.stderr)) if args.json else print
            rows = run_grid(ns, ms, names, args.rounds, Path(tmp), args.limit, log,
                            pull=args.pull_interval, repeats=args.repeat)  # fmt: skip
    add_ratios(rows)
    md, table_csv = render(summarize(rows), args.rounds, args.engine)
    print(md, file=sys.stderr if args.json else sys.stdout)
    if args.out is not None:
        name = "bench_flower_deployment" if deploy else "bench_flower"
        payload = {"benchmark": "flower", "engine": args.engine, "environment": environment(),
                   "rounds": args.rounds, "rows": rows}  # fmt: skip
        write_report(args.out, name, payload, md)
        (args.out / f"{name}.csv").write_text(table_csv)
    if args.json:
        print(json.dumps(target_headline(rows), sort_keys=True))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
