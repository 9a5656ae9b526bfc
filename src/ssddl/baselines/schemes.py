"""Baselines that fit the protocol's scheme slot, registered as sharing modes.

A baseline fits the slot when it is "a participant contribution + server aggregation over
messages": the protocol's Init, SelectGroup, LocalTrain, RoundStart/RoundEnd and byte
accounting are reused, and only ParaShare/ParaUpdate change.

* ``fedavg`` — plain federated averaging: the clipped change goes up in float32, the server
  takes the (sample-weighted) mean. The same messages as mode ``plain``, under its own name.
* ``fedsgd`` — FedSGD: the same messages, and local training is one full-batch gradient step
  (:func:`fedsgd_train_config` makes that training config; the experiment layer applies it).
* ``dssgd-parallel`` — a *parallel variant* of DSSGD (Shokri & Shmatikov 2015), not the
  paper's algorithm: all members train at once from the same global model, each uploads the
  ``round(θu·M)`` largest-magnitude entries of its change with their indices
  (:class:`~ssddl.protocol.messages.SparseUpload`, 8 bytes per entry), optionally clipped to
  ``[-γ, γ]`` and noised with ``Lap(0, b)``; the server adds the sparse changes and applies
  the session's update rule (by default the sample-weighted mean, so each member's selected
  entries count about 1/n). Other θ values are registered on demand by :func:`dssgd_mode`,
  under a name that spells them out (``dssgd-parallel-u0p01-d1p0``), so the published
  session config names them. The paper's algorithm (round robin, local models kept between
  turns, θd < 1 possible) is ``dssgd-rr`` in :mod:`ssddl.baselines.runners`. ``dssgd`` is the
  variant's former name, kept registered as a deprecated alias (recorded transcripts name it).

This module imports neither torch nor the runtime: the option table lists these modes
without loading torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage, NonFiniteError
from ssddl.protocol.config import SessionParams
from ssddl.protocol.messages import Kind, Message, MessageKind, PlainUpload, SparseUpload
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes import get_scheme, register_scheme, scheme_names
from ssddl.protocol.schemes._common import Guarantee
from ssddl.protocol.schemes.base import Scheme, ServerCheck, ServerCloser
from ssddl.protocol.schemes.plain import (
    ONE_UPLOAD_PARTICIPANT_TABLE,
    PlainScheme,
    one_upload_server_table,
)
from ssddl.protocol.stages import (
    BaseServerStage,
    ParticipantStage,
    ParticipantTable,
    ServerStage,
    ServerTable,
    Variant,
)

if TYPE_CHECKING:
    from ssddl.baselines.dssgd import DSSGDConfig
    from ssddl.learning.data import ArrayDataset
    from ssddl.learning.train import LocalTrainConfig

__all__ = [
    "BASELINE_SCHEMES",
    "DSSGD_ALIAS",
    "DSSGD_PARALLEL",
    "RUNNER_MODES",
    "DSSGDScheme",
    "FedAvgScheme",
    "FedSGDScheme",
    "dssgd_mode",
    "fedsgd_train_config",
    "register_baseline_schemes",
    "runner_guarantee",
]

K = MessageKind
P = ParticipantStage
S = ServerStage

#: the names of the baseline schemes registered at import (parameterized DSSGD modes aside)
BASELINE_SCHEMES = ("fedavg", "fedsgd", "dssgd-parallel", "dssgd")
#: the parallel variant's former mode name, a deprecated alias of ``dssgd-parallel``
DSSGD_ALIAS = "dssgd"
DSSGD_PARALLEL = "dssgd-parallel"
#: the baselines that run outside the protocol (:mod:`ssddl.baselines.runners`)
RUNNER_MODES = ("centralized", "standalone", "phong-paillier", "phong-bfv", "dssgd-rr")


def runner_guarantee(mode: str, participants: int) -> Guarantee:
    """What a runner mode protects, in the terms of :class:`Guarantee`."""
    n = participants
    if mode == "centralized":
        return Guarantee(0, 0, 0, "none: all the data sit in one place")
    if mode == "standalone":
        return Guarantee(n, n, 0, "everything: nothing is shared (and nothing is learned jointly)")
    if mode in ("phong-paillier", "phong-bfv"):
        return Guarantee(
            0,
            n - 1,
            1,
            "the server alone sees ciphertexts only; colluding with any one participant it "
            "holds the shared secret key and decrypts every member's update",
        )
    if mode == "dssgd-rr":
        return Guarantee(
            0, n - 1, n, "none: the server sees each selected change in the clear, in turn"
        )
    raise ConfigurationError(f"mode={mode!r} is not one of {', '.join(RUNNER_MODES)}")


class FedAvgScheme(PlainScheme):
    """FedAvg: the clipped change in float32, averaged by the server (mode ``plain``'s
    messages and checks)."""

    name = "fedavg"

    def guarantee(self, params: SessionParams) -> Guarantee:
        return Guarantee(
            0,
            params.group_size - params.min_group_size,
            1,
            "none: the server sees every member's change in the clear (FedAvg)",
        )


class FedSGDScheme(FedAvgScheme):
    """FedSGD: FedAvg's messages after one full-batch gradient step per member."""

    name = "fedsgd"

    def guarantee(self, params: SessionParams) -> Guarantee:
        return Guarantee(
            0,
            params.group_size - params.min_group_size,
            1,
            "none: the server sees every member's full-batch gradient step in the clear (FedSGD)",
        )


