"""One experiment run: load and partition the data, build the model, simulate, write results.

The run directory holds files a person can open:

- ``config.toml``        the options the user chose (``--config`` it to repeat the run)
- ``metrics.csv``        one row per round: accuracy, loss, bytes up/down, seconds per phase
- ``traffic.csv``        bytes per round, message kind, sender and recipient
- ``summary.json``       the figures of the run, the resolved configuration, the guarantee
- ``plot.png``           accuracy and loss against rounds, bytes by message kind
- ``report.md``          a short Markdown report
- ``model.pt``           the trained model's state dict (``torch.load(..., weights_only=True)``)
- ``model.safetensors``  the same tensors in the safetensors format
- ``checkpoint/``        the state after the last finished round, for ``--resume``

The directory is checked and written to before any training, metrics and traffic are written
after every round, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import datetime
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssddl import modes
from ssddl.exceptions import ConfigurationError
from ssddl.experiments.config import ExperimentConfig, choices_hash, dump_toml, nest
from ssddl.experiments.report import (
    decoding_error_bound,
    guarantee,
    markdown_report,
    plot_run,
    stated,
    summarize,
)
from ssddl.learning.data import ArrayDataset, DatasetSplit, load_dataset
from ssddl.learning.models import build_model
from ssddl.learning.partition import partition
from ssddl.learning.vector import vector_to_model
from ssddl.protocol.config import Mode, ProtocolConfig, SessionParams
from ssddl.protocol.dp import calibrated_noise, dp_summary, epsilon_after
from ssddl.runtime.inmemory import TrafficRecord, Vanish, VanishPhase
from ssddl.runtime.simulator import (
    RoundMetrics,
    SetupCallback,
    SimulationConfig,
    SimulationResult,
    SimulationState,
    plain_upload_size,
    resolve_protocol,
    simulate,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "Prepared",
    "RunOutcome",
    "dropout_schedule",
    "json_safe",
    "load_split",
    "prepare",
    "prepare_out_dir",
    "run_experiment",
    "run_in_directory",
]

CHECKPOINT_FORMAT = "ssddl-checkpoint/1"
_RUN_FILES = (
    "metrics.csv",
    "traffic.csv",
    "summary.json",
    "plot.png",
    "report.md",
    "model.pt",
    "model.safetensors",
    "compare-plain.csv",
)
_TRAFFIC_HEADER = ["round", "kind", "sender", "recipient", "bytes"]


def load_split(config: ExperimentConfig) -> DatasetSplit:
    return load_dataset(
        config.dataset, root=config.data_dir, download=config.download, seed=config.seed
    )


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (refused without a CUDA device) or ``auto``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            "device='cuda' but no CUDA device is available here; use device cpu or auto"
        )
    return torch.device(name)


def dropout_schedule(config: ExperimentConfig) -> tuple[Vanish, ...]:
    """Each participant vanishes for good with probability ``dropout``, at a round drawn
    uniformly from the run's rounds; reproducible from ``seed``."""
    if config.dropout <= 0:
        return ()
    rng = np.random.default_rng([config.seed, 0xD809])  # public, like data order
    phase = VanishPhase(config.dropout_at)
    out = []
    for p in range(1, config.participants + 1):
        vanishes = rng.random() < config.dropout
        at = int(rng.integers(0, config.protocol.rounds))
        if vanishes:
            out.append(Vanish(p, at, phase))
    return tuple(out)


@dataclass(frozen=True)
class Prepared:
    """The data, model and simulation settings of a run, ready to simulate."""

    config: ExperimentConfig
    split: DatasetSplit
    datasets: list[ArrayDataset]
    model: nn.Module
    sim: SimulationConfig
    protocol: SessionParams  #: the resolved parameters that run
    device: torch.device


def prepare(config: ExperimentConfig, *, vanish: tuple[Vanish, ...] | None = None) -> Prepared:
    """Everything before training; every error a user can cause is raised here."""
    device = resolve_device(config.device)
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
    protocol, resolved = _calibrated(
        config.protocol, resolve_protocol(config.protocol, datasets).resolve(len(datasets)), model
    )
    local_train = modes.entry(config.mode).local_train
    sim = SimulationConfig(
        protocol=protocol,
        train=config.train if local_train is None else local_train(config.train, datasets),
        seed=config.seed,
        vanish=dropout_schedule(config) if vanish is None else vanish,
        validate=config.validate,
        torch_threads=config.threads,
    )
    return Prepared(
        config,
        split,
        datasets,
        model,
        sim,
        resolved,
        device,
    )


