"""Round time of secure aggregation against plain FedAvg, measured in one process.

One *case* is a model, a dataset, a number of participants and a local-training config. For a
case, :func:`ratio` runs short sessions of mode ``plain`` and of the mode under test
alternately (same model, data and seeds), ``pairs`` times, and reports the median over the
pairs of ``median round time (mode) / median round time (plain)``, the first round of every
session left out (it pays one-off costs: thread start-up, first allocations). Interleaving
keeps the two measurements under the same machine load. The same ratio of the CPU time per
round (``cpu_ratio_median``: the process's and its mask worker process's) says what the mode
costs whether or not a second core was free: on a shared machine the round-time ratio moves
with the other load, the CPU ratio much less.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CASES", "Case", "ratio", "run_session"]


@dataclass(frozen=True)
class Case:
    """What one row of the round-time table runs."""

    label: str
    participants: int = 10
    hidden: tuple[int, ...] = (256, 256)
    dataset: str = "digits"
    model: str = "mlp"
    epochs: int = 1
    steps: int | None = None
    protocol: dict[str, Any] = field(default_factory=dict)


#: the cases of issue 12's table, plus the CNN on mnist1d
CASES: dict[str, Case] = {
    "default": Case("MLP, digits, 5 local epochs (default)", epochs=5),
    "wide": Case("wide MLP (hidden 960), 1 epoch", hidden=(960, 960), epochs=1),
    "step": Case("MLP, one SGD step per round", steps=1),
    "n50": Case("MLP, one step, n = 50", participants=50, steps=1),
    "n100": Case("MLP, one step, n = 100", participants=100, steps=1),
    "cnn": Case("CNN, mnist1d, 1 epoch", dataset="mnist1d", model="cnn", epochs=1),
}


def _prepare(case: Case) -> tuple[Any, list[Any]]:
    from ssddl.learning.data import load_digits, load_mnist1d
    from ssddl.learning.models import MLP, build_model
    from ssddl.learning.partition import partition

    split = load_digits(seed=0) if case.dataset == "digits" else load_mnist1d(seed=0)
    parts = partition(split.train.y, case.participants, "iid", rng=np.random.default_rng(0))
    datasets = [split.train.subset(idx) for idx in parts]
    shape, classes = split.train.input_shape, split.train.num_classes
    model: Any
    if case.model == "mlp":
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = MLP(int(np.prod(shape)), classes, case.hidden)
    else:
        model = build_model(case.model, shape, classes, seed=0)
    return model, datasets


def _cpu(masks: Any) -> float:
    """This process's CPU time plus its mask worker process's (``masks``: the
    :class:`~ssddl.runtime.masking.MaskEngine` the simulation builds masks on)."""
    return time.process_time() + masks.worker_cpu_seconds()


def run_session(
    case: Case, mode: dict[str, Any], rounds: int, prepared: tuple[Any, list[Any]] | None = None
) -> dict[str, Any]:
    """One simulated session of ``rounds`` rounds: its round times and Init time."""
    from ssddl.learning.train import LocalTrainConfig
    from ssddl.protocol.config import ProtocolConfig
    from ssddl.runtime.masking import MaskEngine
    from ssddl.runtime.simulator import SimulationConfig, simulate

    model, datasets = prepared if prepared is not None else _prepare(case)
    protocol = ProtocolConfig(rounds=rounds, **{**case.protocol, **mode})
    train = LocalTrainConfig(epochs=case.epochs, steps=case.steps)
    setup: dict[str, float] = {}
    config = SimulationConfig(protocol=protocol, train=train)
    with MaskEngine(config.mask_worker) as masks:  # the simulator's default engine, counted
        cpu = [_cpu(masks)]  # CPU time at the end of Init and of every round
        started = time.perf_counter()

        def on_setup(stage: str, done: int, total: int) -> None:
            if done == total:
                setup[stage] = time.perf_counter() - started
                cpu[0] = _cpu(masks)

        result = simulate(
            model,
            datasets,
            config,
            on_setup=on_setup,
            on_round=lambda _: cpu.append(_cpu(masks)),
            masks=masks,
        )
    history = result.history
    return {
        "round_seconds": [h.round_seconds for h in history],
        "cpu_seconds": [b - a for a, b in itertools.pairwise(cpu)],
        "share_seconds": [h.share_seconds_mean for h in history],
        "server_seconds": [h.server_seconds for h in history],
        "upload_bytes": statistics.fmean(h.upload_bytes_mean for h in history),
        "total_bytes": result.transport.total_bytes(),
        "init_seconds": max(setup.values(), default=0.0),
        "degree": getattr(result.config, "degree", 0),  # 0 before sparse pairing existed
        "model_size": result.model_size,
        "accuracy": result.final_accuracy,
    }


def _steady(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def ratio(
    case: Case,
    mode: dict[str, Any],
    *,
    rounds: int,
    pairs: int,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Median over ``pairs`` interleaved (plain, mode) sessions of the round-time ratio."""
    prepared = _prepare(case)
    ratios, plain_s, mode_s, share_s, cpu_ratios = [], [], [], [], []
    last: dict[str, Any] = {}
    for _ in range(pairs):
        plain = run_session(case, {"mode": "plain"}, rounds, prepared)
        last = run_session(case, mode, rounds, prepared)
        p, m = _steady(plain["round_seconds"]), _steady(last["round_seconds"])
        ratios.append(m / p)
        plain_s.append(p)
        mode_s.append(m)
        share_s.append(_steady(last["share_seconds"]))
        cpu_ratios.append(_steady(last["cpu_seconds"]) / _steady(plain["cpu_seconds"]))
        log(
            f"  {case.label} {mode}: plain {p * 1e3:.1f} ms, mode {m * 1e3:.1f} ms, {m / p:.3f}"
            f" (CPU {cpu_ratios[-1]:.3f})"
        )
    return {
        "case": case.label,
        "mode": dict(mode),
        "participants": case.participants,
        "model_size": last["model_size"],
        "rounds": rounds,
        "pairs": pairs,
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "plain_round_seconds": statistics.median(plain_s),
        "mode_round_seconds": statistics.median(mode_s),
        "share_seconds": statistics.median(share_s),
        "upload_bytes": last["upload_bytes"],
        "init_seconds": last["init_seconds"],
        "degree": last["degree"],
    }


def replace_case(case: Case, **changes: Any) -> Case:
    return dataclasses.replace(case, **changes)
