"""A server that lies, played against the real participants.

Each attack drives real :class:`~ssddl.protocol.participant.Participant` objects through the
in-memory exchange — the same code a deployment runs — while the server's side is replaced, at
the point of the attack, by an adversary that sends whatever it likes. An attack succeeds only if
it recovers a member's encoded update x_i exactly from what the participants sent it. Every attack
returns an :class:`AttackResult` naming what stopped it: a protocol error a participant raised,
or the mechanism that left the adversary short.

The attacks (``run_server_attacks``):

``late_upload``
    A member's upload "arrives late": the server declares it dropped, completes dropout
    recovery, then reads the late upload and removes every mask it learned.
``coalition_floor``
    The aggregate of the contributors is revealed by design: a server that makes the
    contributors the coalition plus the target (members vanish or are declared dropped; or it
    chooses a group that small) reads the target's change off the sum.
``survivor_split``
    Double masking: the server shows members different survivor sets, so that for one target
    it collects both t shares of the self-mask seed and every pair key (the target's own
    share counts).
``contributor_split``
    Shamir: members are given contributor lists with and without the target; the server
    solves the linear system the uploads and the colluders' shares give (``solve_rows``).
``model_inconsistency``
    The server sends the target the true model and every other member a model whose "first
    layer" is dead (its weights at −60, where the synthetic trainers' first-layer change is
    0: a saturated sigmoid or dead ReLU), then completes the round as far as the members let
    it and reads the aggregate's first layer, which would be the target's update alone
    (Pasquini, Francati and Ateniese, CCS 2022). Members bind the round to the digest of the
    model they were sent (:mod:`ssddl.protocol.binding`): per configuration, the attack
    fails; with the binding bypassed (every member digests the true model: the control) it
    succeeds.
``announce_plain``, ``threshold_one``, ``tiny_group``, ``huge_round``
    The server announces a session or round outside the participants' policy.

:func:`bound_attacks` runs the first three at every configuration's stated bound (they must
fail) and one colluder beyond it (the control: they must succeed), as :class:`AttackRow`.

The audit runs them behind :class:`~ssddl.attacks.attack.Attack` as three attacks:
:class:`StatedBounds` (``bound_attacks`` and ``late_upload``), :class:`PolicyAnnouncements`
and :class:`ModelInconsistency`; each row becomes an
:class:`~ssddl.attacks.attack.AttackOutcome` (:meth:`AttackRow.outcome`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from unittest import mock

import numpy as np

from ssddl.attacks.attack import AttackContext, AttackOutcome, expected_at
from ssddl.exceptions import SecurityWarning, SSDDLError
from ssddl.hazmat.codec import ring_sub
from ssddl.hazmat.rand import InsecureSeededRandom, OsRandom, RandomSource
from ssddl.hazmat.sharing import SHAMIR_PRIME, field_to_ring, shamir_reconstruct
from ssddl.protocol import participant as participant_module
from ssddl.protocol.binding import model_digest
from ssddl.protocol.config import ProtocolConfig, Recovery
from ssddl.protocol.consistency import statement
from ssddl.protocol.localtrain import LocalUpdate, Trainer
from ssddl.protocol.masks import remove_pair_mask
from ssddl.protocol.messages import (
    SERVER,
    ConsistencyRequest,
    ConsistencySignature,
    MaskedUpload,
    Message,
    RoundEnd,
    RoundStart,
    SessionAnnounce,
    ShareBundle,
    ShareDelivery,
    UnmaskRequest,
    UnmaskResponse,
    Upload,
    decode_message,
)
from ssddl.protocol.participant import Participant
from ssddl.protocol.policy import ParticipantPolicy
from ssddl.protocol.ports import MaskBuilder
from ssddl.protocol.schemes import get_scheme
from ssddl.protocol.schemes._common import open_all_from, seal_for
from ssddl.protocol.schemes.prg import apply_self_mask, pair_binding, seed_from_field
from ssddl.protocol.select import SelectionPolicy, UniformSubset
from ssddl.protocol.server import Server
from ssddl.runtime.exchange import Driver, Frame
from ssddl.runtime.inmemory import Delay, InMemoryExchange
from ssddl.runtime.session import Session as RuntimeSession

M = TypeVar("M", bound=Message)

__all__ = [
    "AttackResult",
    "AttackRow",
    "ModelInconsistency",
    "PolicyAnnouncements",
    "Session",
    "StatedBounds",
    "bound_attacks",
    "coalition_floor",
    "contributor_split",
    "late_upload",
    "model_inconsistency",
    "model_inconsistency_rows",
    "policy_attacks",
    "policy_rows",
    "run_server_attacks",
    "session",
    "stated_bound_rows",
    "survivor_split",
]


@dataclass(frozen=True)
class AttackResult:
    """``unmasked``: the adversary recovered a member's encoded update exactly.
    ``stopped_by``: the error class a participant raised, or the mechanism that left the
    adversary short (None when the attack succeeded)."""

    name: str
    unmasked: bool
    stopped_by: str | None
    detail: str


@dataclass
class Session:
    """Real participants behind an in-memory exchange, a server, and the true encodings x_i
    (kept by an inspector hook — the ground truth an attack is judged against)."""

    server: Server
    participants: dict[int, Participant]
    exchange: InMemoryExchange
    driver: Driver
    truth: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)

    def send(self, recipient: int, message: Message) -> list[Message]:
        """The adversary talks to one member directly: its replies, or [] if it refused
        (the refusal is in ``exchange.rejections``)."""
        frames = self.exchange.send_and_receive(
            [Frame(SERVER, recipient, message.encode())], timeout=None, round_number=0
        )
        return [decode_message(f.data) for f in frames]

    def last_refusal(self) -> str | None:
        return self.exchange.rejections[-1].error if self.exchange.rejections else None


def _source(label: str, secure: bool) -> RandomSource:
    if secure:
        return OsRandom()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSeededRandom(hashlib.sha256(label.encode()).digest())


def session(
    config: ProtocolConfig,
    n: int = 5,
    size: int = 64,
    *,
    seed: int = 0,
    policy: ParticipantPolicy | None = None,
    faults: tuple[Delay, ...] = (),
    seeded_crypto: bool = False,
    init: bool = True,
    selection: SelectionPolicy | None = None,
    trainers: Callable[[int], Trainer] | None = None,
    masks: MaskBuilder | None = None,
) -> Session:
    """``n`` participants with synthetic updates of ``size`` values (or the trainer
    ``trainers(pid)`` gives); Init done unless ``init`` is false. ``masks``: where the
    members build their masks (default: in the caller; an engine passed here is the
    caller's to close)."""
    if config.weighted and config.max_samples is None:
        config = dataclasses.replace(config, max_samples=64)
    ids = list(range(1, n + 1))
    truth: dict[int, dict[int, np.ndarray]] = {}

    def trainer_for(pid: int) -> Callable[[np.ndarray, int], LocalUpdate]:
        def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
            rng = np.random.default_rng([seed, pid, round_number])
            return LocalUpdate((rng.standard_normal(size) * 0.5).astype(np.float32), 10 + pid)

        return trainer

    def keep(pid: int) -> Callable[[int, np.ndarray], None]:
        return lambda r, x: truth.setdefault(r, {}).__setitem__(pid, x)

    names = {"identity": "id", "participant": "p"}

    def source(label: str) -> RandomSource:
        role, _, pid = label.partition("/")
        name = f"{names[role]}/{pid}" if pid else role
        return _source(f"attack/{seed}/{name}", not seeded_crypto)

    make_trainer = trainers if trainers is not None else trainer_for
    exchange = InMemoryExchange(faults=faults)
    built = RuntimeSession.build(
        config,
        {p: make_trainer(p) for p in ids},
        np.zeros(size, dtype=np.float32),
        selection=selection
        if selection is not None
        else UniformSubset(np.random.default_rng(seed)),
        sources=source,
        policy=policy,
        masks=masks,
        inspectors=keep,
        exchange=exchange.attach,
    )
    server, participants, driver = built.server, built.participants, built.driver
    if init:
        driver.init()
    return Session(server, participants, exchange, driver, truth)


# -- late upload ---------------------------------------------------------------------------


def late_upload(recovery: str = "double-mask", *, n: int = 5, target: int = 3) -> AttackResult:
    """The target's upload is delayed past the deadline; after recovery the server reads it
    and removes every mask it learned during recovery."""
    config = ProtocolConfig(mode="prg", rounds=1, recovery=Recovery(recovery))
    kind = MaskedUpload.KIND if recovery == "double-mask" else Upload.KIND
    seen: list[Message] = []
    sent: list[RoundStart] = []
    s = session(config, n, faults=(Delay(target, 0, kind),))

    def watch(frame: Frame) -> Frame:  # the curious server reads everything it receives
        message = decode_message(frame.data)
        if frame.recipient == SERVER:
            seen.append(message)
        elif isinstance(message, RoundStart):
            sent.append(message)  # (and knows the model it sent)
        return frame

    s.exchange.interceptor = watch
    outcome = s.driver.round()
    late = [m for m in seen if isinstance(m, MaskedUpload | Upload) and m.sender == target]
    if outcome.status.name != "APPLIED" or target in outcome.contributors or not late:
        return AttackResult("late_upload", False, "no late upload", f"outcome {outcome.status}")
    keys = _revealed_keys(seen, target)
    binding = pair_binding(s.server.config, _digest_of(sent[-1]))
    estimate = _strip(s, late[-1].payload, target, keys, _seed_of(seen, target, s), binding)
    truth = s.truth[0][target]
    unmasked = bool(np.array_equal(estimate, truth))
    stopped = (
        None
        if unmasked
        else ("double masking: no share of a dropped member's self-mask seed is ever sent")
    )
    detail = f"pair keys learned for {len(keys)} of {n - 1} peers; seed shares of the target: 0"
    return AttackResult("late_upload", unmasked, stopped, detail)


def _revealed_keys(seen: list[Message], target: int) -> dict[int, bytes]:
    keys: dict[int, bytes] = {}
    for m in seen:
        peers = getattr(m, "key_peers", getattr(m, "peers", ()))
        values = getattr(m, "round_keys", ())
        for peer, key in zip(peers, values, strict=False):
            if peer == target:
                keys[m.sender] = key  # type: ignore[attr-defined]
    return keys


def _digest_of(start: RoundStart) -> bytes:
    """The model digest a member computes from ``start`` (the adversary computes it too)."""
    return model_digest(start.session_id, start.round, start.group, start.weights)


def _strip(
    s: Session,
    upload: np.ndarray,
    target: int,
    pair_keys: Mapping[int, bytes],
    seed: bytes | None,
    binding: bytes = b"",
) -> np.ndarray:
    """The adversary's best estimate of x_target: the upload with every mask it learned
    removed (the target's pair masks with ``pair_keys``, bound to ``binding`` as the target
    bound them; its self-mask if it has the seed)."""
    estimate = upload.copy()
    for peer, key in pair_keys.items():
        remove_pair_mask(
            estimate,
            key,
            owner=target,
            peer=peer,
            session_id=s.server.session_id,
            round_number=0,
            cipher=s.server.config.cipher,
            binding=binding,
        )
    if seed is not None:
        apply_self_mask(
            estimate,
            seed,
            session_id=s.server.session_id,
            round_number=0,
            owner=target,
            params=s.server.config,
            sign=-1,
        )
    return estimate


def _pair_keys_of(responses: Mapping[int, UnmaskResponse], target: int) -> dict[int, bytes]:
    """Every pair key of ``target`` that the responses reveal: its own (with the peers it was
    told dropped) and the peers' (that were told it dropped)."""
    keys: dict[int, bytes] = {}
    for sender, response in responses.items():
        for peer, key in zip(response.key_peers, response.round_keys, strict=True):
            if sender == target:
                keys[peer] = key
            elif peer == target:
                keys[sender] = key
    return keys


def _seed_of(seen: list[Message], target: int, s: Session) -> bytes | None:
    """The target's self-mask seed, if the server holds t of its shares (it never should)."""
    responses = {m.sender: m for m in seen if isinstance(m, UnmaskResponse)}
    return _seed_from(_seed_shares_of(responses, target), s.server.config.threshold)


# -- the coalition's part ------------------------------------------------------------------


def _coalition(n: int, colluders: int, target: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(honest members other than the target, colluders): the colluders are the highest ids."""
    if not 0 <= colluders <= n - 1 or not 1 <= target <= n - colluders:
        raise ValueError(f"{colluders} colluders and target {target} do not fit {n} members")
    bad = tuple(range(n - colluders + 1, n + 1))
    return tuple(p for p in range(1, n + 1) if p != target and p not in bad), bad


def _sign_as(
    s: Session, members: tuple[int, ...], sets: tuple[tuple[int, ...], tuple[int, ...]]
) -> dict[int, bytes]:
    """The colluders sign whatever set the server likes (the coalition holds their keys)."""
    return {
        p: s.participants[p].sign(
            statement(s.server.session_id, 0, *sets, s.participants[p].model_digest)
        )
        for p in members
    }


def _collect_signatures(
    s: Session, views: Mapping[int, tuple[int, ...]], colluders: tuple[int, ...]
) -> dict[tuple[int, ...], dict[int, bytes]]:
    """Ask every honest member to sign its own view; the colluders sign every view."""
    group = tuple(range(1, len(s.participants) + 1))
    signed: dict[tuple[int, ...], dict[int, bytes]] = {}
    for p, view in views.items():
        dropped = tuple(q for q in group if q not in view)
        for reply in s.send(p, ConsistencyRequest(s.server.session_id, 0, view, dropped)):
            if isinstance(reply, ConsistencySignature):
                signed.setdefault(view, {})[p] = reply.signature
    for view in set(views.values()):
        dropped = tuple(q for q in group if q not in view)
        inside = tuple(q for q in colluders if q in view)  # only signers inside count
        signed.setdefault(view, {}).update(_sign_as(s, inside, (view, dropped)))
    return signed


def _start_round(s: Session, group: tuple[int, ...], kind: type[M]) -> dict[int, M]:
    """Round 0 starts with the same model for every member: each one's first message."""
    first: dict[int, M] = {}
    for p in group:
        for reply in s.send(p, RoundStart(s.server.session_id, 0, group, s.server.weights)):
            if isinstance(reply, kind):
                first[p] = reply
    return first


def survivor_split(
    *,
    n: int = 5,
    colluders: int = 0,
    consistency: bool = False,
    threshold: int | None = None,
    target: int = 1,
) -> AttackResult:
    """Double masking against a server that shows members different survivor sets.

    The target is shown the ``A`` members "dropped" (it reveals its pair keys with them);
    ``A`` (t − 1 − c honest members) are shown the target alive (they return shares of its
    seed); the remaining honest members are shown the target dropped (they reveal their
    pair keys with it); the colluders hand over their keys and shares. With t shares of the
    seed and every pair key, the target's upload is stripped to x_target — possible while
    n ≥ 2t − 1 − c, unless the participants' checks stop it."""
    config = ProtocolConfig(mode="prg", rounds=1, consistency=consistency, threshold=threshold)
    s = session(config, n)
    t = s.server.config.threshold
    honest, bad = _coalition(n, colluders, target)
    group = tuple(range(1, n + 1))
    uploads = _start_round(s, group, MaskedUpload)
    a = honest[: max(0, t - 1 - colluders)]
    views = {target: tuple(q for q in group if q not in a)}
    views |= {p: group for p in a}
    views |= {p: tuple(q for q in group if q != target) for p in honest if p not in a}
    signed = _collect_signatures(s, views, bad) if consistency else {}
    responses: dict[int, UnmaskResponse] = {}
    refusals: list[str] = []
    for p, survivors in views.items():
        dropped = tuple(q for q in group if q not in survivors)
        relayed = [
            (q, uploads[q].seed_shares[uploads[q].receivers.index(p)]) for q in survivors if q != p
        ]
        sig = signed.get(survivors, {})
        request = UnmaskRequest(
            s.server.session_id, 0, survivors, dropped,
            tuple(q for q, _ in relayed), tuple(b for _, b in relayed),
            tuple(sig), tuple(sig.values()),
        )  # fmt: skip
        replies = s.send(p, request)
        refusals += [] if replies else [s.last_refusal() or "?"]
        for reply in replies:
            if isinstance(reply, UnmaskResponse):
                responses[p] = reply
    pair_keys = _pair_keys_of(responses, target)
    shares = _seed_shares_of(responses, target)
    for q in bad:  # the coalition's own: its keys with the target, its share of the seed
        colluder = s.participants[q]
        pair_keys[q] = colluder.round_keys[target]
        blob = uploads[target].seed_shares[uploads[target].receivers.index(q)]
        shares.append((q, open_all_from(colluder, (target,), (blob,))[0]))
    seed = _seed_from(shares, t)
    estimate = _strip(s, uploads[target].payload, target, pair_keys, seed)
    unmasked = (
        seed is not None
        and len(pair_keys) == n - 1
        and bool(np.array_equal(estimate, s.truth[0][target]))
    )
    return AttackResult(
        "survivor_split",
        unmasked,
        None if unmasked else (refusals[0] if refusals else "too few seed shares"),
        f"n={n} t={t} colluders={colluders}: {len(responses)} of {n - colluders} honest "
        f"members answered; seed shares of the target {len(shares)} of {t}; pair keys "
        f"{len(pair_keys)} of {n - 1}",
    )


def _seed_shares_of(
    responses: Mapping[int, UnmaskResponse], target: int
) -> list[tuple[int, bytes]]:
    return [
        (holder, share)
        for holder, r in responses.items()
        for owner, share in zip(r.share_owners, r.seed_shares, strict=True)
        if owner == target
    ]


def _seed_from(shares: list[tuple[int, bytes]], t: int) -> bytes | None:
    if t == 0 or len(shares) < t:
        return None
    words = shamir_reconstruct(
        [np.frombuffer(v, dtype="<u8").astype(np.uint64) for _, v in shares[:t]],
        [p for p, _ in shares[:t]],
        threshold=t,
    )
    return seed_from_field(words)


# -- inconsistent contributor lists (shamir) -------------------------------------------------


def contributor_split(
    *,
    n: int = 5,
    colluders: int = 0,
    consistency: bool = False,
    threshold: int | None = None,
    target: int = 1,
) -> AttackResult:
    """Shamir against a server that shows members different contributor lists: the target
    and t − 1 − c honest members add every share; the other honest members add all but the
    target's. The colluders send shares of zero and hand over the shares they received.
    Their uploads and the colluders' shares give t evaluations of the target's polynomial
    and of the others' sum — x_target while 2(t − c) <= n − c."""
    config = ProtocolConfig(mode="shamir", rounds=1, consistency=consistency, threshold=threshold)
    s = session(config, n)
    t = s.server.config.threshold
    honest, bad = _coalition(n, colluders, target)
    group = tuple(range(1, n + 1))
    bundles = _start_round(s, group, ShareBundle)
    for q in bad:  # a colluder's polynomial is zero: its terms drop out of every upload
        zero = np.zeros(s.server.model_size + 1, dtype="<u8").tobytes()
        others = bundles[q].receivers
        sealed = tuple(seal_for(s.participants[q], r, zero) for r in others)
        bundles[q] = ShareBundle(s.server.session_id, 0, q, others, sealed)
    a = (target, *honest[: max(0, t - 1 - colluders)])
    lists = {p: group for p in a} | {
        p: tuple(q for q in group if q != target) for p in honest if p not in a
    }
    signed = _collect_signatures(s, lists, bad) if consistency else {}
    rows: list[tuple[int, tuple[int, ...], np.ndarray]] = []
    refusals: list[str] = []
    for p, contributors in lists.items():
        senders = tuple(q for q in contributors if q != p)
        blobs = tuple(bundles[q].ciphertexts[bundles[q].receivers.index(p)] for q in senders)
        sig = signed.get(contributors, {})
        delivery = ShareDelivery(
            s.server.session_id, 0, contributors, senders, blobs, tuple(sig), tuple(sig.values())
        )
        replies = s.send(p, delivery)
        refusals += [] if replies else [s.last_refusal() or "?"]
        rows += [
            (p, tuple(q for q in contributors if q not in bad), r.payload)
            for r in replies
            if isinstance(r, Upload)
        ]
    for q in bad:  # each share a colluder received is one evaluation of its sender's polynomial
        colluder = s.participants[q]
        for sender in (*honest, target):
            blob = bundles[sender].ciphertexts[bundles[sender].receivers.index(q)]
            share = np.frombuffer(open_all_from(colluder, (sender,), (blob,))[0], dtype="<u8")
            rows.append((q, (sender,), share.astype(np.uint64)))
    estimate = solve_rows(rows, target, threshold=t)
    unmasked = estimate is not None and bool(
        np.array_equal(field_to_ring(estimate, config.ring_bits), s.truth[0][target])
    )
    uploaded = sum(1 for p, _, _ in rows if p not in bad)
    return AttackResult(
        "contributor_split",
        unmasked,
        None if unmasked else (refusals[0] if refusals else "the system is underdetermined"),
        f"n={n} t={t} colluders={colluders}: {uploaded} of {n - colluders} honest members uploaded",
    )


# -- the fewest contributors: dropouts, declared dropouts, chosen groups -----------------------


def coalition_floor(
    mode: str = "prg", *, n: int = 5, colluders: int = 0, target: int = 1, **options: Any
) -> AttackResult:
    """The aggregate of the contributors is revealed by design, so a coalition that is all
    the contributors but the target reads x_target off it. A server that does not hold
    itself to the floor (it announces ``max_colluders=0``) makes the contributors as few as
    the participants allow: the honest members other than the target vanish (or are declared
    dropped — a participant cannot tell the two apart) where the mode tolerates dropouts,
    and where it does not the server announces groups of ``colluders + 1``. The
    participants' own floor (their policy's ``max_colluders + 2`` contributors) must stop it.
    """
    stated = ProtocolConfig(mode=mode, rounds=1, **options)
    if stated.weighted and stated.max_samples is None:
        stated = dataclasses.replace(stated, max_samples=64)
    params = stated.resolve(n)
    policy = ParticipantPolicy.for_config(params)
    honest, bad = _coalition(n, colluders, target)
    lying = dataclasses.replace(
        stated, max_colluders=0, min_group_size=2, threshold=params.threshold or None
    )
    selection: SelectionPolicy | None = None
    faults: tuple[Delay, ...] = ()
    if get_scheme(mode).all_contribute(params.recovery):  # choose a small group instead
        lying = dataclasses.replace(lying, group_size=max(2, colluders + 1))
        selection = _Fixed((target, *bad))
    else:
        kind = {"shamir": ShareBundle.KIND}.get(mode, Upload.KIND)
        if params.recovery is Recovery.DOUBLE_MASK:
            kind = MaskedUpload.KIND
        faults = tuple(Delay(p, 0, kind) for p in honest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # the server's announcement is low
        s = session(lying, n, policy=policy, init=False, selection=selection, faults=faults)
        try:
            s.driver.init()
            outcome = s.driver.round()
        except SSDDLError as exc:
            why = s.last_refusal() or type(exc).__name__
            return AttackResult("coalition_floor", False, why, f"{mode} n={n}: {exc}")
    label = f"{mode} n={n} colluders={colluders}"
    if outcome.aggregate is None:
        why = s.last_refusal() or outcome.reason or "aborted"
        return AttackResult("coalition_floor", False, why, f"{label}: {outcome.reason}")
    estimate = outcome.aggregate.copy()
    for q in bad:  # the coalition's own encoded changes
        estimate = ring_sub(estimate, s.truth[0][q])
    unmasked = bool(np.array_equal(estimate, s.truth[0][target]))
    return AttackResult(
        "coalition_floor",
        unmasked,
        None if unmasked else "the sum of at least two honest changes",
        f"{label}: contributors {list(outcome.contributors)}",
    )


class _Fixed:
    """A server's group choice: always the same members."""

    def __init__(self, group: tuple[int, ...]) -> None:
        self.group = tuple(sorted(group))

    def select(self, registered: tuple[int, ...], size: int, round_number: int) -> tuple[int, ...]:
        return self.group

    def state(self) -> str:
        return json.dumps(self.group)

    def restore(self, state: str) -> None:
        self.group = tuple(json.loads(state))


def solve_for_member(
    uploads: Mapping[int, tuple[tuple[int, ...], np.ndarray]], target: int, *, threshold: int
) -> np.ndarray | None:
    """Member j's upload is Σ_{i ∈ C_j} f_i(j) with f_i of degree t − 1 and f_i(0) = x_i.
    Solve, over GF(p), for x_target if the uploads determine it; None if they do not."""
    rows = [(j, contributors, payload) for j, (contributors, payload) in sorted(uploads.items())]
    return solve_rows(rows, target, threshold=threshold)


def solve_rows(
    observations: Sequence[tuple[int, tuple[int, ...], np.ndarray]], target: int, *, threshold: int
) -> np.ndarray | None:
    """:func:`solve_for_member` of observations (point j, members C, Σ_{i ∈ C} f_i(j)): a
    member's upload, or one share a colluder holds (C is its sender alone)."""
    members = sorted({i for _, contributors, _ in observations for i in contributors})
    unknowns = [(i, k) for i in members for k in range(threshold)]
    rows = []
    values = []
    for j, contributors, payload in observations:
        rows.append([pow(j, k, SHAMIR_PRIME) if i in contributors else 0 for i, k in unknowns])
        values.append(payload.astype(object))
    if (target, 0) not in unknowns:
        return None
    goal = [1 if u == (target, 0) else 0 for u in unknowns]
    combination = _express(rows, goal)
    if combination is None:
        return None
    total = np.zeros(len(values[0]), dtype=object)
    for c, v in zip(combination, values, strict=True):
        total = (total + c * v) % SHAMIR_PRIME
    return total.astype(np.uint64)


def _express(rows: list[list[int]], goal: list[int]) -> list[int] | None:
    """Coefficients c with Σ c_j rows[j] = goal over GF(p), or None (Gaussian elimination)."""
    p = SHAMIR_PRIME
    m, width = len(rows), len(goal)
    # solve A^T c = goal: augment the transposed system
    matrix = [[rows[j][u] % p for j in range(m)] + [goal[u] % p] for u in range(width)]
    pivots: list[int] = []
    r = 0
    for col in range(m):
        pivot = next((i for i in range(r, width) if matrix[i][col]), None)
        if pivot is None:
            continue
        matrix[r], matrix[pivot] = matrix[pivot], matrix[r]
        inv = pow(matrix[r][col], p - 2, p)
        matrix[r] = [v * inv % p for v in matrix[r]]
        for i in range(width):
            if i != r and matrix[i][col]:
                f = matrix[i][col]
                matrix[i] = [(a - f * b) % p for a, b in zip(matrix[i], matrix[r], strict=True)]
        pivots.append(col)
        r += 1
    if any(row[-1] and not any(row[:-1]) for row in matrix):
        return None  # inconsistent: the goal is not in the row space
    solution = [0] * m
    for i, col in enumerate(pivots):
        solution[col] = matrix[i][-1]
    return solution


# -- model inconsistency (Pasquini, Francati and Ateniese, CCS 2022) ------------------------

#: the malicious model's dead "first layer": these weights at −60 saturate their units
DEAD_WEIGHT = -60.0


def _first_layer_trainer(pid: int, size: int, attacked: int) -> Trainer:
    """A synthetic LocalTrain that depends on the model: the change of each of the first
    ``attacked`` weights is 0 where that weight is dead (below −30), like a unit whose
    sigmoid saturates or whose ReLU never fires."""

    def trainer(weights: np.ndarray, round_number: int) -> LocalUpdate:
        rng = np.random.default_rng([7, pid, round_number])
        delta = (rng.standard_normal(size) * 0.5).astype(np.float32)
        delta[:attacked][weights[:attacked] < DEAD_WEIGHT / 2] = 0.0
        return LocalUpdate(delta, 10 + pid)

    return trainer


@contextlib.contextmanager
def _bypassed_binding(true_weights: np.ndarray) -> Iterator[None]:
    """The control: every member digests the true model whatever it was sent, so the
    binding no longer tells their views apart (only this attack's control does this)."""
    real = participant_module.model_digest

    def same_for_all(session_id: bytes, round_number: int, group: object, _: object) -> bytes:
        return real(session_id, round_number, group, true_weights)  # type: ignore[arg-type]

    with mock.patch.object(participant_module, "model_digest", same_for_all):
        yield


@dataclass
class _Round:
    """The adversary's round: who was sent which model (as digests), what came back."""

    s: Session
    group: tuple[int, ...]
    digests: dict[int, bytes]
    refusals: list[str] = field(default_factory=list)

    def ask(self, member: int, message: Message) -> list[Message]:
        replies = self.s.send(member, message)
        if not replies:
            self.refusals.append(self.s.last_refusal() or "?")
        return replies

    def alike(self, member: int, among: Mapping[int, object]) -> list[int]:
        """The members of ``among`` shown the same model as ``member``."""
        return [q for q in among if self.digests[q] == self.digests[member]]

    def signatures(self, included: tuple[int, ...]) -> dict[int, bytes]:
        """Every member's signature over (included, the rest), as far as they give one."""
        excluded = tuple(p for p in self.group if p not in included)
        request = ConsistencyRequest(self.s.server.session_id, 0, included, excluded)
        signed: dict[int, bytes] = {}
        for p in included:
            for reply in self.ask(p, request):
                if isinstance(reply, ConsistencySignature):
                    signed[p] = reply.signature
        return signed

    def signed_for(self, member: int, signed: Mapping[int, bytes]) -> tuple[tuple, tuple]:
        """The signatures that verify for ``member``: those of members shown its model."""
        signers = tuple(self.alike(member, signed))
        return signers, tuple(signed[q] for q in signers)


def model_inconsistency(
    mode: str = "prg",
    *,
    recovery: str | None = None,
    consistency: bool = False,
    bind: bool = True,
    n: int = 5,
    target: int = 1,
    size: int = 64,
    attacked: int = 16,
) -> AttackResult:
    """The target is sent the true model, the others one whose first ``attacked`` weights
    are dead; the server completes the round as far as the members allow and reads the
    aggregate's first ``attacked`` words as x_target's. ``bind=False`` is the control: the
    members' binding is bypassed (they all digest the true model)."""
    extra: dict[str, object] = {"threshold": 3} if mode == "shamir" else {}
    if recovery is not None:
        extra["recovery"] = Recovery(recovery)
    config = ProtocolConfig(mode=mode, rounds=1, consistency=consistency, **extra)  # type: ignore[arg-type]
    s = session(config, n, size, trainers=lambda p: _first_layer_trainer(p, size, attacked))
    true = s.server.weights.copy()
    dead = true.copy()
    dead[:attacked] = DEAD_WEIGHT
    group = tuple(range(1, n + 1))
    views = {p: true if p == target else dead for p in group}
    sid = s.server.session_id
    digested = views if bind else dict.fromkeys(group, true)  # what each member digests
    adversary = _Round(s, group, {p: model_digest(sid, 0, group, digested[p]) for p in group})
    replies: dict[int, Message] = {}
    with contextlib.nullcontext() if bind else _bypassed_binding(true):
        for p in group:
            for reply in adversary.ask(p, RoundStart(sid, 0, group, views[p])):
                replies[p] = reply
    if mode == "prg":
        aggregate, mechanism = _prg_aggregate(adversary, replies, config)
    else:
        aggregate, mechanism = _relayed_aggregate(adversary, replies, config)
    truth = s.truth[0][target][:attacked]
    unmasked = aggregate is not None and bool(np.array_equal(aggregate[:attacked], truth))
    parts = [mode] + ([s.server.config.recovery.value] if mode == "prg" else [])
    parts += (["consistency"] if consistency else []) + ([] if bind else ["unbound"])
    name = f"model_inconsistency[{'/'.join(parts)}]"
    stopped = None if unmasked else (adversary.refusals[0] if adversary.refusals else mechanism)
    detail = (
        f"{len(replies)} of {n} members shared; refusals: {sorted(set(adversary.refusals))}; "
        f"first {attacked} words of the aggregate "
        + ("are x_target's" if unmasked else "are not x_target's")
    )
    return AttackResult(name, unmasked, stopped, detail)


def _prg_aggregate(
    adversary: _Round, uploads: Mapping[int, Message], config: ProtocolConfig
) -> tuple[np.ndarray | None, str]:
    """The sum of the uploads, with every self-mask whose seed the members give removed."""
    s = adversary.s
    total = _ring_sum([m.payload for m in uploads.values()])  # type: ignore[attr-defined]
    if s.server.config.recovery is not Recovery.DOUBLE_MASK:
        return total, "pair masks bound to the model: members shown different models do not cancel"
    survivors = tuple(uploads)
    signed = adversary.signatures(survivors) if config.consistency else {}
    shares: dict[int, list[tuple[int, np.ndarray]]] = {}
    for p in survivors:
        for senders in (  # every survivor's shares; refused, only those it can open
            [q for q in survivors if q != p],
            [q for q in adversary.alike(p, uploads) if q != p],
        ):
            response = _ask_unmask(adversary, p, survivors, senders, uploads, signed)
            if response is not None:
                for owner, share in zip(response.share_owners, response.seed_shares, strict=True):
                    words = np.frombuffer(share, dtype="<u8").astype(np.uint64)
                    shares.setdefault(owner, []).append((p, words))
                break
    t = s.server.config.threshold
    for owner in survivors:
        got = shares.get(owner, [])
        if len(got) < t:
            return None, f"seed shares bound to the model: {len(got)} of t={t} of {owner}'s seed"
        seed = seed_from_field(
            shamir_reconstruct([w for _, w in got[:t]], [q for q, _ in got[:t]], threshold=t)
        )
        apply_self_mask(
            total,
            seed,
            session_id=s.server.session_id,
            round_number=0,
            owner=owner,
            params=s.server.config,
            sign=-1,
        )
    return total, "none"


def _ask_unmask(
    adversary: _Round,
    member: int,
    survivors: tuple[int, ...],
    senders: list[int],
    uploads: Mapping[int, Message],
    signed: Mapping[int, bytes],
) -> UnmaskResponse | None:
    blobs = tuple(
        uploads[q].seed_shares[uploads[q].receivers.index(member)]  # type: ignore[attr-defined]
        for q in senders
    )
    signers, signatures = adversary.signed_for(member, signed)
    request = UnmaskRequest(
        adversary.s.server.session_id, 0, survivors, (), tuple(senders), blobs, signers, signatures
    )
    for reply in adversary.ask(member, request):
        if isinstance(reply, UnmaskResponse):
            return reply
    return None


def _relayed_aggregate(
    adversary: _Round, bundles: Mapping[int, Message], config: ProtocolConfig
) -> tuple[np.ndarray | None, str]:
    """Deliver every contributor's shares to every contributor; sum what is uploaded."""
    s = adversary.s
    contributors = tuple(bundles)
    signed = adversary.signatures(contributors) if config.consistency else {}
    uploads: dict[int, np.ndarray] = {}
    for p in contributors:
        senders = tuple(q for q in contributors if q != p)
        blobs = tuple(
            bundles[q].ciphertexts[bundles[q].receivers.index(p)]  # type: ignore[attr-defined]
            for q in senders
        )
        signers, signatures = adversary.signed_for(p, signed)
        delivery = ShareDelivery(
            s.server.session_id, 0, contributors, senders, blobs, signers, signatures
        )
        for reply in adversary.ask(p, delivery):
            if isinstance(reply, Upload):
                uploads[p] = reply.payload
    if len(uploads) < len(contributors):
        return None, "shares sealed under the model: members shown another model cannot open them"
    if s.server.scheme.name == "explicit":
        return _ring_sum(list(uploads.values())), "none"
    t = s.server.config.threshold
    points = tuple(uploads)[:t]
    field_sum = shamir_reconstruct([uploads[p] for p in points], points, threshold=t)
    return field_to_ring(field_sum, s.server.config.ring_bits), "none"


def _ring_sum(vectors: list[np.ndarray]) -> np.ndarray:
    total = vectors[0].copy()
    for vector in vectors[1:]:
        np.add(total, vector, out=total)  # unsigned words wrap: the sum mod Q
    return total


#: every configuration the binding must hold in: (mode, recovery, consistency)
MODEL_CONFIGS: tuple[tuple[str, str | None, bool], ...] = (
    ("prg", "double-mask", False),
    ("prg", "double-mask", True),
    ("prg", "none", False),
    ("prg", "unsafe-reveal-keys", False),
    ("explicit", None, False),
    ("explicit", None, True),
    ("shamir", None, False),
    ("shamir", None, True),
)


def model_inconsistency_attacks(*, bind: bool = True) -> dict[str, AttackResult]:
    """:func:`model_inconsistency` in every configuration of :data:`MODEL_CONFIGS`."""
    results = [
        model_inconsistency(mode, recovery=recovery, consistency=consistency, bind=bind)
        for mode, recovery, consistency in MODEL_CONFIGS
    ]
    return {r.name: r for r in results}


# -- announcements outside the participants' policy ------------------------------------------


def policy_attacks() -> dict[str, AttackResult]:
    """A server announcing plain, a threshold of 1, a tiny group or a far round number."""
    results: dict[str, AttackResult] = {}
    honest = ProtocolConfig(mode="shamir", rounds=2, threshold=3, min_group_size=4)
    published = honest.resolve(5, max_samples=64).to_dict()
    announcements = {
        "announce_plain": ProtocolConfig(mode="plain", max_samples=64).resolve(5).to_dict(),
        "threshold_one": published | {"threshold": 1},
        "small_groups": published | {"min_group_size": 2},
    }
    for name, params in announcements.items():
        s = session(honest, 5, init=False)
        announce = SessionAnnounce(b"\x01" * 16, json.dumps(params), 64, (1, 2, 3, 4, 5))
        replies = s.send(1, announce)
        results[name] = AttackResult(
            name, bool(replies), None if replies else s.last_refusal(), json.dumps(params)
        )
    s = session(ProtocolConfig(mode="prg", rounds=2, group_size=5, min_group_size=4), 5)
    tiny = RoundStart(s.server.session_id, 0, (1, 2), s.server.weights)
    replies = s.send(1, tiny)
    results["tiny_group"] = AttackResult(
        "tiny_group", bool(replies), None if replies else s.last_refusal(), "group of 2"
    )
    far = RoundEnd(s.server.session_id, 2**40, 0, ())
    replies_far = s.send(1, far)
    refused = s.last_refusal()
    advanced = max(s.participants[1].pair_rounds.values()) > 1
    results["huge_round"] = AttackResult(
        "huge_round", advanced, None if advanced else refused, f"round {2**40}"
    )
    del replies_far
    return results


@dataclass(frozen=True)
class AttackRow:
    """One attack at one coalition size against one configuration, judged against the bound
    the configuration states for that server (``bound``; None: it states no protection).
    At or below the bound the attack must fail; one beyond it (the control that shows the
    attack is real) it must succeed."""

    attack: str
    config: str
    server: str  #: "honest-but-curious" or "lying"
    colluders: int
    bound: int | None
    recovered: bool
    stopped_by: str | None
    detail: str

    @property
    def within_bound(self) -> bool:
        return self.bound is not None and self.colluders <= self.bound

    @property
    def holds(self) -> bool:
        """The measurement agrees with the stated bound (fails within, succeeds beyond)."""
        return self.recovered != self.within_bound

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"within_bound": self.within_bound, "holds": self.holds}

    def outcome(self) -> AttackOutcome:
        """This row as an :class:`AttackOutcome` (every field is one of its own)."""
        return AttackOutcome(
            self.attack,
            self.config,
            self.recovered,
            expected_at(self.colluders, self.bound),
            target="a member's encoded change",
            server=self.server,
            colluders=self.colluders,
            bound=self.bound,
            stopped_by=self.stopped_by,
            detail=self.detail,
        )

    @classmethod
    def from_outcome(cls, outcome: AttackOutcome) -> AttackRow:
        """The row an :meth:`outcome` came from."""
        return cls(
            outcome.attack,
            outcome.setting,
            outcome.server,
            outcome.colluders,
            outcome.bound,
            outcome.succeeded,
            outcome.stopped_by,
            outcome.detail,
        )


#: the configurations the bounds are checked on: (label, mode, options)
BOUND_CONFIGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("prg", "prg", {}),
    ("prg --consistency", "prg", {"consistency": True}),
    ("prg --recovery none", "prg", {"recovery": Recovery.NONE}),
    ("prg --recovery unsafe-reveal-keys", "prg", {"recovery": Recovery.UNSAFE_REVEAL}),
    ("shamir", "shamir", {}),
    ("shamir --consistency", "shamir", {"consistency": True}),
    ("explicit", "explicit", {}),
)


def bound_attacks(n: int = 5) -> list[AttackRow]:
    """Every bound of every configuration in :data:`BOUND_CONFIGS` for groups of ``n``,
    each attacked at the bound and one beyond it."""
    rows: list[AttackRow] = []
    for label, mode, options in BOUND_CONFIGS:
        stated = ProtocolConfig(mode=mode, rounds=1, max_samples=64, **options)
        params = stated.resolve(n)
        guarantee = get_scheme(mode).guarantee(params)
        name = f"{label} n={n} t={params.threshold}" if params.threshold else f"{label} n={n}"
        lying = guarantee.lying[0] if guarantee.lying is not None else None
        floor_server = (
            "lying" if get_scheme(mode).all_contribute(params.recovery) else ("honest-but-curious")
        )
        floor_bound = lying if floor_server == "lying" else guarantee.collusion_bound
        split = {"prg": survivor_split, "shamir": contributor_split}.get(mode)
        margin = get_scheme(mode).split_margin(params.recovery, params.consistency)
        for c in _around(floor_bound, n):
            result = coalition_floor(mode, n=n, colluders=c, **options)
            rows.append(_row(result, name, floor_server, c, floor_bound))
        if split is not None and margin is not None and lying is not None:
            for c in _around(lying, n):
                result = split(n=n, colluders=c, consistency=params.consistency)
                rows.append(_row(result, name, "lying", c, lying))
        if params.recovery in (Recovery.DOUBLE_MASK, Recovery.UNSAFE_REVEAL):
            result = late_upload(params.recovery.value, n=n)
            rows.append(_row(result, name, "lying", 0, lying))
    return rows


def _around(bound: int | None, n: int) -> list[int]:
    """The coalition sizes to try: the bound and one beyond (as far as n − 1 colluders)."""
    if bound is None:
        return [0]
    return [c for c in (bound, bound + 1) if 0 <= c <= n - 1]


def _row(result: AttackResult, config: str, server: str, c: int, bound: int | None) -> AttackRow:
    return AttackRow(
        result.name, config, server, c, bound, result.unmasked, result.stopped_by, result.detail
    )


def stated_bound_rows(quick: bool = False) -> list[AttackRow]:
    """:func:`bound_attacks` for groups of 5, and of 7 unless ``quick``."""
    return [row for n in ((5,) if quick else (5, 7)) for row in bound_attacks(n)]


def policy_rows() -> list[AttackRow]:
    """:func:`policy_attacks` as rows: nothing is stated to survive them (bound 0)."""
    return [_row(result, "policy", "lying", 0, 0) for result in policy_attacks().values()]


def model_inconsistency_rows() -> list[AttackRow]:
    """:func:`model_inconsistency_attacks` with the binding (bound 0) and bypassed (None)."""
    rows = []
    # a model sent to one member only: no colluder needed, so the stated bound is 0 in every
    # mode; the control bypasses the binding (every member digests the same model)
    for bind, bound in ((True, 0), (False, None)):
        for name, result in model_inconsistency_attacks(bind=bind).items():
            config = name.removeprefix("model_inconsistency").strip("[]") or "prg"
            label = "model_inconsistency" + ("" if bind else " (binding bypassed)")
            rows.append(dataclasses.replace(_row(result, config, "lying", 0, bound), attack=label))
    return rows


def run_server_attacks(quick: bool = False) -> list[AttackRow]:
    """Every lying-server and coalition attack against the stated bounds (groups of 5; also
    of 7 unless ``quick``), and the announcements outside the participants' policy. A row
    whose ``holds`` is false is a broken (or untight) guarantee."""
    return [*stated_bound_rows(quick), *policy_rows(), *model_inconsistency_rows()]


# -- behind the audit's interface (ssddl.attacks.attack) -------------------------------------


class StatedBounds:
    """``coalition_floor``, ``survivor_split``, ``contributor_split`` and ``late_upload`` at
    every configuration's stated bound and one colluder beyond it."""

    name = "stated-bounds"
    guarantee = (
        "a coalition of the stated size learns no member's change, whether the server is "
        "honest-but-curious or lies; one colluder more recovers it (each bound is tight)"
    )
    adversary = (
        "a server that drops or declares members dropped, chooses groups, splits survivor or "
        "contributor lists, or reads a late upload, with c colluders"
    )

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        context.say("server misbehaviour and coalitions at each stated bound and one beyond it")
        return [row.outcome() for row in stated_bound_rows(context.quick)]


class PolicyAnnouncements:
    """A server announcing plain, a threshold of 1, small groups, a tiny group or a far
    round: the participants' own policy must refuse each."""

    name = "policy"
    guarantee = "a participant joins nothing outside its own policy, whatever is announced"
    adversary = "a server announcing a session or a round outside the participants' policy"

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        return [row.outcome() for row in policy_rows()]


class ModelInconsistency:
    """:func:`model_inconsistency` in every configuration, with the binding and bypassed."""

    name = "model-inconsistency"
    guarantee = (
        "members bind a round to the model they were sent: a model sent to one member only "
        "reveals nothing (with the binding bypassed, the control, it reveals the target)"
    )
    adversary = "a server that sends the target the true model and the others a dead one"

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        return [row.outcome() for row in model_inconsistency_rows()]
