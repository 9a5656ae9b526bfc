"""The configuration of one experiment run, read from TOML and command-line options.

What the user chose (and only that) is written back as ``config.toml`` in the run directory:
passed again with ``--config`` it repeats the run, and other options can be changed on top of
it. The resolved values (group size, threshold, fractional bits, ...) go to ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssddl import modes
from ssddl.exceptions import ConfigurationError
from ssddl.experiments.options import (
    DEFAULT_EPOCHS,
    DEFAULT_ROUNDS,
    DEVICE_CHOICES,
    DROPOUT_PHASES,
    OPTIONS,
    canonical,
    check_applicable,
    config_fields,
    known_keys,
    option,
)
from ssddl.experiments.resources import check_participants, check_threads
from ssddl.learning.data import DATASETS
from ssddl.learning.imports import is_import_path
from ssddl.learning.models import MODELS
from ssddl.learning.partition import PARTITIONS
from ssddl.learning.train import LocalTrainConfig
from ssddl.protocol.config import ProtocolConfig, check_known_options
from ssddl.validators import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_ROUNDS",
    "ExperimentConfig",
    "choices_hash",
    "dump_toml",
    "flatten",
    "load_toml",
    "nest",
]

_SECTIONS = ("protocol", "train")


@dataclass(frozen=True)
class ExperimentConfig:
    """Data, model and participants of a run, plus the protocol and local-training configs."""

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    participants: int = 10
    partition: str = "iid"
    alpha: float = 0.5
    shards_per_participant: int = 2
    model: str = "mlp"
    seed: int = 0
    validate: bool = False
    dropout: float = 0.0  #: fraction of participants that vanish for good, each at a random round
    dropout_at: str = "round_start"  #: a VanishPhase value
    compare: str | None = None  #: "plain": also run the plain reference with the same seeds
    threads: int = 1  #: torch threads for local training
    device: str = "cpu"  #: cpu, cuda or auto: where local training runs
    protocol: ProtocolConfig = field(default_factory=lambda: ProtocolConfig(rounds=DEFAULT_ROUNDS))
    train: LocalTrainConfig = field(default_factory=lambda: LocalTrainConfig(epochs=DEFAULT_EPOCHS))
    #: a baseline run outside the protocol (ssddl.modes.runner_names()); its rounds,
    #: clip and fixed point come from ``protocol`` (whose mode is then a stand-in)
    runner: str | None = None
    theta_u: float = 0.1  #: DSSGD
    theta_d: float = 1.0
    gamma: float | None = None
    laplace_scale: float | None = None
    he_key_bits: int = 2048  #: Phong
    he_poly_degree: int = 4096
    he_real_rounds: int | None = None
    #: a custom loss, ``package.module:function`` (:mod:`ssddl.learning.imports`)
    train_step: str | None = None
    #: every this many rounds each participant evaluates on its own held-out split
    eval_participants: int | None = None
    #: a model.pt or model.safetensors to start from (:mod:`ssddl.learning.init`)
    init: str | None = None

    @property
    def mode(self) -> str:
        """The mode the user chose: a protocol scheme or a runner."""
        return self.runner if self.runner is not None else self.protocol.mode

    def dssgd_config(self) -> Any:
        from ssddl.baselines.dssgd import DSSGDConfig

        return DSSGDConfig(self.theta_u, self.theta_d, self.gamma, self.laplace_scale)

    def __post_init__(self) -> None:
        self._check_names()
        if self.protocol.mode in ("dssgd-parallel", "dssgd") or self.runner == "dssgd-rr":
            dssgd = self.dssgd_config()  # checks the DSSGD options
            if self.runner is None:
                from ssddl.baselines.schemes import dssgd_mode

                mode = dssgd_mode(dssgd)
                object.__setattr__(self, "protocol", dataclasses.replace(self.protocol, mode=mode))
        self._check_counts()
        self._check_run_options()
        if self.dataset in ("mnist", "fashion-mnist") and self.data_dir is None:
            raise ConfigurationError(
                f"dataset={self.dataset!r} reads IDX files: give data_dir, the directory "
                f"that holds (or, with download, will hold) them"
            )
        # fail before any data is loaded (max_samples, if unset, is fixed from the data later)
        self.protocol.resolve(self.participants, max_samples=1)

    def _check_names(self) -> None:
        """Every option that names one of a fixed list."""
        runners = modes.runner_names()
        if self.runner is not None and self.runner not in runners:
            raise ConfigurationError(
                f"runner={self.runner!r} is not one of {', '.join(runners)}"
                f"{did_you_mean(self.runner, runners)}"
            )
        for name, choices in (
            ("dataset", () if is_import_path(self.dataset) else DATASETS),
            ("partition", PARTITIONS),
            ("model", () if is_import_path(self.model) else MODELS),
            ("dropout_at", DROPOUT_PHASES),
            ("device", DEVICE_CHOICES),
        ):
            value = getattr(self, name)
            if choices and value not in choices:
                raise ConfigurationError(
                    f"{name}={value!r} is not one of {', '.join(choices)}"
                    f"{did_you_mean(value, choices)}"
                )
        if self.compare not in (None, "plain"):
            raise ConfigurationError(f"compare={self.compare!r} must be 'plain' or unset")
        if self.train_step is not None and not is_import_path(self.train_step):
            raise ConfigurationError(
                f"train_step={self.train_step!r} must be an import path package.module:function"
            )

    def _check_counts(self) -> None:
        """Counts and the seed: integers (never booleans) in range."""
        if self.eval_participants is not None and (
            isinstance(self.eval_participants, bool)
            or not isinstance(self.eval_participants, int)
            or self.eval_participants < 1
        ):
            raise ConfigurationError(
                f"eval_participants={self.eval_participants!r} must be an integer >= 1 "
                f"(evaluate every that many rounds)"
            )
        for name in ("participants", "shards_per_participant", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name}={value!r} must be an integer >= 1")
        check_threads(self.threads)
        check_participants(self.participants)  # the floor; prepare() checks with the model
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigurationError(f"seed={self.seed!r} must be an integer >= 0")

    def _check_run_options(self) -> None:
        """Switches, the data directory, the dropout rate and the Dirichlet alpha."""
        for name in ("validate", "download"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name}={getattr(self, name)!r} must be true or false")
        if self.data_dir is not None and (not isinstance(self.data_dir, str) or not self.data_dir):
            raise ConfigurationError(f"data_dir={self.data_dir!r} must be a directory path")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, (int, float))
            or not 0 <= self.dropout < 1
        ):
            raise ConfigurationError(f"dropout={self.dropout!r} must be a number in [0, 1)")
        if (
            not isinstance(self.alpha, (int, float))
            or not math.isfinite(self.alpha)
            or self.alpha <= 0
        ):
            raise ConfigurationError(f"alpha={self.alpha!r} must be a number > 0")

    # -- dict / TOML -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("protocol", "train"):
                continue
            out[f.name] = getattr(self, f.name)
        out["protocol"] = self.protocol.to_dict()
        runner = out.pop("runner")
        if runner is not None:
            out["protocol"]["mode"] = runner
        out["train"] = dataclasses.asdict(self.train)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """From a nested dict as in ``config.toml``; unset rounds/epochs take the experiment
        defaults (40 rounds, 5 epochs), not the library's."""
        check_known_options(data, cls, "experiment")
        data = dict(data)
        protocol = _fields(data.pop("protocol", {}), "protocol")
        train = _fields(data.pop("train", {}), "train")
        check_known_options(protocol, ProtocolConfig, "protocol")
        check_known_options(train, LocalTrainConfig, "train")
        protocol.setdefault("rounds", DEFAULT_ROUNDS)
        train.setdefault("epochs", DEFAULT_EPOCHS)
        runner = None
        if protocol.get("mode") in modes.runner_names():
            # the protocol section still gives rounds, clip and fixed point; the mode that
            # checks them is a stand-in without keys or threshold
            runner = data["runner"] = protocol.pop("mode")
            protocol["mode"] = "fedavg"
        try:
            return cls(
                **data,
                protocol=ProtocolConfig.from_dict(protocol),
                train=LocalTrainConfig(**train),
            )
        except TypeError as exc:
            raise ConfigurationError(f"bad configuration: {exc}") from None
        except ConfigurationError as exc:
            if runner is None or "'fedavg'" not in str(exc):
                raise
            # name the mode the user chose, not the stand-in
            raise ConfigurationError(str(exc).replace("'fedavg'", repr(runner))) from None

    @classmethod
    def from_choices(cls, chosen: dict[str, Any]) -> ExperimentConfig:
        """From the options a user chose (flat ``section.name`` keys); an option that does
        not apply to the others (``alpha`` with the iid partition, ...) is refused."""
        check_applicable(chosen)
        return cls.from_dict(nest(chosen))


