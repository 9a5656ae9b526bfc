"""The ClientApp side of SSDDL on Flower: a participant that lives in ``context.state``.

A node's participant is its persisted state bytes plus the protocol's own handlers
(:class:`~ssddl.protocol.participant.Participant`): every message rebuilds it from
``context.state``, hands it the frames, and saves it again — the deployment engine runs every
message in a fresh ClientApp process. What the participant trusts comes from the node itself,
never from the server: its identity key, the roster and its :class:`ParticipantPolicy` are
read by a *settings loader* (default :func:`node_settings`: the node's ``--node-config``).

LocalTrain is the ClientApp's own training:

* :class:`SSDDLClient` ``(train=fn)``: ``fn(weights, round, participant, context) ->
  LocalUpdate`` (the flat float32 global weights in, the change and the sample count out;
  ``participant`` is the node's protocol id; a ``fn`` with a ``config`` parameter also gets
  the strategy's train config as a dict); register ``client.query`` with
  ``@app.query("ssddl")``;
* :func:`ssddl_mod` ``(template=...)``: a Flower ``Mod`` for a Message-API
  ``ClientApp(mods=[...])`` whose ``@app.train()`` function trains. Flower routes by message
  type before any mod runs, so the ServerApp sends the protocol as ``train`` messages
  (``WorkflowConfig(message_type="train")``, as SecAgg+ sends its stages): the mod answers
  every ``train`` message that carries ssddl frames or the discovery challenge and, when the
  participant trains, calls ``call_next`` with a ``train`` message holding the global model
  as an ``ArrayRecord`` (laid out like ``template(context)``) and a ``ConfigRecord`` with
  the strategy's train config and ``server-round``; the reply's ``ArrayRecord`` and its
  ``MetricRecord["num-examples"]`` are the update (Flower's own conventions).
* :func:`ssddl_mod` ``(template=..., legacy=True)``: the same for a legacy
  ``ClientApp(client_fn=..., mods=[...])`` (a ``NumPyClient``): the ``train`` message is a
  legacy ``FitIns`` and the reply a ``FitRes`` — the way ``secaggplus_mod`` is added.

The strategy's train config (:data:`~ssddl.runtime.flower._records.TRAIN_CONFIG`, sent with
a node's first message of a round) is a hint for local training, exactly as in FedAvg: it
comes from the ServerApp, so it never touches the protocol or the node's policy.

A message whose content holds the ConfigRecord ``"ssddl.hello"`` is the workflow's
discovery: the node answers with the protocol id its identity key has in its roster and its
signature, by that key, over the server's fresh challenge, the run and the node
(:mod:`~ssddl.runtime.flower.membership`), so the server maps a Flower node to a protocol id
only when the node proved it holds that id's key.

The participant's state is kept in ``context.state`` sealed under a key derived from the
node's identity key (:mod:`~ssddl.runtime.flower.sealed`).
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssddl.exceptions import ConfigurationError, MalformedMessage, SSDDLError
from ssddl.hazmat.keys import IdentityKey
from ssddl.protocol.config import Recovery
from ssddl.protocol.localtrain import LocalUpdate
from ssddl.protocol.participant import Participant
from ssddl.protocol.policy import DEFAULT_MAX_ROUND, ParticipantPolicy, secure_modes
from ssddl.runtime.flower._records import HELLO, TRAIN_CONFIG, carries_ssddl
from ssddl.runtime.flower.client import answer
from ssddl.runtime.flower.membership import CHALLENGE_SIZE, prove
from ssddl.runtime.flower.sealed import open_state, seal_state
from ssddl.runtime.hosts import LiveHost
from ssddl.runtime.keyfiles import identity_file, load_identity, load_roster, participant_id
from ssddl.runtime.seeds import rounding_rng

__all__ = [
    "HELLO",
    "NodeSettings",
    "SSDDLClient",
    "TrainFn",
    "arrays_to_vector",
    "node_settings",
    "policy_from_config",
    "simulation_settings",
    "ssddl_mod",
    "vector_to_arrays",
]

#: The node's log: a child of Flower's logger (the SuperNode's output shows it).
_log = logging.getLogger("flwr.ssddl.node")


#: LocalTrain of a ClientApp: (flat global weights, round, protocol id, context) -> update
TrainFn = Callable[[np.ndarray, int, int, Any], LocalUpdate]


def _takes_config(train: Callable[..., Any]) -> bool:
    """Whether a LocalTrain function declares a ``config`` parameter."""
    try:
        return "config" in inspect.signature(train).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False


def train_config_of(message: Any) -> dict[str, Any]:
    """The strategy's train config a message carries (empty when it has none)."""
    record = message.content.config_records.get(TRAIN_CONFIG)
    return dict(record) if record is not None else {}