def _calibrated(
    protocol: ProtocolConfig, resolved: SessionParams, model: nn.Module
) -> tuple[ProtocolConfig, SessionParams]:
    """With ``target_epsilon`` (distributed DP), the noise multiplier that reaches it for this
    model's size over the planned rounds, in both forms of the configuration."""
    if protocol.target_epsilon is None:
        return protocol, resolved
    dim = sum(int(t.numel()) for t in model.parameters())
    z = calibrated_noise(resolved, dim, protocol.target_epsilon)
    return (
        dataclasses.replace(protocol, noise_multiplier=z),
        dataclasses.replace(resolved, noise_multiplier=z),
    )


def run_experiment(
    config: ExperimentConfig,
    *,
    vanish: tuple[Vanish, ...] | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
    on_setup: SetupCallback | None = None,
) -> SimulationResult:
    """Run one simulation as ``config`` says, in memory (no run directory)."""
    prep = prepare(config, vanish=vanish)
    return simulate(
        prep.model,
        prep.datasets,
        prep.sim,
        test=prep.split.test,
        on_round=on_round,
        on_setup=on_setup,
        device=prep.device,
    )


def prepare_out_dir(out: str) -> Path:
    """Check that ``out`` can be a run directory, create it and prove it writable — before
    any training. Raises ConfigurationError naming ``--out`` and the fix."""
    if not out or not out.strip():
        raise ConfigurationError("--out is empty; give a directory path such as runs/mine")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"--out {out} is an existing file; give a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except (FileExistsError, NotADirectoryError):
        raise ConfigurationError(
            f"--out {out}: a parent of it is a file, not a directory; give another path"
        ) from None
    except PermissionError:
        raise ConfigurationError(
            f"--out {out} is not writable (permission denied); give a directory you can write"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"--out {out} cannot be created or written ({exc.strerror}); give another path"
        ) from None
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (np.integer, np.floating)):
        return json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _row_from_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (float("nan") if v is None and k != "validated" else v) for k, v in row.items()}


@dataclass
class RunOutcome:
    """What a run left behind: its summary (as in ``summary.json``) and whether it was cut."""

    out: Path
    summary: dict[str, Any]
    interrupted: bool = False


@dataclass
class _Progress:
    rows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    gone: set[int] = field(default_factory=set)
    state: SimulationState | None = None
    wall_before: float = 0.0  #: seconds spent by earlier (resumed-from) processes


def _traffic_rows(records: Iterable[TrafficRecord]) -> list[list[Any]]:
    return [[r.round, r.kind.name.lower(), r.sender, r.recipient, r.nbytes] for r in records]


def _save_model(weights: np.ndarray, model: nn.Module, out: Path) -> None:
    from safetensors.torch import save_file

    trained = copy.deepcopy(model)
    vector_to_model(weights, trained)
    state = {k: v.detach().cpu().contiguous() for k, v in trained.state_dict().items()}
    torch.save(state, out / "model.pt")
    save_file(state, str(out / "model.safetensors"))