def fedsgd_train_config(
    train: LocalTrainConfig, datasets: Sequence[ArrayDataset]
) -> LocalTrainConfig:
    """FedSGD's local training: one step over a member's whole dataset (batch = the largest
    local dataset), with ``train``'s optimizer and learning rate."""
    largest = max(len(d) for d in datasets)
    return dataclasses.replace(train, epochs=1, steps=1, batch_size=largest)


def _mode_word(value: float) -> str:
    return repr(float(value)).replace(".", "p").replace("+", "")


def _dssgd_name(config: DSSGDConfig) -> str:
    from ssddl.baselines.dssgd import DSSGDConfig

    if config == DSSGDConfig():
        return DSSGD_PARALLEL
    name = f"{DSSGD_PARALLEL}-u{_mode_word(config.theta_u)}-d{_mode_word(config.theta_d)}"
    if config.gamma is not None:
        name += f"-g{_mode_word(config.gamma)}"
    if config.laplace_scale is not None:
        name += f"-l{_mode_word(config.laplace_scale)}"
    return name


class DSSGDScheme(Scheme):
    """The parallel variant of DSSGD's selective sparse upload in the scheme slot (every
    member at once, download θd = 1); the paper's round robin is the ``dssgd-rr`` runner."""

    secure = False
    needs_keys = False

    def __init__(self, config: DSSGDConfig | None = None, name: str = DSSGD_PARALLEL) -> None:
        # config None: the defaults, built on first use (the registry loads without torch)
        self._config = config
        self.name = name  # type: ignore[misc]
        #: the mode this scheme is a variant of: a θ registered on demand is not a mode of its own
        self.variant_of = None if name == DSSGD_PARALLEL else DSSGD_PARALLEL
        if config is not None and config.theta_d != 1.0:
            raise ConfigurationError(
                f"theta_d={config.theta_d}: in the protocol every member downloads the whole "
                f"model, so mode dssgd-parallel needs theta_d = 1; use mode dssgd-rr (the "
                f"paper's round robin with local models) for theta_d < 1"
            )

    @property
    def config(self) -> DSSGDConfig:
        if self._config is None:
            from ssddl.baselines.dssgd import DSSGDConfig

            self._config = DSSGDConfig()
        return self._config

    def guarantee(self, params: SessionParams) -> Guarantee:
        return Guarantee(
            0,
            params.group_size - params.min_group_size,
            1,
            f"none: the server sees the {self.config.theta_u:g} fraction of each member's "
            f"change it selected, in the clear, with the indices (DSSGD, parallel variant)",
        )

    def participant_table(self, variant: Variant) -> ParticipantTable:
        return ONE_UPLOAD_PARTICIPANT_TABLE

    def server_table(self, variant: Variant) -> ServerTable:
        return one_upload_server_table(K.SPARSE_UPLOAD)

    def contribute(self, participant: MemberRole, delta: np.ndarray, count: int) -> list[Message]:
        from ssddl.baselines.dssgd import select_upload

        clip = participant.params.clip
        clipped = np.clip(delta, -clip, clip)
        noise = None
        if self.config.laplace_scale:
            # DP noise (not key material) from a generator seeded by the member's CSPRNG
            seed = int.from_bytes(participant.random.random_bytes(32), "little")
            noise = np.random.default_rng(seed)
        sparse = select_upload(clipped, self.config, rng=noise)
        return [
            SparseUpload(
                participant.session_id,
                participant.round,
                participant.id,
                count,
                sparse.indices.astype(np.uint32),
                sparse.values.astype(np.float32),
            )
        ]

    def server_checks(self) -> Mapping[Kind, ServerCheck]:
        return {K.SPARSE_UPLOAD: self._check}

    def server_closers(self) -> Mapping[BaseServerStage, ServerCloser]:
        return {S.COLLECTING_UPLOADS: _close_sparse}

    def _check(self, server: ServerRole, msg: SparseUpload) -> None:
        from ssddl.baselines.dssgd import selection_count

        expected = selection_count(self.config.theta_u, server.model_size)
        if msg.indices.size != expected:
            raise MalformedMessage(
                f"upload from participant {msg.sender} has {msg.indices.size} entries; "
                f"theta_u={self.config.theta_u} selects {expected}"
            )
        if msg.indices.size and int(msg.indices[-1]) >= server.model_size:
            raise MalformedMessage(f"upload from participant {msg.sender}: index out of range")
        if not np.isfinite(msg.values).all():
            raise NonFiniteError(f"upload from participant {msg.sender} is not finite")
        limit = server.config.max_samples if server.config.weighted else None
        if msg.num_samples < 1 or (limit is not None and msg.num_samples > limit):
            raise MalformedMessage(f"upload from participant {msg.sender}: bad num_samples")


