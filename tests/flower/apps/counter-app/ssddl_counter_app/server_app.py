"""ServerApp: drive the counter nodes through FlowerExchange and log every batch as JSON lines.

Batch ``b`` sends participant ``p`` the value ``100 * b + p``; with ``reject-batch = b``
participant 2 gets ``b"reject"`` instead. With ``pause-after = k`` and a ``go-file`` the app
waits (bounded) after batch ``k`` until that file exists, so a test can kill a node there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from ssddl.runtime.flower import FlowerExchange, Frame
from ssddl_counter_app.client_app import REPLY, VALUE


def _log(path: str, record: dict[str, Any]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def wait_for_nodes(grid: Grid, n: int, limit: float = 300.0) -> list[int]:
    deadline = time.monotonic() + limit
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n or time.monotonic() > deadline:
            return nodes[:n]
        time.sleep(0.5)


def run(grid: Grid, settings: Mapping[str, Any]) -> None:
    out = str(settings["result-file"])
    nodes = wait_for_nodes(grid, int(settings["num-nodes"]))
    mapping = {pid: nid for pid, nid in enumerate(nodes, start=1)}
    timeout = float(settings["timeout"])
    exchange = FlowerExchange(grid, mapping, default_timeout=timeout)
    _log(out, {"event": "start", "mapping": {str(p): n for p, n in mapping.items()}})
    for batch in range(int(settings["batches"])):
        if batch - 1 == int(settings["pause-after"]) and settings["go-file"]:
            _log(out, {"event": "paused", "batch": batch})
            deadline = time.monotonic() + 600.0
            while not Path(str(settings["go-file"])).exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        frames = [
            Frame(
                0,
                pid,
                b"reject"
                if (batch == int(settings["reject-batch"]) and pid == 2)
                else VALUE.pack(100 * batch + pid),
            )
            for pid in mapping
        ]
        replies = exchange.send_and_receive(frames, timeout=timeout)
        report = exchange.last_batch
        assert report is not None
        _log(
            out,
            {
                "event": "batch",
                "batch": batch,
                "seconds": report.seconds,
                "replies": [[f.sender, *REPLY.unpack(f.data)] for f in replies],
                "missing": list(report.missing),
                "rejected": list(report.rejected),
            },
        )
    _log(
        out,
        {
            "event": "done",
            "rejections": [[r.participant, r.code, r.reason] for r in exchange.errors],
            "dropped": dict(exchange.dropped),
            "bytes": {str(p): v for p, v in exchange.bytes_by_participant().items()},
        },
    )


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run(grid, context.run_config)
