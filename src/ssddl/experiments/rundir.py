"""A run directory on disk: the one place that knows its files, their formats and how they
are written.

A run (:mod:`ssddl.experiments.run`) decides *what* to write; this module decides *where and
how*:

- :func:`claim` takes a directory for one run, before anything is written: it holds a lock
  on ``.ssddl.lock`` there until the run ends, refuses a directory that holds another run
  (unless ``force``, which moves that run aside) and never overwrites a file a user wrote;
- :meth:`RunDirectory.start` begins a fresh run (``config.toml``, an empty ``traffic.csv``,
  an empty ``checkpoint/``);
- every round: :meth:`~RunDirectory.append_traffic`, :meth:`~RunDirectory.write_metrics`
  and :meth:`~RunDirectory.save_checkpoint`;
- at the end: :meth:`~RunDirectory.write_model`, :meth:`~RunDirectory.write_summary`,
  :meth:`~RunDirectory.write_plot`, :meth:`~RunDirectory.write_report` (and
  :meth:`~RunDirectory.write_rows` for ``compare-plain.csv``);
- for ``--resume``: :meth:`~RunDirectory.load_checkpoint` and
  :meth:`~RunDirectory.keep_traffic_through`.

Every file is written atomically (a temporary file in the same directory, fsync, rename), so
a kill or a full disk leaves the previous version or the new one, never half a file; only
``traffic.csv`` grows by appending, and a line a kill cut short is dropped on resume. The
checkpoint records which final outputs were written from it and whether the run finished, so
``--resume`` can complete whatever an interruption left out.

The checkpoint holds only public state (see ``docs/howto/resume.md``): never a key, a seed of
the cryptography, a share or a round key.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import fcntl
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError, SSDDLError

__all__ = [
    "CHECKPOINT_FORMAT",
    "FINAL_OUTPUTS",
    "RUN_FILES",
    "TRAFFIC_HEADER",
    "Checkpoint",
    "OutputError",
    "OutputsInterrupted",
    "RunDirectory",
    "RunNotWritten",
    "TrafficRow",
    "claim",
    "json_safe",
    "prepare_out_dir",
]

CHECKPOINT_FORMAT = "ssddl-checkpoint/1"
#: the files a run writes next to ``config.toml`` and ``checkpoint/``
RUN_FILES = (
    "metrics.csv",
    "traffic.csv",
    "summary.json",
    "plot.png",
    "report.md",
    "model.pt",
    "model.safetensors",
    "compare-plain.csv",
    "participants.csv",
)
#: written at the end of a run (or of an interrupted one) from its last checkpoint
FINAL_OUTPUTS = (
    "model.pt",
    "model.safetensors",
    "compare-plain.csv",
    "summary.json",
    "plot.png",
    "report.md",
)
TRAFFIC_HEADER = ["round", "kind", "sender", "recipient", "bytes"]
#: a directory with one of these holds a run (the other names may be a user's own files)
_RUN_MARKS = ("traffic.csv", "metrics.csv", "summary.json", "checkpoint")
LOCK_FILE = ".ssddl.lock"
#: one line of ``traffic.csv``: round, message kind, sender, recipient, bytes
TrafficRow = tuple[int, str, int, int, int]


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as ``None``."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (np.integer, np.floating)):
        return json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


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


class OutputError(SSDDLError):
    """A file of a run could not be written (a full disk, a quota, a file-size limit, a
    read-only or vanished file system). What was written before stays valid: every file is
    replaced atomically, so the checkpoint is the last one that was written whole."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.reason = error.strerror or str(error)
        self.errno = error.errno
        super().__init__(f"cannot write {path}: {self.reason}")


class RunNotWritten(OutputError):
    """A run stopped because one of its files could not be written; ``rounds`` rounds are
    kept in its checkpoint, and ``resumable`` says whether ``--resume`` can continue it
    (its ``config.toml`` was written)."""

    def __init__(self, error: OutputError, out: Path, rounds: int) -> None:
        self.path, self.reason, self.errno = error.path, error.reason, error.errno
        self.out = out
        self.rounds = rounds
        self.resumable = (out / "config.toml").is_file()
        kept = f"the checkpoint after {rounds} rounds is kept" if rounds else "no round is kept"
        SSDDLError.__init__(self, f"cannot write {error.path}: {error.reason}; {kept}")


class OutputsInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a run wrote its final outputs: the checkpoint of the last
    finished round is kept, and ``--resume`` writes what is missing."""

    def __init__(self, out: Path, rounds: int) -> None:
        super().__init__(f"interrupted while writing the final outputs of {out}")
        self.out = out
        self.rounds = rounds  #: rounds finished and checkpointed


def claim(out: str, *, resume: bool = False, force: bool = False) -> RunDirectory:
    """Take ``out`` for one run before anything is written to it: create it if missing,
    lock it against a second run, and — for a new run — refuse one that holds another run
    (``force`` moves that run to ``<out>.replaced-<time>``) or a user's file of a run's
    name. With ``resume`` it must hold the run to continue. Raises ConfigurationError naming
    the flag and the fix."""
    flag = "--resume" if resume else "--out"
    path = prepare_out_dir(out) if not resume else Path(out).expanduser()
    directory = RunDirectory(path, flag=flag)
    try:
        directory._take_lock()
    except PermissionError:
        raise ConfigurationError(
            f"{flag} {out} is not writable (permission denied); give a directory you can write"
        ) from None
    try:
        if resume:
            if not (path / "config.toml").is_file():
                raise ConfigurationError(
                    f"--resume {out} holds no config.toml: not a run directory"
                )
        else:
            directory.moved_aside = directory._check_fresh(force=force)
    except BaseException:
        directory.release()
        raise
    return directory


@dataclass
class Checkpoint:
    """``checkpoint/``: the state after the last finished round, and the run's history."""

    round: int
    rounds: int
    config_sha256: str
    weights: np.ndarray
    selection_state: dict[str, Any]
    rounding_states: dict[int, Any]
    history: list[dict[str, Any]]  #: the metrics rows (non-finite floats as ``None``)
    outcomes: list[dict[str, Any]]
    rejections: list[dict[str, Any]]
    gone: list[int]
    started: str
    wall_seconds: float
    #: the final outputs written from this checkpoint's state, in the order written
    outputs: list[str] = field(default_factory=list)
    #: all rounds ran and every final output of a finished run was written
    finished: bool = False

    def state_json(self, weights_file: str) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "round": self.round,
            "rounds": self.rounds,
            "config_sha256": self.config_sha256,
            "weights_file": weights_file,
            "selection_state": self.selection_state,
            "rounding_states": {str(k): v for k, v in self.rounding_states.items()},
            # local training builds a fresh optimizer every round and the server keeps none:
            # there is no optimizer state to save
            "optimizer_state": None,
            "history": json_safe(self.history),
            "outcomes": self.outcomes,
            "rejections": self.rejections,
            "gone": sorted(self.gone),
            "started": self.started,
            "wall_seconds": self.wall_seconds,
            "outputs": self.outputs,
            "finished": self.finished,
        }


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The permission policy of a run directory's files: the trained model and the checkpoint
#: (the model's weights every round) are owner-only, since a model can leak its training
#: data; everything else (metrics, traffic, summary, report, plot, config) is world-readable.
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
PRIVATE_DIR_MODE = 0o700  #: ``checkpoint/``


def file_mode(path: Path) -> int:
    """The mode :data:`PRIVATE_MODE` or :data:`PUBLIC_MODE` a run's file ``path`` gets."""
    if path.name.startswith("model.") or path.parent.name == "checkpoint":
        return PRIVATE_MODE
    return PUBLIC_MODE


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write; then give it its :func:`file_mode`,
    fsync it and rename it over ``path`` (and fsync the directory). On any error the
    temporary file is removed and ``path`` is left as it was."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix tells the format
    try:
        yield tmp
        os.chmod(tmp, file_mode(path))
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(path, exc) from exc
        raise
    with contextlib.suppress(OSError):  # durability of the rename; not every system allows it
        _fsync(path.parent)


