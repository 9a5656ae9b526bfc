"""Run the counter app in Flower's simulation engine (Ray): ``python run_sim.py RESULT N B``.

Started as a subprocess by the tests, so that Ray's processes are its descendants and the
test can check where they listen and that they are gone afterwards. The environment must set
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray then binds to 127.0.0.1).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "counter-app"))

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation
from ssddl_counter_app.client_app import app as client_app
from ssddl_counter_app.server_app import run


def main(result: str, num_nodes: int, batches: int) -> None:
    settings = {
        "result-file": result,
        "num-nodes": num_nodes,
        "batches": batches,
        "timeout": 60.0,
        "go-file": "",
        "pause-after": -1,
        "reject-batch": 1,
    }
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        run(grid, settings)

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=num_nodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "include_dashboard": False},
        },
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