@dataclass(frozen=True)
class NodeSettings:
    """What a node trusts, from its own configuration and files."""

    identity: IdentityKey = field(repr=False)
    roster: Mapping[int, bytes] = field(repr=False)
    policy: ParticipantPolicy
    #: public seed of the stochastic-rounding generator (None: fresh OS randomness)
    seed: int | None = None

    @property
    def participant(self) -> int:
        return participant_id(self.identity, dict(self.roster))


def _names(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"node config {key} must be a comma-separated list of names")
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _int(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"node config {key} must be an integer, got {value!r}")
    return value


def _epsilon(config: Mapping[str, Any]) -> float | None:
    value = config.get("ssddl-max-epsilon")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(
            f"node config ssddl-max-epsilon must be a positive number (e.g. 8.0), got {value!r}"
        )
    return float(value)


def policy_from_config(config: Mapping[str, Any]) -> ParticipantPolicy:
    """A :class:`ParticipantPolicy` from node-config keys (each optional):
    ``ssddl-modes`` ("prg,shamir"), ``ssddl-max-colluders`` (the coalition the node must
    survive; 0 unless set), ``ssddl-min-threshold``, ``ssddl-min-group-size``,
    ``ssddl-max-round``, ``ssddl-recoveries`` ("double-mask,none"),
    ``ssddl-require-consistency`` (true/false) and ``ssddl-max-epsilon`` (distributed DP: the
    node refuses a session whose announced noise gives it a larger ε, or that has no DP;
    unset: no requirement)."""
    defaults = ParticipantPolicy()
    modes = _names(config.get("ssddl-modes", ",".join(secure_modes())), "ssddl-modes")
    recoveries = _names(
        config.get("ssddl-recoveries", ",".join(r.value for r in defaults.recoveries)),
        "ssddl-recoveries",
    )
    consistency = config.get("ssddl-require-consistency", False)
    if not isinstance(consistency, bool):
        raise ConfigurationError("node config ssddl-require-consistency must be true or false")
    try:
        parsed = tuple(Recovery(r) for r in recoveries)
    except ValueError:
        raise ConfigurationError(
            f"node config ssddl-recoveries {recoveries!r}: use names from "
            f"{', '.join(r.value for r in Recovery)}"
        ) from None
    return ParticipantPolicy(
        modes=modes,
        max_colluders=_int(config, "ssddl-max-colluders", defaults.max_colluders),
        min_threshold=_int(config, "ssddl-min-threshold", defaults.min_threshold),
        min_group_size=_int(config, "ssddl-min-group-size", defaults.min_group_size),
        max_round=_int(config, "ssddl-max-round", DEFAULT_MAX_ROUND),
        recoveries=parsed,
        require_consistency=consistency,
        max_epsilon=_epsilon(config),
    )


