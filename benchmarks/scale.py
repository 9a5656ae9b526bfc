"""Scaling of the simulator (issue 12, deliverable 3): round time, bytes and peak memory against
the number of registered participants N, the group size n and the model size M.

Every point runs in a fresh interpreter (``python -m benchmarks.scale SPEC``), so its peak
resident memory (VmHWM) is
the peak resident memory of that simulation alone. Inside it the server's own peak is traced
with ``tracemalloc`` from the first upload of a round to the round's end (summing, unmasking,
updating): what the server allocates while it sums, without the transport's frames or the
participants' buffers. Groups of 100 or more pair sparsely; when groups are smaller than the
registered set, pair keys are agreed lazily (``pair_keys = "lazy"``), so Init is O(N).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

__all__ = ["hidden_for", "scale_point", "scale_points"]


def hidden_for(words: int) -> tuple[int, int]:
    """Two equal hidden layers giving the digits MLP (64 inputs, 10 classes) about ``words``
    parameters: h² + 76h + 10 ≈ words."""
    h = 1
    while (h + 1) ** 2 + 76 * (h + 1) + 10 <= words:
        h += 1
    return h, h


class _ServerPeak:
    """The traced peak of the server's allocations over each round's upload phase onwards."""

    def __init__(self) -> None:
        self.peaks: list[int] = []
        self._base = 0

    def wrap(self, server_class: Any) -> Any:
        from ssddl.protocol.stages import ServerStage

        tracker = self

        class TracedServer(server_class):
            def handle(self, sender: int, message: Any) -> Any:
                if self.stage is ServerStage.COLLECTING_UPLOADS and not tracemalloc.is_tracing():
                    tracemalloc.start()
                    tracker._base = tracemalloc.get_traced_memory()[0]
                try:
                    return super().handle(sender, message)
                finally:
                    if self.stage is ServerStage.IDLE and tracemalloc.is_tracing():
                        tracker.peaks.append(tracemalloc.get_traced_memory()[1] - tracker._base)
                        tracemalloc.stop()

        return TracedServer


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (Linux; reset by exec, unlike ru_maxrss,
    which a child started by exec inherits from its parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _point(spec: dict[str, Any]) -> dict[str, Any]:
    """One simulated session (runs in the child process)."""
    from benchmarks.rounds import CASES, replace_case, run_session
    from ssddl.runtime import session

    peak = _ServerPeak()
    session.Server = peak.wrap(session.Server)  # type: ignore[misc]  # this child only
    case = replace_case(
        CASES["step"],
        participants=spec["N"],
        hidden=hidden_for(spec["M"]),
        label=f"N = {spec['N']}",
    )
    mode: dict[str, Any] = {"mode": spec["mode"], "group_size": spec["group"]}
    if spec["mode"] == "prg" and spec["group"] < spec["N"]:
        mode["pair_keys"] = spec.get("keys", "lazy")  # eager: the forward-secure default
    started = time.perf_counter()
    result = run_session(case, mode, spec["rounds"])
    return {
        **spec,
        "model_size": result["model_size"],
        "degree": result["degree"],
        "pair_keys": mode.get("pair_keys", "eager"),
        "init_seconds": result["init_seconds"],
        "round_seconds": statistics.median(result["round_seconds"][1:]),
        "round_seconds_all": result["round_seconds"],
        "server_seconds": statistics.median(result["server_seconds"][1:]),
        "upload_bytes": result["upload_bytes"],
        "total_bytes": result["total_bytes"],
        "server_peak_mb": max(peak.peaks, default=0) / 2**20,
        "process_peak_mb": _peak_rss_mb(),
        "wall_seconds": time.perf_counter() - started,
    }


def scale_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`_point` for ``spec`` (N, group, M, mode, rounds) in a fresh interpreter."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scale point {spec} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def scale_points(specs: list[dict[str, Any]], log: Any = lambda _: None) -> list[dict[str, Any]]:
    rows = []
    for spec in specs:
        row = scale_point(spec)
        log(
            f"  scale {spec['curve']} N={spec['N']} n={spec['group']} M={row['model_size']} "
            f"{spec['mode']}: Init {row['init_seconds']:.1f} s, round {row['round_seconds']:.2f}"
            f" s, server peak {row['server_peak_mb']:.1f} MB, process {row['process_peak_mb']:.0f}"
            f" MB ({row['wall_seconds']:.0f} s)"
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    print(json.dumps(_point(json.loads(sys.argv[1]))))
