"""Process-level harness for Flower tests: a TLS SuperLink with SuperNode authentication,
SuperNodes, ``flwr`` CLI calls, and the checks that everything stays on 127.0.0.1.

Every process is started in its own session (process group) and stopped by its pid's group,
SIGTERM first, then SIGKILL; ``Processes.stop_all`` runs in the fixtures' teardown whatever
the test did. Nothing here kills by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ssddl.runtime.flower.certs import NodeKey, TLSMaterial, make_node_key, make_tls_material

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def flower_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Flower process: own FLWR_HOME, no telemetry, no update check,
    Ray on the loopback interface, the test venv first on PATH."""
    env = dict(os.environ)
    env.update(
        {
            "FLWR_HOME": str(home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DEDUP_LOGS": "0",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Processes:
    """Processes started by a test, each the leader of its own process group."""

    logs: Path
    env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str]) -> Proc:
        log = self.logs / f"{name}.log"
        with open(log, "wb") as handle:
            popen = subprocess.Popen(
                list(argv),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        """Signal the process group of ``proc`` (its pid) and wait; SIGKILL after ``grace``."""
        for current in (sig, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, current)
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; children in its group get the same signal once more
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            self.stop(proc)


def run_cli(argv: Sequence[str], env: Mapping[str, str], timeout: float = 60.0) -> str:
    """Run a short ``flwr`` command; raise with its output if it fails."""
    done = subprocess.run(
        list(argv),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


# -- who listens where -------------------------------------------------------------------

_SS_PID = re.compile(r"pid=(\d+)")


def listening_sockets() -> list[tuple[str, set[int]]]:
    """(local address:port, pids) of every listening TCP socket this user can see (``ss``)."""
    out = subprocess.run(
        ["ss", "-ltnpH"], capture_output=True, text=True, check=True, timeout=600
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        pids = {int(p) for p in _SS_PID.findall(line)}
        rows.append((parts[3], pids))
    return rows


def descendants(roots: Iterable[int]) -> set[int]:
    """The pids in the process trees under ``roots`` (from /proc), roots included."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
    return seen


def pids_with_marker(marker: str) -> set[int]:
    """Pids whose command line or environment mentions ``marker`` (a unique tmp path)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for name in ("cmdline", "environ"):
            try:
                if marker.encode() in (entry / name).read_bytes():
                    found.add(int(entry.name))
                    break
            except OSError:
                continue
    return found


# -- a TLS deployment --------------------------------------------------------------------


@dataclass
class Deployment:
    """A TLS SuperLink with SuperNode authentication on 127.0.0.1 and its SuperNodes."""

    root: Path
    procs: Processes
    tls: TLSMaterial
    port: int
    connection: str = "tls"
    superlink: Proc | None = None
    supernodes: dict[str, Proc] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path) -> Deployment:
        home, certs, keys, logs = (root / d for d in ("home", "certs", "keys", "logs"))
        for d in (home, certs, keys, logs):
            d.mkdir(parents=True)
        tls = make_tls_material(certs)
        port = free_port()
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "tls"\n\n'
            f'[superlink.tls]\naddress = "{HOST}:{port}"\n'
            f'root-certificates = "{tls.ca_cert}"\n'
        )
        return cls(root, Processes(logs, flower_env(home)), tls, port)

    def start_superlink(self) -> Proc:
        self.superlink = self.procs.start(
            "superlink",
            [
                str(BIN / "flower-superlink"),
                "--ssl-ca-certfile", str(self.tls.ca_cert),
                "--ssl-certfile", str(self.tls.server_cert),
                "--ssl-keyfile", str(self.tls.server_key),
                "--enable-supernode-auth",
                "--host", HOST,
                "--port", str(self.port),
                "--disable-runtime-dependency-installation",
            ],
        )  # fmt: skip
        wait_until(lambda: is_listening(self.port), 300, "the SuperLink to listen")
        return self.superlink

    def node_key(self, name: str, *, register: bool) -> NodeKey:
        key = make_node_key(self.root / "keys", name)
        if register:
            self.flwr("supernode", "register", str(key.public_key), self.connection)
        return key

    def start_supernode(self, name: str, key: NodeKey, node_config: str = "") -> Proc:
        argv = [
            str(BIN / "flower-supernode"),
            "--root-certificates", str(self.tls.ca_cert),
            "--superlink", f"{HOST}:{self.port}",
            "--auth-supernode-private-key", str(key.private_key),
            "--host", HOST,
            "--port", str(free_port()),
        ]  # fmt: skip
        if node_config:
            argv += ["--node-config", node_config]
        proc = self.procs.start(name, argv)
        self.supernodes[name] = proc
        return proc

    def flwr(self, *args: str, timeout: float = 60.0) -> str:
        return run_cli([str(BIN / "flwr"), *args], self.procs.env, timeout=timeout)

    def flwr_run(self, app: Path, run_config: str) -> Proc:
        """``flwr run <app> tls --stream`` in the background (stop it with ``procs.stop``)."""
        return self.procs.start(
            "flwr-run",
            [str(BIN / "flwr"), "run", str(app), self.connection, "--stream",
             "--run-config", run_config],
        )  # fmt: skip

    def all_pids(self) -> set[int]:
        return descendants(p.pid for p in self.procs.started)


def watch_until_exit(
    proc: subprocess.Popen[bytes], marker: str, limit: float = 900.0
) -> tuple[int, set[str], set[int]]:
    """Wait (up to ``limit`` s) for a driver process to exit, noting every address that a
    process with ``marker`` in its environment listened on; then wait (up to 120 s more) for
    those processes to be gone (Ray's shutdown may trail the driver's exit). Returns the exit
    code, the addresses and the pids still there at the end. The caller kills what is left."""
    addresses: set[str] = set()

    def done() -> bool:
        pids = pids_with_marker(marker)
        addresses.update(a for a, owners in listening_sockets() if owners & pids)
        return proc.poll() is not None

    wait_until(done, limit, "the driver process to exit", interval=0.5)
    rc = proc.wait()
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not pids_with_marker(marker), 120, "its processes to exit", 0.5)
    return rc, addresses, pids_with_marker(marker)
