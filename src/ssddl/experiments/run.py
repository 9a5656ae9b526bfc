"""One experiment run: load and partition the data, build the model, simulate, write results.

The run directory holds files a person can open:

- ``config.toml``  the resolved configuration (pass it back with ``--config`` to repeat the run)
- ``metrics.csv``  one row per round: accuracy, loss, bytes up/down, seconds per phase
- ``summary.json`` the figures of the whole run
- ``traffic.csv``  bytes per round, message kind, sender and recipient
- ``plot.png``     accuracy and upload bytes over rounds
- ``report.md``    a short Markdown report
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ssddl.experiments.config import ExperimentConfig, dump_toml
from ssddl.learning.data import DatasetSplit, load_dataset
from ssddl.learning.models import build_model
from ssddl.learning.partition import partition
from ssddl.protocol.messages import RoundStatus
from ssddl.runtime.inmemory import Vanish
from ssddl.runtime.simulator import RoundMetrics, SimulationConfig, SimulationResult, simulate

__all__ = ["load_split", "run_experiment", "write_run"]


def load_split(config: ExperimentConfig) -> DatasetSplit:
    return load_dataset(
        config.dataset, root=config.data_dir, download=config.download, seed=config.seed
    )


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    progress: bool = False,
    vanish: tuple[Vanish, ...] = (),
    on_round: Callable[[RoundMetrics], None] | None = None,
) -> SimulationResult:
    """Run one simulation as ``config`` says; write the run directory if ``out_dir`` is set."""
    split = load_split(config)
    parts = partition(
        split.train.y,
        config.participants,
        config.partition,
        rng=np.random.default_rng(config.seed),
        alpha=config.alpha,
        shards_per_part=config.shards_per_participant,
    )
    datasets = [split.train.subset(idx) for idx in parts]
    model = build_model(
        config.model, split.train.input_shape, split.train.num_classes, seed=config.seed
    )
    sim = SimulationConfig(
        protocol=config.protocol,
        train=config.train,
        seed=config.seed,
        vanish=vanish,
        validate=config.validate,
    )
    with _progress(config.protocol.rounds, config.protocol.mode, enabled=progress) as report:
        result = simulate(
            model, datasets, sim, test=split.test, on_round=_both(report, on_round)
        )
    if out_dir is not None:
        write_run(Path(out_dir), config, result)
    return result


def _both(
    first: Callable[[RoundMetrics], None] | None, second: Callable[[RoundMetrics], None] | None
) -> Callable[[RoundMetrics], None] | None:
    hooks = [h for h in (first, second) if h is not None]
    if not hooks:
        return None

    def both(metrics: RoundMetrics) -> None:
        for hook in hooks:
            hook(metrics)

    return both


@contextlib.contextmanager
def _progress(
    total: int, label: str, *, enabled: bool
) -> Iterator[Callable[[RoundMetrics], None] | None]:
    """A rich progress bar on stderr fed by the simulator's per-round reports."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("rounds", total=total)
        yield lambda m: bar.update(task, advance=1, description=f"acc {m.accuracy:.3f}")


def write_run(out: Path, config: ExperimentConfig, result: SimulationResult) -> None:
    out.mkdir(parents=True, exist_ok=True)
    resolved = dataclasses.replace(config, protocol=result.config.config())
    (out / "config.toml").write_text(dump_toml(resolved.to_dict()))
    rows = [h.as_row() for h in result.history]
    with open(out / "metrics.csv", "w", newline="") as fh:
        metrics = csv.DictWriter(fh, fieldnames=list(rows[0]))
        metrics.writeheader()
        metrics.writerows(rows)
    with open(out / "traffic.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["round", "kind", "sender", "recipient", "bytes"])
        for rec in result.transport.records:
            writer.writerow(
                [rec.round, rec.kind.name.lower(), rec.sender, rec.recipient, rec.nbytes]
            )
    summary = result.summary()
    summary["rejections_detail"] = [dataclasses.asdict(r) for r in result.rejections]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    plot_history(result.history, out / "plot.png", title=f"ssddl {result.config.mode}")
    (out / "report.md").write_text(markdown_report(config, result))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def plot_history(history: list[RoundMetrics], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [h.round for h in history]
    fig, (acc_ax, bytes_ax) = plt.subplots(1, 2, figsize=(10, 4))
    acc_ax.plot(rounds, [h.accuracy for h in history], marker="o", markersize=3)
    acc_ax.set_xlabel("round")
    acc_ax.set_ylabel("test accuracy")
    acc_ax.set_ylim(0, 1)
    acc_ax.grid(alpha=0.3)
    up = [h.upload_bytes_mean / 1e3 for h in history]
    down = [h.download_bytes_mean / 1e3 for h in history]
    bytes_ax.plot(rounds, up, marker="o", markersize=3, label="upload / member")
    bytes_ax.plot(rounds, down, linestyle="--", marker="x", markersize=3, label="download / member")
    bytes_ax.set_xlabel("round")
    bytes_ax.set_ylabel("kB")
    bytes_ax.set_ylim(0, 1.2 * max([*up, *down, 1e-3]))
    bytes_ax.legend()
    bytes_ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_report(config: ExperimentConfig, result: SimulationResult) -> str:
    s = result.summary()
    lines = [
        f"# ssddl run — mode `{s['mode']}`",
        "",
        f"{config.participants} participants on `{config.dataset}` ({config.partition} partition), "
        f"model `{config.model}` with {s['model_size']:,} parameters, group size "
        f"{s['group_size']}, {s['rounds']} rounds ({s['rounds_applied']} applied), "
        f"seed {config.seed}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| final test accuracy | {s['final_accuracy']:.4f} |",
        f"| upload bytes / participant / round | {s['upload_bytes_per_participant_round']:,.0f} |",
        "| plain float32 upload of the same model | "
        f"{s['plain_upload_bytes_per_participant_round']:,} |",
        f"| median round seconds | {s['round_seconds_median']:.3f} |",
        f"| total bytes on the wire | {s['total_bytes']:,} |",
        f"| rejected messages | {s['rejections']} |",
        "",
        "![accuracy and bytes](plot.png)",
        "",
        "Per-round figures are in `metrics.csv`, every message's size in `traffic.csv`, the "
        "resolved configuration in `config.toml`.",
    ]
    aborted = [o for o in result.outcomes if o.status is RoundStatus.ABORTED]
    if aborted:
        lines += ["", "## Aborted rounds", ""]
        lines += [f"- round {o.round}: {o.reason}" for o in aborted]
    return "\n".join(lines) + "\n"
