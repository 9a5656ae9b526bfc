"""Run the example SSDDL app in Flower's simulation engine (Ray):
``python run_ssddl_sim.py NUM_NODES RUN_CONFIG_JSON``.

``run_simulation`` passes no run config, so both apps are wrapped to see the given one.
Started as a subprocess by the tests, so that Ray's processes are its descendants; the
environment must set ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray then binds 127.0.0.1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "flower-app"))

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation
from ssddl_flower_app import client_app, server_app


def _with(context: Context, run: dict[str, Any]) -> Context:
    """The same node and state (one RecordDict object), with ``run`` as its run config."""
    return Context(
        run_id=context.run_id,
        node_id=context.node_id,
        node_config=context.node_config,
        state=context.state,
        run_config=run,
    )


def main(num_nodes: int, run: dict[str, Any]) -> None:
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        server_app.main(grid, _with(context, run))

    client = ClientApp()

    def delegate(message: Message, context: Context) -> Message:
        return client_app.app(message, _with(context, run))

    client.query("ssddl")(delegate)
    client.evaluate()(delegate)
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=num_nodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "include_dashboard": False},
        },
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), json.loads(sys.argv[2]))
