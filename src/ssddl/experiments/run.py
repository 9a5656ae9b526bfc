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
after every round, so an interrupted run keeps what it finished. How and where each file is
written is :mod:`ssddl.experiments.rundir`'s business; this module decides what they hold.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
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
from ssddl.experiments.participants import ParticipantsCsv, hold_out, read_participants
from ssddl.experiments.report import (
    caption,
    decoding_error_bound,
    guarantee,
    markdown_report,
    stated,
    summarize,
)
from ssddl.experiments.resources import check_participants
from ssddl.experiments.rundir import (
    CHECKPOINT_FORMAT,
    FINAL_OUTPUTS,
    Checkpoint,
    OutputError,
    OutputsInterrupted,
    RunDirectory,
    RunNotWritten,
    TrafficRow,
    claim,
    json_safe,
    prepare_out_dir,
)
from ssddl.learning.data import ArrayDataset, DatasetSplit, load_dataset
from ssddl.learning.imports import (
    is_import_path,
    load_dataset_factory,
    load_model_factory,
    load_train_step,
)
from ssddl.learning.init import load_init
from ssddl.learning.models import build_model
from ssddl.learning.partition import partition
from ssddl.learning.vector import vector_to_model
from ssddl.protocol.config import Mode, ProtocolConfig, SessionParams
from ssddl.protocol.dp import calibrated_noise, dp_summary, epsilon_after
from ssddl.runtime.callbacks import CallbackList, Relay, RunCallback
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
    "OutputsInterrupted",
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


def load_split(config: ExperimentConfig) -> DatasetSplit:
    if is_import_path(config.dataset):
        return load_dataset_factory(config.dataset, seed=config.seed)
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
    #: each participant's held-out split (``eval_participants``), else None
    holdout: list[ArrayDataset] | None = None


def _build_model(config: ExperimentConfig, split: DatasetSplit) -> nn.Module:
    """The built-in model ``config.model`` names, or the one its factory builds."""
    shape, classes = split.train.input_shape, split.train.num_classes
    if is_import_path(config.model):
        model = load_model_factory(config.model, shape, classes, seed=config.seed)
    else:
        model = build_model(config.model, shape, classes, seed=config.seed)
    if config.init is not None:  # a warm start: checked against the model's tensors
        load_init(config.init, model)
    return model


def prepare(config: ExperimentConfig, *, vanish: tuple[Vanish, ...] | None = None) -> Prepared:
    """Everything before training; every error a user can cause is raised here."""
    device = resolve_device(config.device)
    split = load_split(config)
    model = _build_model(config, split)
    check_participants(  # before the data is split among them
        config.participants,
        parameters=sum(int(t.numel()) for t in model.parameters()),
        sample_bytes=int(split.train.x.nbytes),
    )
    parts = partition(
        split.train.y,
        config.participants,
        config.partition,
        rng=np.random.default_rng(config.seed),
        alpha=config.alpha,
        shards_per_part=config.shards_per_participant,
    )
    datasets = [split.train.subset(idx) for idx in parts]
    holdout = None
    if config.eval_participants is not None:
        datasets, holdout = hold_out(datasets, config.seed)
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
        eval_participants=config.eval_participants,
        train_step=None
        if config.train_step is None
        else load_train_step(config.train_step, model, datasets[0]),
    )
    return Prepared(
        config,
        split,
        datasets,
        model,
        sim,
        resolved,
        device,
        holdout,
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
    callbacks: Sequence[RunCallback] = (),
    progress: bool | None = False,
) -> SimulationResult:
    """Run one simulation as ``config`` says, in memory (no run directory); ``progress``
    as :func:`~ssddl.runtime.simulator.simulate` has it (off by default: callers here
    report through ``on_round`` and ``on_setup``)."""
    prep = prepare(config, vanish=vanish)
    return simulate(
        prep.model,
        prep.datasets,
        prep.sim,
        test=prep.split.test,
        on_round=on_round,
        on_setup=on_setup,
        device=prep.device,
        callbacks=callbacks,
        holdout=prep.holdout,
        progress=progress,
    )


def _row_from_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (float("nan") if v is None and k != "validated" else v) for k, v in row.items()}