def _fields(section: Any, name: str) -> dict[str, Any]:
    """A config section with option names (and deprecated ones: ``dp_delta``) as the
    dataclass's field names (``delta`` -> ``ProtocolConfig.dp_delta``)."""
    if not isinstance(section, dict):
        raise ConfigurationError(f"[{name}] must be a table of options")
    return config_fields(section, name)


def flatten(data: Any, source: str) -> dict[str, Any]:
    """A nested TOML dict -> flat ``section.name`` keys, refusing unknown keys and
    non-table sections with a message naming ``source`` (the file) and the key."""
    known = {o.key for o in OPTIONS}  # what messages suggest: no deprecated names
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {source}: must be a TOML table of options")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigurationError(
                    f"config file {source}: `{key}` must be a table (a [{key}] section of "
                    f"options), got {type(value).__name__} {value!r}"
                )
            for name, inner in value.items():
                flat[f"{key}.{name}"] = inner
        elif isinstance(value, dict):
            raise ConfigurationError(
                f"config file {source}: unknown section [{key}]; sections are "
                f"{', '.join(f'[{s}]' for s in _SECTIONS)}{did_you_mean(key, _SECTIONS)}"
            )
        else:
            flat[key] = value
    unknown = sorted(set(flat) - known_keys())
    if unknown:
        names = ", ".join(_where(k) + _closest(k, known) for k in unknown)
        raise ConfigurationError(
            f"config file {source}: unknown option(s) {names}; see docs/reference/options.md "
            f"for the keys (known in this section: {_known_like(unknown[0], known)})"
        )
    for key, value in flat.items():
        _check_type(key, value, source)
    try:
        canonical(flat)  # an option under its name and a deprecated one
    except ConfigurationError as exc:
        raise ConfigurationError(f"config file {source}: {exc}") from None
    return flat


