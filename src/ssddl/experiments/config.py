"""The configuration of one experiment run, read from TOML and command-line options.

A run's resolved configuration is written back as ``config.toml`` in its run directory and can
be passed again with ``--config`` to repeat the run.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssddl.exceptions import ConfigurationError
from ssddl.learning.data import DATASETS
from ssddl.learning.models import MODELS
from ssddl.learning.partition import PARTITIONS
from ssddl.learning.train import LocalTrainConfig
from ssddl.protocol.config import ProtocolConfig, check_known_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ExperimentConfig", "dump_toml", "load_toml"]

#: The embedded default (digits, 10 participants, prg) reaches test accuracy >= 0.95 with these.
DEFAULT_ROUNDS = 40
DEFAULT_EPOCHS = 5


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
    protocol: ProtocolConfig = field(default_factory=lambda: ProtocolConfig(rounds=DEFAULT_ROUNDS))
    train: LocalTrainConfig = field(default_factory=lambda: LocalTrainConfig(epochs=DEFAULT_EPOCHS))

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigurationError(
                f"dataset={self.dataset!r} is not one of {', '.join(DATASETS)}"
            )
        if self.partition not in PARTITIONS:
            raise ConfigurationError(
                f"partition={self.partition!r} is not one of {', '.join(PARTITIONS)}"
            )
        if self.model not in MODELS:
            raise ConfigurationError(f"model={self.model!r} is not one of {', '.join(MODELS)}")
        for name in ("participants", "shards_per_participant"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name}={value!r} must be an integer >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigurationError(f"seed={self.seed!r} must be an integer >= 0")
        if (
            not isinstance(self.alpha, (int, float))
            or not math.isfinite(self.alpha)
            or self.alpha <= 0
        ):
            raise ConfigurationError(f"alpha={self.alpha!r} must be a number > 0")
        if self.dataset in ("mnist", "fashion-mnist") and self.data_dir is None:
            raise ConfigurationError(
                f"dataset={self.dataset!r} reads IDX files: give data_dir (--data-dir DIR), "
                f"and download=true (--download) to fetch them when online"
            )
        # fail before any data is loaded (max_samples, if unset, is fixed from the data later)
        self.protocol.resolve(self.participants, max_samples=1)

    # -- dict / TOML -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("protocol", "train"):
                continue
            out[f.name] = getattr(self, f.name)
        out["protocol"] = self.protocol.to_dict()
        out["train"] = dataclasses.asdict(self.train)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        check_known_options(data, cls, "experiment")
        data = dict(data)
        protocol = data.pop("protocol", {})
        train = data.pop("train", {})
        check_known_options(train, LocalTrainConfig, "train")
        try:
            return cls(
                **data,
                protocol=ProtocolConfig.from_dict(protocol),
                train=LocalTrainConfig(**train),
            )
        except TypeError as exc:
            raise ConfigurationError(f"bad configuration: {exc}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None


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