def _atomic_write(path: Path, data: bytes) -> None:
    with _replacing(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def _checkpoint_of(data: dict[str, Any], weights: np.ndarray) -> Checkpoint:
    return Checkpoint(
        round=int(data["round"]),
        rounds=int(data["rounds"]),
        config_sha256=str(data["config_sha256"]),
        weights=weights,
        selection_state=dict(data["selection_state"]),
        rounding_states={int(k): v for k, v in data["rounding_states"].items()},
        history=list(data["history"]),
        outcomes=list(data["outcomes"]),
        rejections=list(data["rejections"]),
        gone=[int(g) for g in data["gone"]],
        started=str(data["started"]),
        wall_seconds=float(data["wall_seconds"]),
        outputs=[str(n) for n in data.get("outputs", [])],
        finished=bool(data.get("finished", False)),
    )


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class RunDirectory:
    """The files of one run directory (see :mod:`ssddl.experiments.run` for what they hold).

    Made by :func:`claim`, which locks it; use it as a context manager (or call
    :meth:`release`) to let the lock go when the run ends."""

    def __init__(self, path: Path, *, flag: str = "--out") -> None:
        self.path = path
        self.flag = flag  #: how the user named it (``--out`` or ``--resume``), for messages
        self.checkpoint_dir = path / "checkpoint"
        self._lock: int | None = None
        self._saved: tuple[Checkpoint, str] | None = None  #: last checkpoint, its weights file
        #: record final outputs in the checkpoint (not those of an interrupted run, which a
        #: resumed run rewrites)
        self.record_outputs = True
        self.moved_aside: Path | None = None  #: where ``--force`` moved an earlier run

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Let another run take the directory (the lock also goes when the process ends)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _take_lock(self) -> None:
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            pid = f" (process {holder})" if holder.isdigit() else ""
            other = "" if self.flag == "--resume" else " or choose another --out"
            raise ConfigurationError(
                f"{self.flag} {self.path} is in use by another ssddl run{pid}; wait for it to "
                f"end{other}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock = fd

    def holds_run(self) -> bool:
        return any((self.path / name).exists() for name in _RUN_MARKS)

    def _check_fresh(self, *, force: bool) -> Path | None:
        """Refuse a directory that holds a run (or move it aside with ``force``) and one
        with a file of a run's name that a user wrote. Returns where an old run went."""
        moved = None
        if self.holds_run():
            if not force:
                raise ConfigurationError(
                    f"--out {self.path} holds an earlier run; continue it with --resume "
                    f"{self.path}, or give --force to move it aside (nothing is deleted)"
                )
            moved = self._move_aside()
        theirs = [n for n in ("config.toml", *RUN_FILES) if (self.path / n).exists()]
        if theirs:
            raise ConfigurationError(
                f"--out {self.path} holds {theirs[0]}, which no ssddl run wrote; a run never "
                f"overwrites a file of yours: choose another --out"
            )
        return moved

    def _move_aside(self) -> Path:
        """Move the run's files (never anything else) to ``<out>.replaced-<UTC time>``."""
        here = self.path.resolve()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = here.with_name(f"{here.name}.replaced-{stamp}")
        for n in range(2, 1000):
            if not aside.exists():
                break
            aside = here.with_name(f"{here.name}.replaced-{stamp}-{n}")
        try:
            aside.mkdir()
            for name in ("config.toml", "checkpoint", "tensorboard", *RUN_FILES):
                if (here / name).exists():
                    os.rename(here / name, aside / name)
        except OSError as exc:
            raise ConfigurationError(
                f"--force: cannot move the earlier run in {self.path} to {aside} "
                f"({exc.strerror}); move or delete it yourself"
            ) from None
        return aside

    def check_space(self, model_size: int) -> None:
        """Refuse before training a disk without room for the run's files: about five copies
        of the weights (two checkpoint files while one replaces the other, ``model.pt``,
        ``model.safetensors``, a temporary copy) and a megabyte for the rest."""
        needed = 5 * 4 * model_size + 2**20
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:  # not every file system says; writing will tell
            return
        if free < needed:
            raise ConfigurationError(
                f"{self.flag} {self.path}: {free / 2**20:.1f} MiB free, the run needs about "
                f"{needed / 2**20:.1f} MiB (checkpoint and model files); free space or "
                f"choose another --out"
            )

    # -- start -----------------------------------------------------------------------------

    def start(self, config_toml: str, *, checkpoint: bool = True) -> None:
        """Begin a fresh run in the claimed directory: ``config.toml``, the header of
        ``traffic.csv`` and an empty ``checkpoint/`` (unless ``checkpoint`` is false)."""
        _atomic_write(self.path / "config.toml", config_toml.encode())  # first: resumable
        self._write_traffic([])
        if checkpoint:
            try:
                self.checkpoint_dir.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
                self.checkpoint_dir.chmod(PRIVATE_DIR_MODE)  # whatever the umask
            except OSError as exc:
                raise OutputError(self.checkpoint_dir, exc) from exc

    def _write_traffic(self, rows: Iterable[Sequence[Any]]) -> None:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(TRAFFIC_HEADER)
        writer.writerows(rows)
        _atomic_write(self.path / "traffic.csv", buffer.getvalue().encode())

    # -- every round -----------------------------------------------------------------------

    def append_traffic(self, rows: Iterable[Sequence[Any]]) -> None:
        """Append to ``traffic.csv`` (the one file that grows; a torn last line is dropped
        by :meth:`keep_traffic_through` on resume)."""
        path = self.path / "traffic.csv"
        try:
            with open(path, "a", newline="") as fh:
                csv.writer(fh).writerows(rows)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(path, exc) from exc

    def write_metrics(self, rows: Sequence[dict[str, Any]]) -> None:
        """``metrics.csv``: one row per round (nothing is written before the first)."""
        if rows:
            self.write_rows("metrics.csv", rows)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """The weights first, then ``state.json`` naming them, then drop older weights: a
        kill at any point leaves a consistent checkpoint."""
        name = f"weights-{checkpoint.round}.npy"
        buffer = io.BytesIO()
        np.save(buffer, checkpoint.weights, allow_pickle=False)
        _atomic_write(self.checkpoint_dir / name, buffer.getvalue())
        self._write_state((checkpoint, name))
        for old in self.checkpoint_dir.glob("weights-*.npy"):
            if old.name != name:
                old.unlink()

    def _write_state(self, saved: tuple[Checkpoint, str] | None = None) -> None:
        saved = self._saved if saved is None else saved
        if saved is not None:
            checkpoint, name = saved
            text = json.dumps(checkpoint.state_json(name), indent=1)
            _atomic_write(self.checkpoint_dir / "state.json", text.encode())
            self._saved = saved

    def rounds_kept(self) -> int:
        """The rounds the checkpoint on disk holds (0 if there is none)."""
        return 0 if self._saved is None else self._saved[0].round + 1

    def saved_state(self) -> Checkpoint | None:
        """The checkpoint this run last wrote (None before its first round)."""
        return None if self._saved is None else self._saved[0]

    def _wrote(self, *names: str) -> None:
        """Record in the checkpoint that final outputs were written from it."""
        new = [n for n in names if n in FINAL_OUTPUTS]
        if self._saved is not None and new and self.record_outputs:
            outputs = self._saved[0].outputs
            outputs += [n for n in new if n not in outputs]
            self._write_state()

    def mark_finished(self) -> None:
        """Record that every final output of the finished run is written."""
        if self._saved is not None:
            self._saved[0].finished = True
            self._write_state()

    def missing_outputs(self, checkpoint: Checkpoint, expected: Iterable[str]) -> list[str]:
        """Of the final outputs ``expected`` of a run, those the finish of its last round
        did not write or that are gone since (empty: the run is complete)."""
        return [n for n in expected if n not in checkpoint.outputs or not (self.path / n).is_file()]

    # -- resume ----------------------------------------------------------------------------

    def load_checkpoint(self, *, model_size: int | None = None) -> Checkpoint | None:
        """The saved checkpoint, or ``None`` when the run finished no round. A damaged one
        (a truncated ``state.json``, a missing or cut weights file, weights of another size
        than ``model_size``) is refused in one line naming the file."""
        state_file = self.checkpoint_dir / "state.json"
        if not state_file.is_file():
            return None
        try:
            data = json.loads(state_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise self._damaged("checkpoint/state.json", "it is not whole JSON") from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise self._damaged("checkpoint/state.json", "unknown checkpoint format")
        weights = self._weights(data.get("weights_file"), model_size)
        try:
            checkpoint = _checkpoint_of(data, weights)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            why = f"a field is missing or wrong: {exc}"
            raise self._damaged("checkpoint/state.json", why) from None
        self._saved = (checkpoint, data["weights_file"])
        return checkpoint

    def _weights(self, name: Any, size: int | None) -> np.ndarray:
        if not isinstance(name, str) or not re.fullmatch(r"weights-\d+\.npy", name):
            raise self._damaged("checkpoint/state.json", "it names no weights file")
        path = self.checkpoint_dir / name
        if not path.is_file():
            raise self._damaged(f"checkpoint/{name}", "it is missing")
        try:
            weights = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            raise self._damaged(f"checkpoint/{name}", "it is not a whole .npy file") from None
        if weights.ndim != 1 or weights.dtype.kind != "f":
            raise self._damaged(f"checkpoint/{name}", "it holds no weight vector")
        if size is not None and weights.size != size:
            why = f"it holds {weights.size} weights, the model has {size}"
            raise self._damaged(f"checkpoint/{name}", why)
        return weights.astype(np.float32, copy=False)

    def _damaged(self, name: str, why: str) -> ConfigurationError:
        return ConfigurationError(
            f"--resume {self.path}: {self.path / name} is damaged ({why}); restore it, or "
            f"start the run again with --config {self.path / 'config.toml'} --out {self.path} "
            f"--force"
        )

    def extend_checkpoint(self, rounds: int, config_sha256: str) -> None:
        """The loaded checkpoint, now of a run of ``rounds`` rounds whose choices hash to
        ``config_sha256`` (``--resume DIR --rounds N``): not finished any more."""
        if self._saved is not None:
            checkpoint = self._saved[0]
            checkpoint.rounds, checkpoint.config_sha256 = rounds, config_sha256
            checkpoint.finished = checkpoint.finished and rounds == checkpoint.round + 1
            self._write_state()

    def rewrite_config(self, config_toml: str) -> None:
        """Replace ``config.toml`` (its rounds, after :meth:`extend_checkpoint`)."""
        _atomic_write(self.path / "config.toml", config_toml.encode())

    def keep_traffic_through(self, last_round: int) -> None:
        """Keep the traffic of rounds up to ``last_round`` only (and drop a line a kill cut
        short)."""
        try:
            with open(self.path / "traffic.csv", newline="") as fh:
                kept = [r for r in csv.reader(fh)][1:]
        except FileNotFoundError:  # deleted: the traffic of the resumed rounds only
            kept = []
        kept = [
            r
            for r in kept
            if len(r) == len(TRAFFIC_HEADER)
            and r[4].isdigit()
            and r[0].lstrip("-").isdigit()
            and int(r[0]) <= last_round
        ]
        self._write_traffic(kept)

    def read_traffic(self) -> list[TrafficRow]:
        with open(self.path / "traffic.csv", newline="") as fh:
            rows = list(csv.reader(fh))[1:]
        return [(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    # -- end -------------------------------------------------------------------------------

    def write_rows(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        """A CSV file of dict rows (the keys of the first row are the header)."""
        _atomic_write(self.path / name, _csv_text(rows).encode())
        self._wrote(name)

    def write_model(self, state: dict[str, Any]) -> None:
        """``model.pt`` (``torch.load(..., weights_only=True)``) and ``model.safetensors``:
        the same tensors."""
        import torch
        from safetensors.torch import save_file

        with _replacing(self.path / "model.pt") as tmp:
            torch.save(state, tmp)
        with _replacing(self.path / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        self._wrote("model.pt", "model.safetensors")

    def write_summary(self, summary: dict[str, Any]) -> None:
        text = json.dumps(json_safe(summary), indent=2) + "\n"
        _atomic_write(self.path / "summary.json", text.encode())
        self._wrote("summary.json")

    def write_plot(self, rows: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        """``plot.png``, drawn by :func:`ssddl.experiments.report.plot_run`."""
        from ssddl.experiments.report import plot_run

        with _replacing(self.path / "plot.png") as tmp:
            plot_run(rows, tmp, **kwargs)
        self._wrote("plot.png")

    def write_report(self, text: str) -> None:
        _atomic_write(self.path / "report.md", text.encode())
        self._wrote("report.md")