class _RunDirectory:
    """Writes a run directory round by round, and its checkpoint."""

    def __init__(self, out: Path, prep: Prepared, chosen: dict[str, Any], command: str) -> None:
        self.out = out
        self.prep = prep
        self.chosen = chosen
        self.command = command
        self.ckpt = out / "checkpoint"
        self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.clock = time.perf_counter()
        self.progress = _Progress()
        self.vanish = {v.participant: v for v in prep.sim.vanish}

    # -- start -----------------------------------------------------------------------------

    def start_fresh(self) -> None:
        for name in _RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.out / name).unlink()
        shutil.rmtree(self.ckpt, ignore_errors=True)
        self.ckpt.mkdir()
        (self.out / "config.toml").write_text(dump_toml(nest(self.chosen)))
        with open(self.out / "traffic.csv", "w", newline="") as fh:
            csv.writer(fh).writerow(_TRAFFIC_HEADER)

    def load_checkpoint(self) -> SimulationState:
        state_file = self.ckpt / "state.json"
        if not state_file.is_file():
            raise ConfigurationError(
                f"--resume {self.out}: no checkpoint/state.json (the run finished no round); "
                f"start it again without --resume"
            )
        data = json.loads(state_file.read_text())
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ConfigurationError(f"--resume {self.out}: unknown checkpoint format")
        if data["config_sha256"] != choices_hash(self.chosen):
            raise ConfigurationError(
                f"--resume {self.out}: config.toml changed since the checkpoint was written; "
                f"restore it or start a new run"
            )
        if data["round"] + 1 >= self.prep.protocol.rounds:
            raise ConfigurationError(
                f"--resume {self.out}: the run already finished all "
                f"{self.prep.protocol.rounds} rounds; nothing to resume"
            )
        weights = np.load(self.ckpt / data["weights_file"], allow_pickle=False)
        p = self.progress
        p.rows = [_row_from_json(r) for r in data["history"]]
        p.outcomes = data["outcomes"]
        p.rejections = data["rejections"]
        p.gone = set(data["gone"])
        p.wall_before = float(data["wall_seconds"])
        self.started = data["started"]
        # keep the traffic of the finished rounds only
        with open(self.out / "traffic.csv", newline="") as fh:
            kept = [r for r in csv.reader(fh)][1:]
        kept = [  # a kill may have cut the last line short
            r
            for r in kept
            if len(r) == len(_TRAFFIC_HEADER)
            and r[4].isdigit()
            and r[0].lstrip("-").isdigit()
            and int(r[0]) <= data["round"]
        ]
        with open(self.out / "traffic.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(_TRAFFIC_HEADER)
            writer.writerows(kept)
        state = SimulationState(
            round=int(data["round"]),
            weights=weights.astype(np.float32, copy=False),
            selection_state=data["selection_state"],
            rounding_states={int(k): v for k, v in data["rounding_states"].items()},
        )
        p.state = state
        return state

    def resumed_vanish(self, after: int) -> tuple[Vanish, ...]:
        """Participants already gone vanish at once; the rest keep their schedule."""
        out = []
        for pid, spec in self.vanish.items():
            if pid in self.progress.gone:
                out.append(Vanish(pid, after + 1, VanishPhase.ROUND_START))
            else:
                out.append(spec)
        return tuple(out)

    # -- every round -----------------------------------------------------------------------

    def on_round(self, metrics: RoundMetrics) -> None:
        row = metrics.as_row()
        protocol = self.prep.protocol
        if protocol.dp:  # every round run counts, applied or not (an upper bound)
            dim = sum(int(t.numel()) for t in self.prep.model.parameters())
            row["epsilon"] = epsilon_after(protocol, dim, len(self.progress.rows) + 1)
        self.progress.rows.append(row)

    def on_state(self, state: SimulationState) -> None:
        p = self.progress
        p.state = state
        outcome = state.outcome
        if outcome is not None:
            p.outcomes.append(
                {
                    "round": outcome.round,
                    "status": outcome.status.name.lower(),
                    "reason": outcome.reason,
                    "group": list(outcome.group),
                    "contributors": list(outcome.contributors),
                }
            )
            for pid in outcome.group:
                spec = self.vanish.get(pid)
                if spec is not None and outcome.round >= spec.round:
                    p.gone.add(pid)
        p.rejections += [dataclasses.asdict(r) for r in state.rejections]
        with open(self.out / "traffic.csv", "a", newline="") as fh:
            csv.writer(fh).writerows(_traffic_rows(state.traffic))
        self._write_metrics()
        self._write_checkpoint(state)

    def _write_metrics(self) -> None:
        rows = self.progress.rows
        if not rows:
            return
        with open(self.out / "metrics.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def _write_checkpoint(self, state: SimulationState) -> None:
        name = f"weights-{state.round}.npy"
        with open(self.ckpt / f".{name}.tmp", "wb") as fh:
            np.save(fh, state.weights, allow_pickle=False)
        os.replace(self.ckpt / f".{name}.tmp", self.ckpt / name)
        p = self.progress
        data = {
            "format": CHECKPOINT_FORMAT,
            "round": state.round,
            "rounds": self.prep.protocol.rounds,
            "config_sha256": choices_hash(self.chosen),
            "weights_file": name,
            "selection_state": state.selection_state,
            "rounding_states": {str(k): v for k, v in state.rounding_states.items()},
            # local training builds a fresh optimizer every round and the server keeps none:
            # there is no optimizer state to save
            "optimizer_state": None,
            "history": json_safe(p.rows),
            "outcomes": p.outcomes,
            "rejections": p.rejections,
            "gone": sorted(p.gone),
            "started": self.started,
            "wall_seconds": self.wall_seconds(),
        }
        _atomic_write(self.ckpt / "state.json", json.dumps(data, indent=1).encode())
        for old in self.ckpt.glob("weights-*.npy"):
            if old.name != name:
                old.unlink()

    def wall_seconds(self) -> float:
        return self.progress.wall_before + time.perf_counter() - self.clock

    # -- end -------------------------------------------------------------------------------

    def finish(
        self,
        *,
        interrupted: bool,
        resumed_from: int | None,
        reference: Sequence[dict[str, Any]] = (),
        overrides: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write model, summary, plot and report from what finished so far."""
        prep, p = self.prep, self.progress
        last = p.state.round if p.state is not None else -1
        p.rows = [r for r in p.rows if r["round"] <= last]  # Ctrl-C may cut a round short
        if p.state is not None:
            _save_model(p.state.weights, prep.model, self.out)
        self._write_metrics()
        traffic = self._read_traffic()
        model_size = sum(int(t.numel()) for t in prep.model.parameters())
        summary = summarize(
            p.rows,
            protocol=prep.protocol,
            participants=prep.config.participants,
            model_size=model_size,
            plain_upload_bytes=plain_upload_size(model_size),
            total_bytes=sum(b for (_, _, _, _, b) in traffic),
            rejections=len(p.rejections),
        )
        validated = [r.get("validated") for r in p.rows if r["status"] == "applied"]
        summary.update(
            {
                "version": _version(),
                "command": self.command,
                "started": self.started,
                "wall_seconds": self.wall_seconds(),
                "interrupted": interrupted,
                "out": str(self.out),
                "guarantee": guarantee(prep.protocol),
                "decoding_error_bound": decoding_error_bound(
                    prep.protocol, [len(d) for d in prep.datasets]
                ),
                "validation": {
                    "ran": prep.config.validate,
                    "passed": bool(validated) and all(v in (True, "True") for v in validated)
                    if prep.config.validate
                    else None,
                },
                "device": str(prep.device),
                "threads": prep.config.threads,
                "dropouts": [
                    {"participant": v.participant, "round": v.round, "phase": v.phase.value}
                    for v in prep.sim.vanish
                ],
                "config": nest(self.chosen),
                "resolved_config": _resolved(prep),
                "rejections_detail": p.rejections,
                "aborted": [o for o in p.outcomes if o["status"] != "applied"],
            }
        )
        if prep.protocol.dp:
            summary.update(dp_summary(prep.protocol, model_size, len(p.rows)))
        if resumed_from is not None:
            summary["resumed"] = {"from_round": resumed_from}
        if reference:
            plain = reference[-1]["accuracy"] if reference else None
            mine = summary["final_accuracy"]
            summary["compare"] = {
                "plain_final_accuracy": plain,
                "accuracy_difference": None if mine is None or plain is None else mine - plain,
            }
            _write_rows(self.out / "compare-plain.csv", reference)
        summary.update(overrides or {})
        _atomic_write(
            self.out / "summary.json",
            (json.dumps(json_safe(summary), indent=2) + "\n").encode(),
        )
        if p.rows:
            plot_run(
                p.rows,
                self.out / "plot.png",
                title=f"ssddl {summary['mode']}",
                bytes_by_kind=_bytes_by_kind(traffic),
                reference=reference,
            )
        (self.out / "report.md").write_text(markdown_report(summary, summary["aborted"]))
        return summary

    def _read_traffic(self) -> list[tuple[int, str, int, int, int]]:
        with open(self.out / "traffic.csv", newline="") as fh:
            rows = list(csv.reader(fh))[1:]
        return [(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]


def _resolved(prep: Prepared) -> dict[str, Any]:
    data = prep.config.to_dict()
    data["protocol"] = prep.protocol.to_dict()
    data["device"] = str(prep.device)
    return json_safe(data)


def _write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _bytes_by_kind(traffic: Iterable[tuple[int, str, int, int, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for _, kind, sender, _, nbytes in traffic:
        direction = "down" if sender == 0 else "up"
        bucket = out.setdefault(kind, {})
        bucket[direction] = bucket.get(direction, 0) + nbytes
    return out


def _version() -> str:
    from ssddl import __version__

    return __version__


def plain_reference(config: ExperimentConfig) -> list[dict[str, Any]]:
    """The rows of the same run in mode plain, with the same seeds and dropouts."""
    keep = {f.name: getattr(config.protocol, f.name) for f in dataclasses.fields(ProtocolConfig)}
    for name in ("threshold", "ring_bits", "frac_bits", "rounding", "cipher", "aead"):
        keep.pop(name)
    keep["mode"] = Mode.PLAIN
    keep.update(dp=None, target_epsilon=None, max_epsilon=None, bits=None)  # float32, no noise
    plain = dataclasses.replace(
        config, protocol=ProtocolConfig(**keep), validate=False, compare=None
    )
    return [m.as_row() for m in run_experiment(plain, vanish=dropout_schedule(config)).history]


def run_in_directory(
    config: ExperimentConfig,
    out: Path,
    *,
    chosen: dict[str, Any],
    command: str,
    resume: bool = False,
    on_round: Callable[[RoundMetrics], None] | None = None,
    on_setup: SetupCallback | None = None,
    on_compare: Callable[[], None] | None = None,
) -> RunOutcome:
    """Run ``config`` writing ``out`` round by round; with ``resume`` continue the run whose
    checkpoint is in ``out``. Ctrl-C (KeyboardInterrupt) ends the run with what finished
    written and ``RunOutcome.interrupted`` set."""
    if config.runner is not None:
        if resume:
            raise ConfigurationError(
                f"--resume: mode {config.runner} runs outside the protocol and keeps no "
                f"checkpoint; start it again"
            )
        return _run_baseline_in_directory(
            config, config.runner, out, chosen=chosen, command=command, on_round=on_round
        )
    prep = prepare(config)
    directory = _RunDirectory(out, prep, chosen, command)
    start: SimulationState | None = None
    if resume:
        start = directory.load_checkpoint()
        prep = dataclasses.replace(
            prep, sim=dataclasses.replace(prep.sim, vanish=directory.resumed_vanish(start.round))
        )
    else:
        directory.start_fresh()

    def round_done(metrics: RoundMetrics) -> None:
        directory.on_round(metrics)
        if on_round is not None:
            on_round(metrics)

    budget = _Budget(config.protocol.max_epsilon, prep)
    budget.check_first(0 if start is None else start.round + 1)

    def state_done(state: SimulationState) -> None:
        directory.on_state(state)
        budget.check_next(state.round + 1)  # after the checkpoint: everything is saved

    interrupted = False
    reference: list[dict[str, Any]] = []
    try:
        simulate(
            prep.model,
            prep.datasets,
            dataclasses.replace(prep.sim, keep_round_arrays=False),  # results go to files
            test=prep.split.test,
            on_round=round_done,
            on_setup=on_setup,
            on_state=state_done,
            resume=start,
            device=prep.device,
        )
        if config.compare == "plain":
            if on_compare is not None:
                on_compare()
            reference = plain_reference(config)
    except KeyboardInterrupt:
        interrupted = True
    except _BudgetSpent as spent:
        budget.stopped = spent.args[0]
    summary = directory.finish(
        interrupted=interrupted,
        resumed_from=None if start is None else start.round,
        reference=reference,
        overrides=budget.report(),
    )
    return RunOutcome(out, summary, interrupted)


class _BudgetSpent(Exception):
    """The next round would take ε above ``max_epsilon``: the run stops before it."""


class _Budget:
    """``max_epsilon`` of a distributed-DP run: ε is the same function of the number of rounds
    run in every run of a configuration, so the round that would exceed it is known before it
    starts."""

    def __init__(self, limit: float | None, prep: Prepared) -> None:
        self.limit, self.params = limit, prep.protocol
        self.dim = sum(int(t.numel()) for t in prep.model.parameters())
        self.stopped: dict[str, Any] | None = None

    def _over(self, rounds: int) -> float | None:
        """ε after ``rounds`` rounds if it exceeds the limit, else None."""
        if self.limit is None or rounds > self.params.rounds:
            return None
        spent = epsilon_after(self.params, self.dim, rounds)
        return spent if spent > self.limit else None

    def check_first(self, first: int) -> None:
        spent = self._over(first + 1)
        if spent is not None:
            raise ConfigurationError(
                f"max_epsilon={self.limit}: round {first} would already take epsilon to "
                f"{spent:.4g}; raise noise_multiplier or max_epsilon"
            )

    def check_next(self, rounds_run: int) -> None:
        spent = self._over(rounds_run + 1)
        if spent is not None:
            raise _BudgetSpent(
                {"reason": "max_epsilon", "max_epsilon": self.limit, "before_round": rounds_run,
                 "epsilon_next_round": spent}
            )  # fmt: skip

    def report(self) -> dict[str, Any]:
        return {} if self.stopped is None else {"stopped": self.stopped}


# -- baselines that run outside the protocol ---------------------------------------------------


def runner_config(config: ExperimentConfig) -> Any:
    """The :class:`~ssddl.baselines.runners.RunnerConfig` of a runner mode's experiment: the
    protocol section's rounds and fixed point (16 fractional bits unless given), the
    baseline options."""
    from ssddl.baselines.runners import RunnerConfig

    p = config.protocol
    return RunnerConfig(
        rounds=p.rounds,
        train=config.train,
        seed=config.seed,
        ring_bits=p.ring_bits,
        frac_bits=16 if p.frac_bits is None else p.frac_bits,
        clip=p.clip,
        he_key_bits=config.he_key_bits,
        he_poly_degree=config.he_poly_degree,
        he_real_rounds=config.he_real_rounds,
        dssgd=config.dssgd_config(),
    )


def _runner_of(mode: str) -> Any:
    """The runner of a runner mode, as its catalogue entry names it."""
    runner = modes.entry(mode).runner
    if runner is None:
        raise ConfigurationError(f"mode {mode} runs in the protocol, not as a runner")
    return runner


def metrics_of(row: dict[str, Any]) -> RoundMetrics:
    """A runner's row as the simulator's RoundMetrics (extra columns dropped)."""
    return RoundMetrics(**{f.name: row[f.name] for f in dataclasses.fields(RoundMetrics)})


def run_baseline_experiment(
    config: ExperimentConfig,
    *,
    on_round: Callable[[RoundMetrics], None] | None = None,
    prep: Prepared | None = None,
    runner: Any = None,
) -> Any:
    """Run a runner mode (``config.runner``) in memory; returns its BaselineRun. ``runner``
    (a RunnerConfig) replaces the one made from ``config``."""
    from ssddl.baselines.runners import run_baseline

    if config.runner is None:
        raise ConfigurationError("run_baseline_experiment needs a runner mode")
    prep = prepare(config) if prep is None else prep
    return run_baseline(
        _runner_of(config.runner),
        prep.model,
        prep.datasets,
        runner_config(config) if runner is None else runner,
        test=prep.split.test,
        on_round=None if on_round is None else (lambda row: on_round(metrics_of(row))),
    )


def _run_baseline_in_directory(
    config: ExperimentConfig,
    mode: str,
    out: Path,
    *,
    chosen: dict[str, Any],
    command: str,
    on_round: Callable[[RoundMetrics], None] | None,
) -> RunOutcome:
    """A runner mode writes the same run directory as ``simulate`` (no checkpoint)."""
    from ssddl.baselines.runners import run_baseline

    prep = prepare(config)
    directory = _RunDirectory(out, prep, chosen, command)
    directory.start_fresh()
    shutil.rmtree(directory.ckpt, ignore_errors=True)

    def round_done(row: dict[str, Any]) -> None:
        directory.progress.rows.append(row)
        if on_round is not None:
            on_round(metrics_of(row))

    interrupted = False
    overrides: dict[str, Any] = {"mode": mode}
    try:
        run = run_baseline(
            _runner_of(mode),
            prep.model,
            prep.datasets,
            runner_config(config),
            test=prep.split.test,
            on_round=round_done,
        )
    except KeyboardInterrupt:
        interrupted = True
    else:
        with open(out / "traffic.csv", "a", newline="") as fh:
            csv.writer(fh).writerows(run.traffic)
        directory.progress.state = SimulationState(
            round=len(run.rows) - 1, weights=run.weights, selection_state={}, rounding_states={}
        )
        overrides["baseline"] = json_safe(run.extra)
    overrides["guarantee"] = stated(
        modes.entry(mode).guarantee(config.participants),
        config.participants,
        recovery="none",
        consistency=False,
    )
    overrides["decoding_error_bound"] = 0.0
    overrides["resolved_config"] = json_safe(config.to_dict())
    summary = directory.finish(interrupted=interrupted, resumed_from=None, overrides=overrides)
    return RunOutcome(out, summary, interrupted)