def _close_sparse(server: ServerRole) -> list[Envelope]:
    uploads = server.received(SparseUpload)
    if len(uploads) < server.config.min_group_size:
        return server.abort(
            f"{len(uploads)} uploads; min_group_size={server.config.min_group_size}"
        )
    dense: dict[int, PlainUpload] = {}
    for sender, msg in uploads.items():
        delta = np.zeros(server.model_size, dtype=np.float32)
        delta[msg.indices] = msg.values
        # the server's own dense view of the sparse change (never sent)
        dense[sender] = PlainUpload(server.session_id, server.round, sender, msg.num_samples, delta)
    return server.apply_plain(dense)


def dssgd_mode(config: DSSGDConfig | None = None) -> str:
    """The mode name of DSSGD with ``config`` (θu, θd = 1, γ, Laplace scale), registered on
    first use: ``ProtocolConfig(mode=dssgd_mode(DSSGDConfig(theta_u=0.01)))``."""
    from ssddl.baselines.dssgd import DSSGDConfig

    config = DSSGDConfig() if config is None else config
    if not isinstance(config, DSSGDConfig):
        raise ConfigurationError(f"config must be a DSSGDConfig, got {type(config).__name__}")
    name = _dssgd_name(config)
    if name in scheme_names():
        existing = get_scheme(name)
        if isinstance(existing, DSSGDScheme) and existing.config == config:
            return name
    register_scheme(DSSGDScheme(config, name))
    return name


_REGISTERED: list[Any] = []


def register_baseline_schemes() -> None:
    """Register ``fedavg``, ``fedsgd``, ``dssgd-parallel`` and its deprecated alias ``dssgd``
    (idempotent; done on import)."""
    if _REGISTERED:
        return
    _REGISTERED.append(register_scheme(FedAvgScheme()))
    _REGISTERED.append(register_scheme(FedSGDScheme()))
    _REGISTERED.append(register_scheme(DSSGDScheme()))
    _REGISTERED.append(register_scheme(DSSGDScheme(name=DSSGD_ALIAS)))


register_baseline_schemes()
