"""The ServerApp side of SSDDL on Flower: Init, rounds and the end through the protocol's
:class:`~ssddl.runtime.exchange.Driver` over :class:`FlowerExchange` — no protocol logic here.

* :class:`SSDDLSession` — one SSDDL session on a Flower ``Grid``: discovery (which Flower node
  holds which roster key), Init, one :meth:`~SSDDLSession.round` at a time, the end.
* :func:`start` — the Message-API loop: like ``Strategy.start`` of
  ``flwr.serverapp.strategy`` (``FedAvg`` and friends), except that training and
  aggregation are SSDDL's: the strategy picks the round's nodes (``configure_train``), SSDDL
  aggregates securely, and the strategy's evaluation (``configure_evaluate`` /
  ``aggregate_evaluate``) and ``evaluate_fn`` run as usual. Returns Flower's ``Result``.
* :class:`SSDDLFitWorkflow` — the same session as the ``fit_workflow`` of Flower's legacy
  ``DefaultWorkflow`` with a ``LegacyContext`` and a legacy strategy's ``configure_fit``.

Every stage has a timeout (:class:`WorkflowConfig`); nothing waits forever.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssddl.exceptions import (
    ConfigurationError,
    GroupTooSmall,
    KeyCompromise,
    MalformedMessage,
    SSDDLError,
)
from ssddl.hazmat.rand import OsRandom, RandomSource
from ssddl.protocol.config import ProtocolConfig
from ssddl.protocol.messages import RoundStatus
from ssddl.protocol.select import SelectionPolicy, UniformSubset
from ssddl.protocol.server import RoundOutcome, Server
from ssddl.protocol.stages import ServerStage
from ssddl.runtime.exchange import Driver
from ssddl.runtime.flower._records import check_message_type
from ssddl.runtime.flower.exchange import FlowerExchange
from ssddl.runtime.flower.membership import CHALLENGE_SIZE, Claim, verify_claim
from ssddl.runtime.flower.mod import HELLO, arrays_to_vector, vector_to_arrays
from ssddl.runtime.flower.report import (
    RoundReport,
    evaluation_line,
    log_refusals,
    one_line,
    write_report,
)
from ssddl.runtime.flower.report import log as _log
from ssddl.runtime.seeds import selection_rng
from ssddl.runtime.session import open_server
from ssddl.validators import check_int

__all__ = [
    "SSDDLFitWorkflow",
    "SSDDLSession",
    "StrategySelection",
    "WorkflowConfig",
    "discover",
    "start",
]


def _seconds(value: Any, name: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")


@dataclass(frozen=True)
class WorkflowConfig:
    """The ServerApp's side of a session: the protocol, the public roster, the timeouts.

    ``stage_timeout``: the longest wait for one protocol phase's replies (a node that has not
    answered by then is a dropout). ``discovery_timeout``: the longest wait for the roster's
    nodes to connect and answer who they are (the session goes on with those that did).
    ``evaluate_timeout``: the strategy's evaluation round trip. ``poll_interval``: how often
    replies are pulled (Flower's HTTP grid pulls every 3 s). ``seed``: the public seed of
    SSDDL's own group selection (used when no strategy picks the nodes).
    """

    protocol: ProtocolConfig
    roster: Mapping[int, bytes] = field(repr=False)
    seed: int = 0
    stage_timeout: float = 120.0
    discovery_timeout: float = 120.0
    evaluate_timeout: float = 120.0
    poll_interval: float | None = 0.5
    message_type: str = "query.ssddl"

    def __post_init__(self) -> None:
        if not isinstance(self.protocol, ProtocolConfig):
            raise ConfigurationError("protocol must be a ProtocolConfig")
        if not isinstance(self.roster, Mapping) or not self.roster:
            raise ConfigurationError("roster must be a non-empty {participant id: public key}")
        check_int(self.seed, "seed", low=0)
        for name in ("stage_timeout", "discovery_timeout", "evaluate_timeout"):
            _seconds(getattr(self, name), name)
        _seconds(self.poll_interval, "poll_interval", allow_none=True)
        try:
            check_message_type(self.message_type)
        except MalformedMessage as exc:
            raise ConfigurationError(str(exc)) from None


class StrategySelection:
    """SelectGroup by a Flower strategy: the group is the registered participants among the
    nodes the strategy sampled for the round (:meth:`choose` before each round)."""

    def __init__(self) -> None:
        self._next: tuple[int, ...] | None = None

    def choose(self, participants: Iterable[int]) -> None:
        self._next = tuple(sorted(set(participants)))

    def select(self, registered: tuple[int, ...], size: int, round_number: int) -> tuple[int, ...]:
        chosen, self._next = self._next, None
        if chosen is None:
            return registered
        return tuple(p for p in registered if p in chosen)

    def state(self) -> str:
        return ""

    def restore(self, state: str) -> None:
        return None


def discover(
    grid: Any,
    roster: Mapping[int, bytes],
    *,
    timeout: float,
    message_type: str = "query.ssddl",
    poll_interval: float = 0.5,
    random: RandomSource | None = None,
) -> dict[int, int]:
    """Which Flower node holds which roster key: ``{protocol id: Flower node id}``.

    Waits (at most ``timeout``) until as many nodes as the roster has are connected, sends
    each a fresh challenge (:mod:`~ssddl.runtime.flower.membership`; 32 bytes from
    ``random``, default the OS CSPRNG) and keeps a node only if it signed its challenge with
    the identity key of the roster id it claims. A node that cannot prove its claim is
    refused and logged, and never removes the id's real holder. Two nodes that both prove
    one key mean that key was copied: :class:`~ssddl.exceptions.KeyCompromise` (the session
    does not start).
    """
    from flwr.app import ConfigRecord, Message, RecordDict

    deadline = time.monotonic() + timeout
    nodes = sorted(grid.get_node_ids())
    while len(nodes) < len(roster) and time.monotonic() < deadline:
        time.sleep(poll_interval)
        nodes = sorted(grid.get_node_ids())
    source = random if random is not None else OsRandom()
    challenges = {node: source.random_bytes(CHALLENGE_SIZE) for node in nodes}
    messages = [
        Message(
            RecordDict({HELLO: ConfigRecord({"v": 2, "challenge": challenges[node]})}),
            node,
            message_type,
        )
        for node in nodes
    ]
    left = max(0.0, deadline - time.monotonic())
    replies = grid.send_and_receive(messages, timeout=max(left, poll_interval)) if nodes else []
    run_id = _run_id(grid, messages)
    asked = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
    proved: dict[int, list[int]] = {}
    known = dict(roster)
    for reply in replies:
        node = _answering_node(reply, asked)
        if node is None:
            continue
        try:
            pid = verify_claim(_claim(reply, node), known, challenges[node], run_id)
        except SSDDLError as exc:
            reason = one_line(f"{type(exc).__name__}: {exc}")  # the claim's id is the node's
            _log.warning("discovery refused node %d: %s", node, reason)
            continue
        proved.setdefault(pid, []).append(node)
    copied = {pid: found for pid, found in proved.items() if len(found) > 1}
    if copied:
        pid, found = min(copied.items())
        message = (
            f"key compromise: Flower nodes {', '.join(map(str, sorted(found)))} both proved "
            f"participant {pid}'s identity key; the session does not start. Give that "
            "participant a new key (ssddl keys gen) and a new roster"
        )
        _log.error("discovery: %s", message)
        raise KeyCompromise(message)
    found_ids = {pid: nodes_of[0] for pid, nodes_of in sorted(proved.items())}
    missing = sorted(set(roster) - set(found_ids))
    _log.info(
        "discovery: %d of %d roster participants proved their keys (%s)%s",
        len(found_ids),
        len(roster),
        ", ".join(f"{pid} = node {node}" for pid, node in found_ids.items()) or "none",
        f"; missing {', '.join(map(str, missing))}" if missing else "",
    )
    return found_ids


def _run_id(grid: Any, messages: list[Any]) -> int:
    """The Flower run the challenges belong to (the grid's run, else the messages')."""
    run = getattr(grid, "run", None)
    run_id = getattr(run, "run_id", None)
    if isinstance(run_id, int):
        return run_id
    return int(messages[0].metadata.run_id) if messages else 0


def _answering_node(reply: Any, asked: Mapping[str, int]) -> int | None:
    """The node a discovery reply answers for (None, logged, for a reply to no challenge,
    one from another node than the one asked, or an error reply)."""
    meta = reply.metadata
    node = asked.get(meta.reply_to_message_id)
    if node is None or meta.src_node_id != node:
        _log.warning("discovery dropped a reply that answers no challenge sent to its node")
        return None
    if reply.has_error():
        _log.warning(
            "discovery: node %d refused: %s (code %s)",
            node,
            one_line(reply.error.reason),
            reply.error.code,
        )
        return None
    return int(node)


def _claim(reply: Any, node: int) -> Claim:
    record = reply.content.config_records.get(HELLO)
    if record is None:
        raise MalformedMessage(f"the reply has no ConfigRecord {HELLO!r}")
    return Claim(node, record.get("participant"), record.get("signature"))


class SSDDLSession:
    """One SSDDL session on a Flower grid: :meth:`open`, :meth:`round` ×R, :meth:`close`."""

    def __init__(
        self,
        config: WorkflowConfig,
        *,
        selection: SelectionPolicy | None = None,
        random: RandomSource | None = None,
        exchange_hook: Callable[[FlowerExchange], None] | None = None,
    ) -> None:
        if not isinstance(config, WorkflowConfig):
            raise ConfigurationError("config must be a WorkflowConfig")
        self.config = config
        self.selection = (
            selection if selection is not None else UniformSubset(selection_rng(config.seed))
        )
        self._random = random if random is not None else OsRandom()
        self.driver: Driver | None = None
        self.exchange: FlowerExchange | None = None
        self.node_ids: dict[int, int] = {}
        self._template: Any = None
        self._exchange_hook = exchange_hook
        #: one report per round, as logged (what the server learned; no participant's values)
        self.reports: list[RoundReport] = []
        self._refusals_seen = 0
        self._bytes_seen = (0, 0)

    @property
    def server(self) -> Server:
        if self.driver is None:
            raise ConfigurationError("the session is not open: call open(grid, arrays) first")
        return self.driver.server

    def open(self, grid: Any, initial_arrays: Any) -> None:
        """Discovery and Init: who is who, then the signed key registration."""
        cfg = self.config
        interval = cfg.poll_interval or 0.5
        self.node_ids = discover(
            grid,
            cfg.roster,
            timeout=cfg.discovery_timeout,
            message_type=cfg.message_type,
            poll_interval=interval,
        )
        if len(self.node_ids) < cfg.protocol.min_group_size:
            raise GroupTooSmall(
                f"only {len(self.node_ids)} of the roster's {len(cfg.roster)} nodes answered "
                f"within discovery_timeout={cfg.discovery_timeout} s; min_group_size="
                f"{cfg.protocol.min_group_size}"
            )
        self._template = initial_arrays
        weights = arrays_to_vector(initial_arrays)
        roster = {pid: cfg.roster[pid] for pid in self.node_ids}
        self.exchange = FlowerExchange(
            grid,
            self.node_ids,
            message_type=cfg.message_type,
            default_timeout=cfg.stage_timeout,
            poll_interval=cfg.poll_interval,
        )
        if self._exchange_hook is not None:
            self._exchange_hook(self.exchange)  # instrumentation: wrap or observe the exchange
        self.driver = open_server(  # the server's half of ssddl.runtime.session's one wiring
            cfg.protocol,
            roster,
            weights,
            self.exchange,
            selection=self.selection,
            random=self._random,
            timeout=cfg.stage_timeout,
            defer_idle=True,
        )
        server = self.driver.server
        self.driver.init()
        if server.stage is ServerStage.DONE:
            self.driver.flush()
        refused = self._new_refusals("Init")
        _log.info(
            "SSDDL Init: %d of %d participants registered keys: [%s]",
            len(server.registered),
            len(self.node_ids),
            ", ".join(map(str, server.registered)),
        )
        if server.stage is ServerStage.DONE:
            raise GroupTooSmall(
                f"only {len(server.registered)} participants registered keys in Init; "
                f"min_group_size={cfg.protocol.min_group_size} (refusals: "
                f"{'; '.join(sorted(set(refused))) or 'none'})"
            )

    def _new_refusals(self, where: str) -> list[str]:
        """Log the refusals since the last call, each with its reason; return their lines."""
        every = self.driver.rejections if self.driver is not None else []
        fresh, self._refusals_seen = every[self._refusals_seen :], len(every)
        return log_refusals(where, fresh)

    def _report(self, outcome: RoundOutcome) -> RoundReport:
        traffic = self.exchange.traffic if self.exchange is not None else {}
        up = sum(n for (_, _, d), n in traffic.items() if d == "up")
        down = sum(n for (_, _, d), n in traffic.items() if d == "down")
        (up0, down0), self._bytes_seen = self._bytes_seen, (up, down)
        report = RoundReport(
            round=outcome.round,
            status="applied" if outcome.status is RoundStatus.APPLIED else "aborted",
            group=tuple(outcome.group),
            contributors=tuple(outcome.contributors),
            dropped=tuple(outcome.dropped),
            num_examples=int(outcome.total_samples),
            refusals=tuple(self._new_refusals(f"SSDDL round {outcome.round}")),
            bytes_up=up - up0,
            bytes_down=down - down0,
            seconds=float(outcome.seconds),
            reason=outcome.reason,
        )
        self.reports.append(report)
        (_log.info if report.status == "applied" else _log.warning)("%s", report.line())
        return report

    def participants_of(self, node_ids: Iterable[int]) -> tuple[int, ...]:
        """The protocol ids of Flower nodes (nodes outside the session are left out)."""
        of = {node: pid for pid, node in self.node_ids.items()}
        return tuple(sorted(of[n] for n in node_ids if n in of))

    def round(
        self,
        node_ids: Iterable[int] | None = None,
        train_configs: Mapping[int, Any] | None = None,
    ) -> RoundOutcome:
        """One round; ``node_ids`` (with a :class:`StrategySelection`) are the sampled nodes;
        ``train_configs`` maps Flower node ids to the ``ConfigRecord`` the strategy made for
        them (sent along with the round's first message, for the node's LocalTrain)."""
        if node_ids is not None:
            if not isinstance(self.selection, StrategySelection):
                raise ConfigurationError("node_ids need the session's StrategySelection")
            self.selection.choose(self.participants_of(node_ids))
        if self.driver is None or self.exchange is None:
            raise ConfigurationError("the session is not open: call open(grid, arrays) first")
        if train_configs:
            of = {node: pid for pid, node in self.node_ids.items()}
            self.exchange.attach_train_config(
                self.server.round + 1,
                {of[n]: record for n, record in train_configs.items() if n in of},
            )
        outcome = self.driver.round()
        self._report(outcome)
        return outcome

    @property
    def arrays(self) -> Any:
        """The global model as an ``ArrayRecord`` laid out like the initial one."""
        return vector_to_arrays(self.server.weights, self._template)

    def close(self) -> None:
        if self.driver is not None and self.server.stage is not ServerStage.DONE:
            self.driver.finish()


def outcome_metrics(outcome: RoundOutcome) -> dict[str, int | float]:
    """What the server learned about a round, as Flower metrics (no participant's values)."""
    return {
        "applied": int(outcome.status is RoundStatus.APPLIED),
        "group": len(outcome.group),
        "contributors": len(outcome.contributors),
        "dropped": len(outcome.dropped),
        "num-examples": int(outcome.total_samples),
    }


def start(
    grid: Any,
    config: WorkflowConfig,
    initial_arrays: Any,
    *,
    strategy: Any = None,
    train_config: Any = None,
    evaluate_config: Any = None,
    evaluate_fn: Callable[[int, Any], Any] | None = None,
    on_round: Callable[[RoundOutcome, Any], None] | None = None,
    exchange_hook: Callable[[FlowerExchange], None] | None = None,
    record_dir: str | Path | None = None,
) -> Any:
    """Run ``config.protocol.rounds`` SSDDL rounds on ``grid``; return Flower's ``Result``.

    With a Message-API ``strategy`` (e.g. ``flwr.serverapp.strategy.FedAvg``) the strategy
    samples each round's nodes through ``configure_train`` (its train messages themselves
    are not sent: SSDDL carries the round) and evaluates through ``configure_evaluate`` /
    ``aggregate_evaluate``; ``evaluate_fn(round, arrays)`` is centralized evaluation, called
    before the first round and after each. ``on_round(outcome, arrays)`` sees every round.
    Flower's round numbers start at 1, SSDDL's at 0. ``exchange_hook(exchange)`` is called
    once the session's :class:`FlowerExchange` exists (to instrument it).

    Every round is logged (``flwr.ssddl``: group, contributors, dropped, each refusal with
    its reason, bytes, the evaluation); with ``record_dir`` (an existing directory) each
    round's report is also appended to ``record_dir/rounds.jsonl``.
    """
    from flwr.serverapp.strategy import Result

    session = SSDDLSession(
        config,
        selection=StrategySelection() if strategy is not None else None,
        exchange_hook=exchange_hook,
    )
    result = Result()
    result.arrays = initial_arrays
    if evaluate_fn is not None:
        first = evaluate_fn(0, initial_arrays)
        if first is not None:
            result.evaluate_metrics_serverapp[0] = first
    run = _Run(grid, config, strategy, train_config, evaluate_config, evaluate_fn, result)
    session.open(grid, initial_arrays)
    try:
        for current in range(1, config.protocol.rounds + 1):
            outcome = run.round(session, current)
            if on_round is not None:
                on_round(outcome, result.arrays)
            evaluation = run.evaluate(current)
            report = dataclasses.replace(session.reports[-1], evaluation=evaluation)
            session.reports[-1] = report
            if record_dir is not None:
                write_report(Path(record_dir), report)
    finally:
        session.close()
    return result


@dataclass
class _Run:
    """The Message-API loop's pieces, for :func:`start`."""

    grid: Any
    config: WorkflowConfig
    strategy: Any
    train_config: Any
    evaluate_config: Any
    evaluate_fn: Callable[[int, Any], Any] | None
    result: Any

    def round(self, session: SSDDLSession, current: int) -> RoundOutcome:
        from flwr.app import ConfigRecord, MetricRecord

        sampled, configs = None, None
        if self.strategy is not None:
            train = ConfigRecord() if self.train_config is None else self.train_config
            bounded = _BoundedGrid(self.grid, self.config.discovery_timeout)
            arrays = self.result.arrays
            messages = list(self.strategy.configure_train(current, arrays, train, bounded))
            sampled = [m.metadata.dst_node_id for m in messages]
            configs = {m.metadata.dst_node_id: _config_of(m.content) for m in messages}
        outcome = session.round(sampled, configs)
        self.result.arrays = session.arrays
        self.result.train_metrics_clientapp[current] = MetricRecord(dict(outcome_metrics(outcome)))
        return outcome

    def evaluate(self, current: int) -> dict[str, float]:
        """The strategy's and the central evaluation of round ``current``, logged."""
        arrays, result = self.result.arrays, self.result
        if self.strategy is not None:
            _evaluate(self.grid, self.strategy, current, arrays, self.evaluate_config,
                      self.config, result)  # fmt: skip
        if self.evaluate_fn is not None:
            metrics = self.evaluate_fn(current, arrays)
            if metrics is not None:
                result.evaluate_metrics_serverapp[current] = metrics
        found = {
            source: dict(record[current])
            for source, record in (("clients", result.evaluate_metrics_clientapp),
                                   ("server", result.evaluate_metrics_serverapp))
            if current in record
        }  # fmt: skip
        if found:
            _log.info("%s", evaluation_line(current - 1, found))
        return {
            f"{source}-{k}": float(v)
            for source, values in found.items()
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }


def _config_of(content: Any) -> Any:
    """The train config in a strategy's train message (its first ``ConfigRecord``)."""
    from flwr.app import ConfigRecord

    records = content.config_records
    return next(iter(records.values())) if records else ConfigRecord()


class _BoundedGrid:
    """A grid whose ``get_node_ids`` gives up after ``timeout`` seconds of being asked:
    Flower's strategies wait for ``min_available_nodes`` without a limit."""

    def __init__(self, grid: Any, timeout: float) -> None:
        self._grid = grid
        self._timeout = timeout
        self._since: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def get_node_ids(self) -> Any:
        nodes = list(self._grid.get_node_ids())
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elif now - self._since > self._timeout:
            raise GroupTooSmall(
                f"the strategy waited {self._timeout:.0f} s (discovery_timeout) for its "
                f"min_available_nodes and {len(nodes)} nodes are connected: lower the "
                "strategy's min_available_nodes or start more SuperNodes"
            )
        return nodes


def _evaluate(
    grid: Any,
    strategy: Any,
    current: int,
    arrays: Any,
    evaluate_config: Any,
    config: WorkflowConfig,
    result: Any,
) -> None:
    from flwr.app import ConfigRecord

    cfg = ConfigRecord() if evaluate_config is None else evaluate_config
    bounded = _BoundedGrid(grid, config.discovery_timeout)
    messages = list(strategy.configure_evaluate(current, arrays, cfg, bounded))
    if not messages:
        return
    replies = grid.send_and_receive(messages, timeout=config.evaluate_timeout)
    metrics = strategy.aggregate_evaluate(current, replies)
    if metrics is not None:
        result.evaluate_metrics_clientapp[current] = metrics


class SSDDLFitWorkflow:
    """The ``fit_workflow`` of Flower's legacy ``DefaultWorkflow``: each call runs one SSDDL
    round on the nodes the legacy strategy's ``configure_fit`` sampled (their ``FitIns``
    config is forwarded to the nodes' LocalTrain) and writes the new global parameters back
    into the ``LegacyContext``'s state; the first call opens the session, the last (round
    ``num_rounds``) closes it. The swap from Flower's SecAgg+ is
    ``DefaultWorkflow(fit_workflow=SSDDLFitWorkflow(config))`` on the server and
    ``ssddl_mod(template, legacy=True)`` instead of ``secaggplus_mod`` on the clients."""

    def __init__(self, config: WorkflowConfig) -> None:
        if not isinstance(config, WorkflowConfig):
            raise ConfigurationError("config must be a WorkflowConfig")
        self.config = config
        self.session: SSDDLSession | None = None

    def __call__(self, grid: Any, context: Any) -> None:
        from flwr.compat.common.recorddict_compat import arrayrecord_to_parameters
        from flwr.server.compat.legacy_context import LegacyContext
        from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

        if not isinstance(context, LegacyContext):
            raise ConfigurationError("SSDDLFitWorkflow runs inside DefaultWorkflow (LegacyContext)")
        current: Any = context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND]
        arrays = context.state.array_records[MAIN_PARAMS_RECORD]
        session = self._open(grid, arrays, context.config.num_rounds)
        try:
            self._wait_for_clients(context)
            parameters = arrayrecord_to_parameters(arrays, keep_input=True)
            instructions = context.strategy.configure_fit(
                server_round=current, parameters=parameters, client_manager=context.client_manager
            )
            configs = {proxy.node_id: _legacy_config(fit.config) for proxy, fit in instructions}
            outcome = session.round(list(configs), configs)
        except BaseException:
            session.close()
            raise
        context.state.array_records[MAIN_PARAMS_RECORD] = session.arrays
        context.history.add_metrics_distributed_fit(
            server_round=current, metrics=dict(outcome_metrics(outcome))
        )
        if current >= context.config.num_rounds:
            session.close()

    def _wait_for_clients(self, context: Any) -> None:
        """Wait (at most ``discovery_timeout``) for the legacy strategy's
        ``min_available_clients``: its ``configure_fit`` would otherwise wait 24 h."""
        wanted = getattr(context.strategy, "min_available_clients", 1)
        deadline = time.monotonic() + self.config.discovery_timeout
        while context.client_manager.num_available() < wanted:
            if time.monotonic() >= deadline:
                raise GroupTooSmall(
                    f"the legacy strategy wants min_available_clients={wanted} and only "
                    f"{context.client_manager.num_available()} connected within "
                    f"discovery_timeout={self.config.discovery_timeout} s"
                )
            time.sleep(self.config.poll_interval or 0.5)

    def _open(self, grid: Any, arrays: Any, rounds: int) -> SSDDLSession:
        if self.session is None or self.session.driver is None:
            protocol = dataclasses.replace(self.config.protocol, rounds=rounds)
            config = dataclasses.replace(self.config, protocol=protocol)
            self.session = SSDDLSession(config, selection=StrategySelection())
            self.session.open(grid, arrays)
        return self.session


def _legacy_config(config: Mapping[str, Any]) -> Any:
    from flwr.app import ConfigRecord

    return ConfigRecord(dict(config))