#: what a TOML value of an option of each type must be (a float option takes an integer)
_TOML_TYPES: dict[type, tuple[str, tuple[type, ...]]] = {
    bool: ("true or false", (bool,)),
    int: ("an integer", (int,)),
    float: ("a number", (int, float)),
    str: ("a string", (str,)),
}
_TOML_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}


def _check_type(key: str, value: Any, source: str) -> None:
    """Strict TOML types: ``rounds = 2.0`` or ``participants = true`` is refused, naming the
    key and the type it takes (a boolean is not an integer here, as it is in Python)."""
    spec = option(key)
    want = spec.type
    if want not in _TOML_TYPES:
        return
    what, allowed = _TOML_TYPES[want]
    if type(value) in allowed:
        return
    got = _TOML_NAMES.get(type(value), type(value).__name__)
    shown = _toml_value(value) if type(value) in _TOML_TYPES else repr(value)
    raise ConfigurationError(
        f"config file {source}: {_where(key)} ({spec.flag}) must be {what}, got {got} {shown}"
    )


def _where(key: str) -> str:
    section, _, name = key.rpartition(".")
    return f"{name!r} in [{section}]" if section else f"{name!r} at the top level"


def _closest(key: str, known: set[str]) -> str:
    """What a mistyped key most likely meant: the same name in another section (``rounds``
    at the top level belongs in [protocol]), else a close name in its own section, else a
    close name in any section."""
    section, _, name = key.rpartition(".")
    elsewhere = sorted(k for k in known if k.rpartition(".")[2] == name)
    if elsewhere:
        where = elsewhere[0].rpartition(".")[0]
        return f" (it belongs in [{where}])" if where else " (it belongs at the top level)"
    here = did_you_mean(
        name, [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == section]
    )
    if here:
        return here
    anywhere = did_you_mean(name, [k.rpartition(".")[2] for k in known])
    if not anywhere:
        return ""
    meant = anywhere.split("'")[1]
    where = sorted(k for k in known if k.rpartition(".")[2] == meant)[0].rpartition(".")[0]
    return f" (did you mean {meant!r} in [{where}]?)" if where else anywhere


def _known_like(key: str, known: set[str]) -> str:
    section = key.rpartition(".")[0]
    names = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == section)
    return ", ".join(names)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat ``section.name`` keys -> the nested dict of ``config.toml``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        section, _, name = key.rpartition(".")
        target = out.setdefault(section, {}) if section else out
        target[name] = value
    return out


def choices_hash(chosen: dict[str, Any]) -> str:
    """SHA-256 of the chosen options, to tie a checkpoint to its configuration."""
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigurationError(
            f"config file {path} does not exist; give the path of a .toml file"
        ) from None
    except IsADirectoryError:
        raise ConfigurationError(
            f"config file {path} is a directory; give a .toml file (a run directory holds "
            f"one: {Path(path) / 'config.toml'})"
        ) from None
    except PermissionError:
        raise ConfigurationError(f"config file {path} cannot be read: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"config file {path} is not UTF-8 text TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigurationError(f"config file {path} cannot be read: {exc.strerror}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise ConfigurationError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: dict[str, Any]) -> str:
    """Write a dict of scalars and one level of tables; ``None`` values are left out."""
    lines = [
        f"{k} = {_toml_value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict) and v is not None
    ]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"