def simulation_settings(context: Any) -> NodeSettings:
    """Settings for Flower's simulation engine, where every virtual node is on this machine
    and has only ``partition-id`` in its node config: the key of partition ``k`` is
    ``participant-<k+1>.key`` in the run config's ``ssddl-keys-dir`` (with its
    ``roster.json``); the policy keys and ``seed`` come from the run config. Use
    :func:`node_settings` for real nodes."""
    run = context.run_config
    directory = run.get("ssddl-keys-dir")
    part = context.node_config.get("partition-id")
    if not isinstance(directory, str) or not directory or not isinstance(part, int):
        raise ConfigurationError(
            "simulation_settings needs run config ssddl-keys-dir and node config partition-id"
        )
    seed = run.get("seed")
    return NodeSettings(
        identity=load_identity(identity_file(Path(directory), part + 1)),
        roster=load_roster(Path(directory) / "roster.json"),
        policy=policy_from_config(run),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def node_settings(context: Any) -> NodeSettings:
    """The default settings loader: the node's own ``--node-config``, with
    ``ssddl-identity-key`` (path of its ``participant-<id>.key``), ``ssddl-roster`` (path of
    ``roster.json``), the policy keys of :func:`policy_from_config` and ``ssddl-seed``."""
    config = context.node_config
    for key in ("ssddl-identity-key", "ssddl-roster"):
        if not isinstance(config.get(key), str):
            raise ConfigurationError(
                f"node config {key} is missing: start the SuperNode with --node-config "
                f"\"{key}='<path>'\" (files from 'ssddl keys gen')"
            )
    seed = config.get("ssddl-seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigurationError("node config ssddl-seed must be a non-negative integer")
    return NodeSettings(
        identity=load_identity(config["ssddl-identity-key"]),
        roster=load_roster(config["ssddl-roster"]),
        policy=policy_from_config(config),
        seed=seed,
    )


# -- persisted state: the participant's bytes and its public rounding generator ------------

_LENGTH = struct.Struct(">I")


def _pack(participant: bytes, rounding: str) -> bytes:
    return _LENGTH.pack(len(participant)) + participant + rounding.encode()


def _unpack(state: bytes) -> tuple[bytes, str]:
    if len(state) < _LENGTH.size:
        raise MalformedMessage("the persisted ssddl state is truncated")
    (size,) = _LENGTH.unpack_from(state)
    if len(state) < _LENGTH.size + size:
        raise MalformedMessage("the persisted ssddl state is truncated")
    try:
        return state[4 : 4 + size], state[4 + size :].decode()
    except UnicodeDecodeError:
        raise MalformedMessage("the persisted rounding state is not text") from None


def _participant(
    settings: NodeSettings,
    saved: bytes,
    trainer: Callable[[np.ndarray, int], LocalUpdate],
    rng: np.random.Generator | None,
) -> Participant:
    """The node's participant: rebuilt from its saved state, or new before the first one."""
    if not saved:
        return Participant(
            settings.participant,
            settings.identity,
            settings.roster,
            trainer,
            rounding_rng=rng,
            policy=settings.policy,
        )
    participant = Participant.restore(
        saved, settings.identity, settings.roster, trainer, rounding_rng=rng,
        policy=settings.policy,
    )  # fmt: skip
    if participant.id != settings.participant:
        raise ConfigurationError("the saved state belongs to another participant")
    return participant


class SSDDLClient:
    """A node's participant: a ``FrameHandler`` plus the discovery answer.

    ``train`` is LocalTrain (see :data:`TrainFn`); ``settings`` loads what the node trusts
    from its own config (default :func:`node_settings`).
    """

    def __init__(
        self,
        train: TrainFn | None = None,
        *,
        settings: Callable[[Any], NodeSettings] = node_settings,
    ) -> None:
        if train is not None and not callable(train):
            raise ConfigurationError("train must be a callable (weights, round, context)")
        if not callable(settings):
            raise ConfigurationError("settings must be a callable (context) -> NodeSettings")
        self._train = train
        self._settings = settings

    def handle(
        self,
        state: bytes | None,
        frames: list[bytes],
        context: Any,
        train: TrainFn | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> tuple[bytes, list[bytes]]:
        """The ``FrameHandler``: rebuild the participant, handle ``frames`` in order, save.
        ``config`` is the strategy's train config for this round (passed to a ``train``
        that takes ``config``)."""
        settings = self._settings(context)
        pid = settings.participant
        train = train if train is not None else self._train
        if train is None:
            raise ConfigurationError("no LocalTrain: pass train= or use ssddl_mod")
        local = train
        if _takes_config(train):
            given = dict(config or {})

            def local(weights: np.ndarray, round_number: int, p: int, ctx: Any) -> LocalUpdate:
                return train(weights, round_number, p, ctx, config=given)  # type: ignore[call-arg]

        rng = rounding_rng(settings.seed, pid) if settings.seed is not None else None
        run_id, node_id = int(context.run_id), int(context.node_id)
        plain = (
            open_state(settings.identity, state, run_id=run_id, node_id=node_id, participant=pid)
            if state is not None
            else None
        )
        saved, rounding = _unpack(plain) if plain is not None else (b"", "")
        if rng is not None and rounding:
            try:
                rng.bit_generator.state = json.loads(rounding)
            except (ValueError, TypeError, KeyError):
                raise MalformedMessage("the persisted rounding state is invalid") from None

        def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
            return local(weights, round_number, pid, context)

        participant = _participant(settings, saved, trainer, rng)
        host = LiveHost(participant)  # for this message's frames; the state is kept sealed
        replies: list[bytes] = []
        for frame in frames:
            replies += host.handle(frame)
        kept = json.dumps(rng.bit_generator.state) if rng is not None else ""
        packed = _pack(participant.to_bytes(), kept)
        sealed = seal_state(
            settings.identity, packed, run_id=run_id, node_id=node_id, participant=pid
        )
        return sealed, replies

    def hello(self, message: Any, context: Any) -> Any:
        """Answer discovery: this node's protocol id and its proof of holding that id's key
        (a signature over the server's fresh challenge, this run and this node:
        :mod:`~ssddl.runtime.flower.membership`)."""
        from flwr.app import ConfigRecord, Error, Message, RecordDict

        try:
            settings = self._settings(context)
            pid = settings.participant
            challenge = message.content.config_records[HELLO].get("challenge")
            if not isinstance(challenge, bytes) or len(challenge) != CHALLENGE_SIZE:
                raise MalformedMessage(
                    f"the discovery message carries no {CHALLENGE_SIZE}-byte challenge: the "
                    "ServerApp runs an older ssddl; update it"
                )
            run_id, node_id = int(context.run_id), int(message.metadata.dst_node_id)
            signature = prove(settings.identity, challenge, run_id, node_id, pid)
        except Exception as exc:  # the reason names the node's own config problem only
            reason = (
                f"{type(exc).__name__}: {exc}"
                if isinstance(exc, SSDDLError)
                else (f"internal error ({type(exc).__name__})")
            )
            _log.warning("refused discovery: %s", reason)
            return Message(Error(code=100, reason=reason), reply_to=message)
        public = settings.identity.public_bytes
        record = ConfigRecord({"participant": pid, "public-key": public, "signature": signature})
        return Message(RecordDict({HELLO: record}), reply_to=message)

    def answer(self, message: Any, context: Any, train: TrainFn | None = None) -> Any:
        if HELLO in message.content.config_records:
            return self.hello(message, context)

        config = train_config_of(message)

        def handler(
            state: bytes | None, frames: list[bytes], ctx: Any
        ) -> tuple[bytes, list[bytes]]:
            return self.handle(state, frames, ctx, train, config)

        return answer(message, context, handler)

    def query(self, message: Any, context: Any) -> Any:
        """Register with ``@app.query("ssddl")``."""
        return self.answer(message, context)


# -- the Mod form: LocalTrain through the ClientApp's own train function --------------------


def _flat(arrays: Iterable[Any]) -> np.ndarray:
    parts = [np.asarray(a, dtype=np.float32).ravel() for a in arrays]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def arrays_to_vector(arrays: Any) -> np.ndarray:
    """A Flower ``ArrayRecord`` as one flat float32 vector (its arrays in key order)."""
    return _flat(arrays.to_numpy_ndarrays())


def vector_to_arrays(vector: np.ndarray, template: Any) -> Any:
    """A flat vector as an ``ArrayRecord`` with the keys and shapes of ``template``."""
    from flwr.app import Array, ArrayRecord

    out = ArrayRecord()
    offset = 0
    # shapes from the arrays themselves: a legacy ``Parameters`` record has no shape field
    for key, array in zip(template.keys(), template.to_numpy_ndarrays(), strict=True):
        shape = tuple(array.shape)
        size = int(np.prod(shape)) if shape else 1
        if offset + size > vector.size:
            raise ConfigurationError("the model vector is shorter than the template's arrays")
        out[key] = Array(np.asarray(vector[offset : offset + size], np.float32).reshape(shape))
        offset += size
    if offset != vector.size:
        raise ConfigurationError(
            f"the model vector has {vector.size} entries, the template {offset}: the "
            "ClientApp's template must be the model the ServerApp started from"
        )
    return out


def call_next_trainer(
    message: Any,
    call_next: Callable[[Any, Any], Any],
    template: Callable[[Any], Any],
    *,
    legacy: bool = False,
) -> Callable[..., LocalUpdate]:
    """LocalTrain that asks the rest of the ClientApp to train (a ``train`` message): a
    Message-API one (``ArrayRecord`` + ``ConfigRecord``) or, with ``legacy``, a ``FitIns``."""
    from flwr.app import Message

    def train(
        weights: np.ndarray,
        round_number: int,
        participant: int,
        context: Any,
        config: Mapping[str, Any] | None = None,
    ) -> LocalUpdate:
        settings = {**dict(config or {}), "server-round": round_number + 1}
        arrays = vector_to_arrays(weights, template(context))
        content = _legacy_fit(arrays, settings) if legacy else _train_content(arrays, settings)
        metadata = copy.copy(message.metadata)
        metadata.message_type = "train"
        train_message: Any = Message(content, metadata=metadata)  # type: ignore[call-overload]
        reply = call_next(train_message, context)
        if reply.has_error():
            raise ConfigurationError(f"the ClientApp's train function failed: {reply.error.reason}")
        vector, count, loss = _legacy_result(reply) if legacy else _train_result(reply)
        if vector.shape != weights.shape:
            raise ConfigurationError("the trained model has another size than the global one")
        return LocalUpdate(vector - weights, count, loss)

    return train


def _train_content(arrays: Any, settings: dict[str, Any]) -> Any:
    from flwr.app import ConfigRecord, RecordDict

    return RecordDict({"arrays": arrays, "config": ConfigRecord(settings)})


def _train_result(reply: Any) -> tuple[np.ndarray, Any, dict[str, float]]:
    trained = reply.content.array_records
    metrics = reply.content.metric_records
    if not trained or not metrics:
        raise ConfigurationError(
            "the ClientApp's train reply needs an ArrayRecord and a MetricRecord with "
            "'num-examples'"
        )
    record = next(iter(metrics.values()))
    count = record.get("num-examples")
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    loss = {k: float(v) for k, v in record.items() if isinstance(v, (int, float))}
    return arrays_to_vector(next(iter(trained.values()))), count, loss


def _legacy_fit(arrays: Any, settings: dict[str, Any]) -> Any:
    from flwr.common import FitIns, ndarrays_to_parameters
    from flwr.compat.common.recorddict_compat import fitins_to_recorddict

    parameters = ndarrays_to_parameters(arrays.to_numpy_ndarrays())
    return fitins_to_recorddict(FitIns(parameters, settings), keep_input=True)


def _legacy_result(reply: Any) -> tuple[np.ndarray, Any, dict[str, float]]:
    from flwr.common import Code, parameters_to_ndarrays
    from flwr.compat.common.recorddict_compat import recorddict_to_fitres

    try:
        result = recorddict_to_fitres(reply.content, keep_input=False)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"the legacy client's fit reply is not a FitRes ({type(exc).__name__}): use "
            "ssddl_mod(legacy=True) only with ClientApp(client_fn=...)"
        ) from None
    if result.status.code != Code.OK:
        raise ConfigurationError(f"the legacy client's fit failed: {result.status.message}")
    vector = _flat(parameters_to_ndarrays(result.parameters))
    loss = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
    return vector, result.num_examples, loss


def ssddl_mod(
    template: Callable[[Any], Any],
    *,
    settings: Callable[[Any], NodeSettings] = node_settings,
    message_type: str = "query.ssddl",
    legacy: bool = False,
) -> Callable[[Any, Any, Callable[[Any, Any], Any]], Any]:
    """A Flower ``Mod``: answers ``message_type`` messages, and ``train`` messages that carry
    ssddl frames or the discovery challenge, with the node's participant, whose LocalTrain
    is the ClientApp's ``train`` function (through ``call_next``); ``template(context)``
    gives an ``ArrayRecord`` shaped like the model. Every other message passes through. In a
    Message-API ``ClientApp(mods=[ssddl_mod(...)])`` with ``@app.train()``, the ServerApp
    must send ``message_type="train"`` (Flower routes a ``query.ssddl`` message only to an
    ``@app.query("ssddl")`` function). ``legacy=True`` for a ``ClientApp(client_fn=...)``:
    LocalTrain is then the client's ``fit`` (a ``FitIns`` in, a ``FitRes`` out)."""
    if not callable(template):
        raise ConfigurationError("template must be a callable (context) -> ArrayRecord")
    if not isinstance(legacy, bool):
        raise ConfigurationError("legacy must be True or False")
    client = SSDDLClient(settings=settings)

    def mod(message: Any, context: Any, call_next: Callable[[Any, Any], Any]) -> Any:
        kind = message.metadata.message_type
        if kind != message_type and not (kind == "train" and carries_ssddl(message)):
            return call_next(message, context)
        trainer = call_next_trainer(message, call_next, template, legacy=legacy)
        return client.answer(message, context, trainer)

    return mod