@dataclass
class RunOutcome:
    """What a run left behind: its summary (as in ``summary.json``), whether it was cut, and
    the final outputs a resume completed (of a run interrupted after its last round)."""

    out: Path
    summary: dict[str, Any]
    interrupted: bool = False
    completed: tuple[str, ...] = ()


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


def _model_state(weights: np.ndarray, model: nn.Module) -> dict[str, torch.Tensor]:
    trained = copy.deepcopy(model)
    vector_to_model(weights, trained)
    return {k: v.detach().cpu().contiguous() for k, v in trained.state_dict().items()}


class _Recorder:
    """Follows a run round by round and writes its run directory and checkpoint."""

    def __init__(
        self,
        directory: RunDirectory,
        prep: Prepared,
        chosen: dict[str, Any],
        command: str,
        *,
        extended_from: dict[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.out = directory.path
        self.prep = prep
        self.chosen = chosen
        #: the run's choices before ``--resume DIR --rounds N`` changed its rounds
        self.extended_from = extended_from
        self.command = command
        self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.clock = time.perf_counter()
        self.progress = _Progress()
        self.vanish = {v.participant: v for v in prep.sim.vanish}
        #: final outputs an interruption after the last round left out (completed on resume)
        self.missing: list[str] = []

    # -- start -----------------------------------------------------------------------------

    def start_fresh(self, *, checkpoint: bool = True) -> None:
        self.directory.start(dump_toml(nest(self.chosen)), checkpoint=checkpoint)

    def resume(self) -> SimulationState | None:
        """Restore the run from its checkpoint; ``None`` (and a fresh start with the run's
        ``config.toml``) when it finished no round. Refuses a changed ``config.toml`` and a
        run with nothing left to do."""
        model_size = sum(int(t.numel()) for t in self.prep.model.parameters())
        saved = self.directory.load_checkpoint(model_size=model_size)
        if saved is None:
            self.start_fresh()
            return None
        self._check_same_run(saved)
        rounds = self.prep.protocol.rounds
        if saved.round + 1 >= rounds:
            self.missing = self.directory.missing_outputs(saved, self._final_outputs())
            if not self.missing:
                raise ConfigurationError(
                    f"--resume {self.out}: the run already finished all {rounds} rounds "
                    f"and wrote every output; nothing to resume (extend it with --resume "
                    f"{self.out} --rounds N)"
                )
        self.directory.keep_traffic_through(saved.round)
        p = self.progress
        p.rows = [_row_from_json(r) for r in saved.history]
        p.outcomes = saved.outcomes
        p.rejections = saved.rejections
        p.gone = set(saved.gone)
        p.wall_before = saved.wall_seconds
        self.started = saved.started
        p.state = SimulationState(
            round=saved.round,
            weights=saved.weights,
            selection_state=saved.selection_state,
            rounding_states=saved.rounding_states,
        )
        return p.state

    def _check_same_run(self, saved: Checkpoint) -> None:
        """Refuse a ``config.toml`` edited since the checkpoint; with new rounds
        (``extended_from``), record them in the checkpoint, then in ``config.toml``."""
        if saved.config_sha256 == choices_hash(self.chosen):
            return
        before = self.extended_from
        if before is None or saved.config_sha256 != choices_hash(before):
            raise ConfigurationError(
                f"--resume {self.out}: config.toml changed since the checkpoint was written; "
                f"restore it or start a new run"
            )
        rounds = self.prep.protocol.rounds
        if rounds < saved.round + 1:
            raise ConfigurationError(
                f"--resume {self.out} --rounds {rounds}: the run already finished "
                f"{saved.round + 1} rounds; give --rounds {saved.round + 1} or more"
            )
        # the checkpoint first: a kill between the two leaves a run that the same command
        # (--resume DIR --rounds N) continues
        self.directory.extend_checkpoint(rounds, choices_hash(self.chosen))
        self.directory.rewrite_config(dump_toml(nest(self.chosen)))

    def _final_outputs(self) -> list[str]:
        skip = set() if self.prep.config.compare == "plain" else {"compare-plain.csv"}
        return [n for n in FINAL_OUTPUTS if n not in skip]

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
        self.directory.append_traffic(_traffic_rows(state.traffic))
        self.directory.write_metrics(p.rows)
        self.directory.save_checkpoint(self._checkpoint(state))

    def _checkpoint(self, state: SimulationState) -> Checkpoint:
        p = self.progress
        return Checkpoint(
            round=state.round,
            rounds=self.prep.protocol.rounds,
            config_sha256=choices_hash(self.chosen),
            weights=state.weights,
            selection_state=state.selection_state,
            rounding_states=state.rounding_states,
            history=p.rows,
            outcomes=p.outcomes,
            rejections=p.rejections,
            gone=sorted(p.gone),
            started=self.started,
            wall_seconds=self.wall_seconds(),
        )

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
        self.directory.record_outputs = not interrupted
        if p.state is not None:
            self.directory.write_model(_model_state(p.state.weights, prep.model))
        self.directory.write_metrics(p.rows)
        traffic = self.directory.read_traffic()
        summary = self._summary(traffic, interrupted=interrupted)
        if resumed_from is not None:
            summary["resumed"] = {"from_round": resumed_from}
        if reference:
            plain = reference[-1]["accuracy"] if reference else None
            mine = summary["final_accuracy"]
            summary["compare"] = {
                "plain_final_accuracy": plain,
                "accuracy_difference": None if mine is None or plain is None else mine - plain,
            }
            self.directory.write_rows("compare-plain.csv", reference)
        summary.update(overrides or {})
        self.directory.write_summary(summary)
        if p.rows:
            self.directory.write_plot(
                p.rows,
                title=f"ssddl {summary['mode']}",
                bytes_by_kind=_bytes_by_kind(traffic),
                reference=reference,
                participants=read_participants(self.out),
                plain_upload_bytes=summary["plain_upload_bytes_per_participant_round"],
                caption=caption(summary),
            )
        self.directory.write_report(markdown_report(summary, summary["aborted"]))
        if not interrupted and p.state is not None:
            self.directory.mark_finished()
        return summary

    def _summary(self, traffic: list[TrafficRow], *, interrupted: bool) -> dict[str, Any]:
        prep, p = self.prep, self.progress
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
        return summary


def _resolved(prep: Prepared) -> dict[str, Any]:
    data = prep.config.to_dict()
    data["protocol"] = prep.protocol.to_dict()
    data["device"] = str(prep.device)
    return json_safe(data)


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


def plain_reference(
    config: ExperimentConfig, *, on_round: Callable[[RoundMetrics], None] | None = None
) -> list[dict[str, Any]]:
    """The rows of the same run in mode plain, with the same seeds and dropouts; its rounds
    are reported to ``on_round``."""
    keep = {f.name: getattr(config.protocol, f.name) for f in dataclasses.fields(ProtocolConfig)}
    for name in ("threshold", "ring_bits", "frac_bits", "rounding", "cipher", "aead"):
        keep.pop(name)
    keep["mode"] = Mode.PLAIN
    keep.update(dp=None, target_epsilon=None, max_epsilon=None, bits=None)  # float32, no noise
    plain = dataclasses.replace(
        config, protocol=ProtocolConfig(**keep), validate=False, compare=None
    )
    result = run_experiment(plain, vanish=dropout_schedule(config), on_round=on_round)
    return [m.as_row() for m in result.history]


def run_in_directory(
    config: ExperimentConfig,
    out: RunDirectory | Path,
    *,
    chosen: dict[str, Any],
    command: str,
    resume: bool = False,
    rounds: int | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
    on_setup: SetupCallback | None = None,
    on_compare: Callable[[], None] | None = None,
    callbacks: Sequence[RunCallback] = (),
    on_compare_round: Callable[[RoundMetrics], None] | None = None,
) -> RunOutcome:
    """Run ``config`` writing ``out`` round by round; with ``resume`` continue the run whose
    checkpoint is in ``out``. Ctrl-C (KeyboardInterrupt) ends the run with what finished
    written and ``RunOutcome.interrupted`` set. ``callbacks`` see the start (the resolved
    configuration and the guarantee, as in ``summary.json``), every round, the
    participants' evaluations and the end (the summary); ``on_compare`` the start of the
    ``--compare plain`` reference run and ``on_compare_round`` each of its rounds. ``out``
    is a directory :func:`claim` took, or a path to claim (and release at the end).
    ``rounds`` (with ``resume``) extends the run to that many rounds: it ends as a run of
    ``rounds`` rounds from the start would, and its files continue."""
    if not isinstance(out, RunDirectory):
        with claim(str(out), resume=resume) as directory:
            return run_in_directory(
                config,
                directory,
                chosen=chosen,
                command=command,
                resume=resume,
                rounds=rounds,
                on_round=on_round,
                on_setup=on_setup,
                on_compare=on_compare,
                callbacks=callbacks,
                on_compare_round=on_compare_round,
            )
    extended_from = None
    if rounds is not None:
        extended_from = chosen
        config, chosen = _extended(config, chosen, rounds, resume=resume)
    if config.runner is not None:
        if resume:
            raise ConfigurationError(
                f"--resume: mode {config.runner} runs outside the protocol and keeps no "
                f"checkpoint; start it again"
            )
        return _run_baseline_in_directory(
            config,
            config.runner,
            out,
            chosen=chosen,
            command=command,
            on_round=on_round,
            callbacks=CallbackList(callbacks),
        )
    return _run_protocol(
        config,
        out,
        _Hooks(on_round, on_setup, on_compare, callbacks, on_compare_round),
        chosen=chosen,
        command=command,
        resume=resume,
        extended_from=extended_from,
    )


def _extended(
    config: ExperimentConfig, chosen: dict[str, Any], rounds: int, *, resume: bool
) -> tuple[ExperimentConfig, dict[str, Any]]:
    """The configuration and choices of a run extended to ``rounds`` rounds; refused where
    the first rounds would have run differently in a run planned that long."""
    why = None
    if not resume:
        why = "give --rounds without --resume to start a run of that many rounds"
    elif config.runner is not None:
        why = f"mode {config.runner} keeps no checkpoint; start a new run"
    elif config.dropout > 0:
        why = "--dropout draws each vanishing round over the planned rounds; start a new run"
    elif config.protocol.target_epsilon is not None:
        why = "--target-epsilon calibrates the noise to the planned rounds; start a new run"
    if why is not None:
        raise ConfigurationError(f"--resume --rounds {rounds}: cannot extend this run: {why}")
    protocol = dataclasses.replace(config.protocol, rounds=rounds)
    return dataclasses.replace(config, protocol=protocol), {**chosen, "protocol.rounds": rounds}


@dataclass(frozen=True)
class _Hooks:
    """What the caller hears of a run: each round, setup progress, the plain reference."""

    on_round: Callable[[RoundMetrics], None] | None = None
    on_setup: SetupCallback | None = None
    on_compare: Callable[[], None] | None = None
    callbacks: Sequence[RunCallback] = ()
    on_compare_round: Callable[[RoundMetrics], None] | None = None


def _run_protocol(
    config: ExperimentConfig,
    out: RunDirectory,
    hooks: _Hooks,
    *,
    chosen: dict[str, Any],
    command: str,
    resume: bool,
    extended_from: dict[str, Any] | None = None,
) -> RunOutcome:
    """A run of the protocol into the claimed ``out``, from a checkpoint with ``resume``."""
    prep = prepare(config)
    out.check_space(sum(int(t.numel()) for t in prep.model.parameters()))
    recorder = _Recorder(out, prep, chosen, command, extended_from=extended_from)
    start: SimulationState | None = None
    budget = _Budget(config.protocol.max_epsilon, prep)
    if not resume:
        budget.check_first(0)  # before anything is written
    interrupted = False
    reference: list[dict[str, Any]] = []
    tracker = CallbackList([])
    loaded = not resume  # a resume holds the run's rows only once its checkpoint is read
    try:
        if resume:
            start = recorder.resume()
            loaded = True
        else:
            recorder.start_fresh()
        tracker = _tracker(config, out.path, start, hooks.callbacks)
        tracker.on_start(_resolved(prep), guarantee(prep.protocol))
        if start is None or start.round + 1 < prep.protocol.rounds:
            budget.check_first(0 if start is None else start.round + 1)
            _train(prep, recorder, start, budget, tracker, hooks)
        if config.compare == "plain":
            if hooks.on_compare is not None:
                hooks.on_compare()
            reference = plain_reference(config, on_round=hooks.on_compare_round)
    except KeyboardInterrupt:
        if not loaded:  # Ctrl-C while the checkpoint was read: the run is as it was; finishing
            raise  # now would write its outputs from rows not loaded yet (empty)
        interrupted = True
    except _BudgetSpent as spent:
        budget.stopped = spent.args[0]
    except OutputError as exc:
        raise RunNotWritten(exc, out.path, out.rounds_kept()) from exc
    try:
        summary = recorder.finish(
            interrupted=interrupted,
            resumed_from=None if start is None else start.round,
            reference=reference,
            overrides=budget.report(),
        )
    except KeyboardInterrupt:
        raise OutputsInterrupted(out.path, out.rounds_kept()) from None
    except OutputError as exc:
        raise RunNotWritten(exc, out.path, out.rounds_kept()) from exc
    tracker.on_end(summary)
    return RunOutcome(out.path, summary, interrupted, completed=tuple(recorder.missing))


def _train(
    prep: Prepared,
    recorder: _Recorder,
    start: SimulationState | None,
    budget: _Budget,
    tracker: CallbackList,
    hooks: _Hooks,
) -> None:
    """Simulate the rounds after ``start`` (all of them without), recording each; stop
    before a round that would spend more than the privacy ``budget``."""
    if start is not None:  # who had vanished stays gone
        vanish = recorder.resumed_vanish(start.round)
        prep = dataclasses.replace(prep, sim=dataclasses.replace(prep.sim, vanish=vanish))

    def round_done(metrics: RoundMetrics) -> None:
        recorder.on_round(metrics)
        if hooks.on_round is not None:
            hooks.on_round(metrics)

    def state_done(state: SimulationState) -> None:
        recorder.on_state(state)
        budget.check_next(state.round + 1)  # after the checkpoint: everything is saved

    simulate(
        prep.model,
        prep.datasets,
        dataclasses.replace(prep.sim, keep_round_arrays=False),  # results go to files
        test=prep.split.test,
        on_round=round_done,
        on_setup=hooks.on_setup,
        on_state=state_done,
        resume=start,
        device=prep.device,
        callbacks=[Relay([tracker])],  # start and end are reported here
        holdout=prep.holdout,
        progress=False,  # the caller's hooks show it
    )


def _tracker(
    config: ExperimentConfig,
    out: Path,
    start: SimulationState | None,
    callbacks: Sequence[RunCallback],
) -> CallbackList:
    """The run directory's participants.csv (with ``eval_participants``), then ``callbacks``."""
    keep = None if start is None else start.round
    files = [ParticipantsCsv(out, keep_through=keep)] if config.eval_participants else []
    return CallbackList([*files, *callbacks])


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
    out: RunDirectory,
    *,
    chosen: dict[str, Any],
    command: str,
    on_round: Callable[[RoundMetrics], None] | None,
    callbacks: CallbackList,
) -> RunOutcome:
    """A runner mode writes the same run directory as ``simulate`` (no checkpoint)."""
    from ssddl.baselines.runners import run_baseline

    prep = prepare(config)
    out.check_space(sum(int(t.numel()) for t in prep.model.parameters()))
    recorder = _Recorder(out, prep, chosen, command)
    recorder.start_fresh(checkpoint=False)

    def round_done(row: dict[str, Any]) -> None:
        recorder.progress.rows.append(row)
        if on_round is not None:
            on_round(metrics_of(row))
        callbacks.on_round(metrics_of(row))

    interrupted = False
    overrides: dict[str, Any] = {"mode": mode}
    overrides["guarantee"] = stated(
        modes.entry(mode).guarantee(config.participants),
        config.participants,
        recovery="none",
        consistency=False,
    )
    callbacks.on_start(json_safe(config.to_dict()), overrides["guarantee"])
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
        recorder.directory.append_traffic(run.traffic)
        recorder.progress.state = SimulationState(
            round=len(run.rows) - 1, weights=run.weights, selection_state={}, rounding_states={}
        )
        overrides["baseline"] = json_safe(run.extra)
    overrides["decoding_error_bound"] = 0.0
    overrides["resolved_config"] = json_safe(config.to_dict())
    summary = recorder.finish(interrupted=interrupted, resumed_from=None, overrides=overrides)
    callbacks.on_end(summary)
    return RunOutcome(out.path, summary, interrupted)
