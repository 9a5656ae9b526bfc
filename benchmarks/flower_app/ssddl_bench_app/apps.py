"""ServerApp and ClientApp of one benchmark point: the entry, N, M and rounds come from the
run config (``flwr run ... --run-config``), so one app serves every entry. The entries are
``benchmarks.bench_flower``'s, unchanged: the same code as in the simulation engine."""

from __future__ import annotations

from typing import Any

from benchmarks import bench_flower
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp


class _PointClientApp(ClientApp):
    """The ClientApp of the run config's entry (built on first use in each process)."""

    def __init__(self) -> None:
        super().__init__()
        self._apps: dict[bench_flower.Spec, Any] = {}

    def __call__(self, message: Any, context: Any) -> Any:
        spec = bench_flower.spec_from_run_config(context.run_config)
        if spec not in self._apps:
            self._apps[spec] = bench_flower.entries()[spec.entry].client(spec)
        return self._apps[spec](message, context)


client_app = _PointClientApp()
server_app = ServerApp()


@server_app.main()
def _main(grid: Any, context: Any) -> None:
    spec = bench_flower.spec_from_run_config(context.run_config)
    bench_flower.serve_point(grid, context, spec, str(context.run_config["out"]))
