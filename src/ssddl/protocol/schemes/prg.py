"""Mode ``prg`` (default): pairwise shares regenerated from forward-secure PRNGs.

Member i uploads ``u_i = x_i + Σ_{j>i} m_ij − Σ_{j<i} m_ij``; the masks cancel in the sum, so
no share of the vector crosses the network. What happens when an upload does not arrive is
the session's ``recovery``:

``double-mask`` (default; Bonawitz et al. 2017, §4)
    Each member also adds a self-mask PRG(s_i) from a fresh 32-byte seed and sends, with its
    upload, one Shamir share (threshold t) of s_i per member, sealed for it. After uploads
    close, every survivor receives the sealed seed shares of the other survivors and returns
    them opened, plus its round keys with the members that did not upload — never both for
    one member, and it answers one such request per round. An upload that arrives late was
    declared dropped: its seed is never revealed, so it is never unmasked. Two round trips per
    round after Init (three with the consistency check); no per-round key agreement — the
    pair keys come from the forward-secure PRNGs set up once at Init.
``none`` (the paper)
    A member that does not upload aborts the round.
``unsafe-reveal-keys``
    Survivors reveal their round keys with the vanished members. Cheap, but a server that
    receives the "vanished" member's upload late can then unmask it: only for a server that
    is trusted not to do that.

Binding to the model (:mod:`ssddl.protocol.binding`). With double masking the seed shares
are sealed under the round's model digest, so members shown different models cannot open
each other's shares and no self-mask comes off; the pair masks stay unbound, which lets a
member build them before the round (and its model) is known. Without seed shares (``none``,
``unsafe-reveal-keys``) the pair masks themselves are bound: each pair's mask key is
HKDF(round key, digest) (:func:`~ssddl.protocol.masks.bound_pair_key`), so members shown
different models add masks that do not cancel; those masks are built from the round's start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ssddl.exceptions import (
    GroupTooSmall,
    MalformedMessage,
    ShareError,
    UnknownSender,
)
from ssddl.hazmat.prg import accumulate_keystream
from ssddl.hazmat.sharing import SHAMIR_PRIME, shamir_reconstruct_each
from ssddl.protocol.config import Recovery, SessionParams
from ssddl.protocol.consistency import answer_request, check_partition, check_signed
from ssddl.protocol.masks import (
    RoundKeys,
    Stream,
    combined_mask,
    pair_streams,
    remove_pair_mask,
    self_stream,
)
from ssddl.protocol.messages import (
    Kind,
    MaskedUpload,
    Message,
    MessageKind,
    RevealRequest,
    RevealResponse,
    UnmaskRequest,
    UnmaskResponse,
    Upload,
)
from ssddl.protocol.pairing import FAILURE_BITS, SECURITY_BITS, round_graph
from ssddl.protocol.ports import PendingMask
from ssddl.protocol.roles import Envelope, MemberRole, ServerRole
from ssddl.protocol.schemes._common import (
    Guarantee,
    check_signature,
    check_upload,
    close_signatures,
    open_all_from,
    request_signatures,
)
from ssddl.protocol.schemes.base import ParticipantHandler, Scheme, ServerCheck, ServerCloser
from ssddl.protocol.seedshares import (
    SEED_SIZE,
    SEED_WORDS,
    SHARE_SIZE,
    PendingShares,
    SealedSeedShares,
    SeedShareRequest,
    draw_seed_share_request,
    seal_seed_shares,
    seed_to_field,
    split_seed,
    start_seed_shares,
)
from ssddl.protocol.stages import (
    BaseServerStage,
    Control,
    ParticipantStage,
    ParticipantTable,
    ServerStage,
    ServerTable,
    Variant,
)
from ssddl.protocol.state import Record, record_kind
from ssddl.protocol.wire import ARRAY, BLOBS, BYTES, IDS

__all__ = [
    "SCHEME",
    "PrgScheme",
    "binds_pair_masks",
    "seed_from_field",
    "seed_to_field",
    "split_seed",
]

K = MessageKind
P = ParticipantStage
S = ServerStage


def seed_from_field(words: np.ndarray) -> bytes:
    sizes = [7, 7, 7, 7, 4]
    if any(int(w) >= 1 << (8 * n) for w, n in zip(words, sizes, strict=True)):
        raise MalformedMessage("the reconstructed self-mask seed is out of range (a bad share)")
    return b"".join(int(w).to_bytes(n, "little") for w, n in zip(words, sizes, strict=True))


def _shares_from_bytes(blobs: Sequence[bytes], owners: Sequence[int]) -> np.ndarray:
    """Seed shares (of ``owners``, in order) as rows of field words, all checked at once."""
    for data, owner in zip(blobs, owners, strict=True):
        if len(data) != SHARE_SIZE:
            raise MalformedMessage(
                f"the seed share of participant {owner} is not {SHARE_SIZE} bytes"
            )
    words = np.frombuffer(b"".join(blobs), dtype="<u8").astype(np.uint64)
    rows = words.reshape(len(blobs), SEED_WORDS)
    bad = (rows >= SHAMIR_PRIME).any(axis=1)
    if bad.any():
        owner = owners[int(np.argmax(bad))]
        raise MalformedMessage(f"the seed share of participant {owner} is not in the field")
    return rows


def binds_pair_masks(params: SessionParams) -> bool:
    """Whether the pair masks are bound to the round's model digest: when no seed share is
    (``none``, ``unsafe-reveal-keys``); with double masking the sealed seed shares bind the
    round instead, and the pair masks can be built before the round starts."""
    return params.recovery is not Recovery.DOUBLE_MASK


def pair_binding(params: SessionParams, digest: bytes) -> bytes:
    """What a pair's mask key is bound to: ``digest``, or nothing (:func:`binds_pair_masks`)."""
    return digest if binds_pair_masks(params) else b""


def apply_self_mask(
    vector: np.ndarray,
    seed: bytes,
    *,
    session_id: bytes,
    round_number: int,
    owner: int,
    params: SessionParams,
    sign: int,
) -> None:
    """Add (``sign`` = +1) or remove (−1) the member's self-mask PRG(s_i) in place."""
    key, nonce, _ = self_stream(seed, session_id=session_id, round_number=round_number, owner=owner)
    accumulate_keystream(vector, key, nonce, sign=sign, cipher=params.cipher)


@record_kind
@dataclass(frozen=True, repr=False)
class _Recovery(Record):
    """The server's data while it waits for round keys (unsafe-reveal-keys)."""

    KIND: ClassVar[int] = 140
    SCHEMA: ClassVar = (("partial", ARRAY), ("uploaded", IDS), ("dropped", IDS))
    partial: np.ndarray
    uploaded: tuple[int, ...]
    dropped: tuple[int, ...]


@record_kind
@dataclass(frozen=True, repr=False)
class _OwnSeedShare(Record):
    """The member's own share of its self-mask seed, kept until the round ends (a secret)."""

    KIND: ClassVar[int] = 141
    SCHEMA: ClassVar = (("share", BYTES),)
    share: bytes


@record_kind
@dataclass(frozen=True, repr=False)
class _Unmask(Record):
    """The server's data after uploads close (double-mask): the sum of the uploads, who
    uploaded (``included``) and who did not (``excluded``), the sealed seed shares as
    (from, to, blob), and — with the consistency check — the signatures over the sets."""

    KIND: ClassVar[int] = 142
    SCHEMA: ClassVar = (
        ("partial", ARRAY),
        ("included", IDS),
        ("excluded", IDS),
        ("share_from", IDS),
        ("share_to", IDS),
        ("shares", BLOBS),
        ("signers", IDS),
        ("signatures", BLOBS),
    )
    partial: np.ndarray
    included: tuple[int, ...]
    excluded: tuple[int, ...]
    share_from: tuple[int, ...]
    share_to: tuple[int, ...]
    shares: tuple[bytes, ...]
    signers: tuple[int, ...] = ()
    signatures: tuple[bytes, ...] = ()


class PrgScheme(Scheme):
    name = "prg"
    min_group_floor = 2
    sparse_pairing = True  #: large groups may pair along a random k-regular graph
    summed_uploads = frozenset({MessageKind.UPLOAD, MessageKind.MASKED_UPLOAD})

    # -- configuration -------------------------------------------------------------------

    def resolve_recovery(self, recovery: Recovery | None) -> Recovery:
        return Recovery.DOUBLE_MASK if recovery is None else recovery

    def takes_threshold(self, recovery: Recovery) -> bool:
        return recovery is Recovery.DOUBLE_MASK

    def all_contribute(self, recovery: Recovery) -> bool:
        return recovery is Recovery.NONE

    def split_margin(self, recovery: Recovery, consistency: bool) -> int | None:
        """Double masking: a server that shows the target j the others as "dropped" (j
        reveals its pair keys with them) and shows t − 1 − c of them "j survived" (they
        return shares of j's seed) unmasks j while n ≥ 2t − 1 − c — j's own seed share
        counts. With the signed survivor set, two sets cannot both gather t signatures from
        inside them while 2t > n + c."""
        if recovery is not Recovery.DOUBLE_MASK:
            return None
        return 1 if consistency else 2

    def guarantee(self, params: SessionParams) -> Guarantee:
        n, t, floor = params.group_size, params.threshold, params.min_contributors
        if params.degree:
            return _sparse_guarantee(params)
        if params.recovery is Recovery.DOUBLE_MASK:
            # signed: the target's own view must be signed by t members inside it, and each
            # of them keeps its pair mask with the target (it calls the target a survivor),
            # so a split isolates nobody; the floor of contributors is the bound
            split = floor - 2 if params.consistency else 2 * t - n - 2
            return Guarantee(
                floor - 2,
                n - floor,
                3 if params.consistency else 2,
                f"double masking (t={t}): a late upload is never unmasked"
                + ("; the survivor set is signed by t members inside it" * params.consistency),
                lying=(min(floor - 2, split), n - floor),
            )
        if params.recovery is Recovery.NONE:
            return Guarantee(
                n - 2,
                0,
                1,
                "a member that does not upload aborts the round (model unchanged)",
                lying=(floor - 2, 0),
            )
        return Guarantee(
            floor - 2,
            n - floor,
            2,
            "unsafe-reveal-keys: an upload that arrives after the survivors revealed their "
            "keys with its sender is unmasked, so a server that lies about dropouts unmasks it",
            lying=None,
        )

    # -- stage tables ----------------------------------------------------------------------

    def participant_table(self, params: Variant) -> ParticipantTable:
        table: ParticipantTable = {(P.READY, K.ROUND_START): P.UPLOADED}
        if params.recovery is Recovery.UNSAFE_REVEAL:
            table |= {
                (P.UPLOADED, K.REVEAL_REQUEST): P.UNMASKED,
                (P.UNMASKED, K.ROUND_END): P.READY,
            }
        elif params.recovery is Recovery.DOUBLE_MASK:
            asked = P.SIGNED if params.consistency else P.UPLOADED
            table |= {(asked, K.UNMASK_REQUEST): P.UNMASKED, (P.UNMASKED, K.ROUND_END): P.READY}
            if params.consistency:
                table |= {
                    (P.UPLOADED, K.CONSISTENCY_REQUEST): P.SIGNED,
                    (P.SIGNED, K.ROUND_END): P.READY,
                }
        return table

    def server_table(self, params: Variant) -> ServerTable:
        upload = K.MASKED_UPLOAD if params.recovery is Recovery.DOUBLE_MASK else K.UPLOAD
        after = {S.COLLECTING_UPLOADS, S.IDLE}
        table: ServerTable = {}
        if params.recovery is Recovery.UNSAFE_REVEAL:
            after.add(S.COLLECTING_REVEALS)
            table |= {
                (S.COLLECTING_REVEALS, K.REVEAL_RESPONSE): frozenset(
                    {S.COLLECTING_REVEALS, S.IDLE}
                ),
                (S.COLLECTING_REVEALS, Control.DEADLINE): frozenset({S.IDLE}),
            }
        elif params.recovery is Recovery.DOUBLE_MASK:
            after.add(S.COLLECTING_SIGNATURES if params.consistency else S.COLLECTING_UNMASK)
            table |= {
                (S.COLLECTING_UNMASK, K.UNMASK_RESPONSE): frozenset({S.COLLECTING_UNMASK, S.IDLE}),
                (S.COLLECTING_UNMASK, Control.DEADLINE): frozenset({S.IDLE}),
            }
            if params.consistency:
                signed = frozenset({S.COLLECTING_SIGNATURES, S.COLLECTING_UNMASK, S.IDLE})
                table |= {
                    (S.COLLECTING_SIGNATURES, K.CONSISTENCY_SIGNATURE): signed,
                    (S.COLLECTING_SIGNATURES, Control.DEADLINE): signed - {S.COLLECTING_SIGNATURES},
                }
        table[(S.COLLECTING_UPLOADS, upload)] = frozenset(after)
        table[(S.COLLECTING_UPLOADS, Control.DEADLINE)] = frozenset(after - {S.COLLECTING_UPLOADS})
        return table

    # -- participant -----------------------------------------------------------------------

    def precompute(self, participant: MemberRole, keys: RoundKeys) -> PendingMask:
        """Start building the member's combined mask (pair masks and, with double masking,
        the self-mask from a fresh seed) from the round keys alone, on the member's mask
        builder; with the share keys, also the seed's shares, split and sealed for the
        member's pairs."""
        streams, (seed, shares) = self._mask_streams(participant, keys)
        params = participant.params
        size = participant.model_size + 1
        dtype = participant.codec.dtype
        return participant.masks.start(
            size, dtype, streams, params.cipher, seed=seed, shares=shares
        )

    def precompute_ahead(self, participant: MemberRole, keys: RoundKeys) -> PendingMask | None:
        """:meth:`precompute` before the round starts, if the member's mask builder builds
        ahead (None, and no seed drawn, when it does not: its budget is spent, or it builds
        in the caller). Not when the pair masks are
        bound to the round's model, which is not known yet (None: built at the round's
        start); the seed shares drawn here are bound when the round starts."""
        if binds_pair_masks(participant.params):
            return None
        size = participant.model_size + 1
        return participant.masks.start_ahead(
            size,
            participant.codec.dtype,
            participant.params.cipher,
            lambda: self._mask_streams(participant, keys),
        )

    def _mask_streams(
        self, participant: MemberRole, keys: RoundKeys
    ) -> tuple[list[Stream], tuple[bytes | None, PendingShares | None]]:
        session, me, round_number = participant.session_id, participant.id, keys.round_number
        binding = pair_binding(participant.params, keys.model_digest)
        if binds_pair_masks(participant.params) and not binding:
            raise ShareError("pair masks bound to the model are built only once it is known")
        streams = pair_streams(
            keys.mask_keys,
            owner=me,
            session_id=session,
            round_number=round_number,
            binding=binding,
        )
        if participant.params.recovery is not Recovery.DOUBLE_MASK:
            return streams, (None, None)
        seed = participant.take_seed(SEED_SIZE)
        # first: the combined mask starts from a stream with sign +1 (no fold)
        streams.insert(
            0, self_stream(seed, session_id=session, round_number=round_number, owner=me)
        )
        share_keys = keys.share_keys
        if share_keys is None:
            return streams, (seed, None)
        # the shares' randomness is drawn right after the seed, as the share step would
        # draw it after LocalTrain (the participant gives share keys only when encoding
        # draws nothing), and the worker splits and seals them while the member trains
        with participant.random.recording() as record:
            request = _share_request(participant, keys, share_keys, seed)
        return streams, (seed, start_seed_shares(request, record.drawn, participant.masks))

    def contribute(self, participant: MemberRole, delta: np.ndarray, count: int) -> list[Message]:
        params = participant.params
        session, round_number, me = participant.session_id, participant.round, participant.id
        pending = participant.take_precomputed()
        keys = RoundKeys(
            round_number,
            participant.group,
            participant.round_keys,
            model_digest=participant.model_digest,
        )
        if pending is None:
            pending = self.precompute(participant, keys)
        # every pair mask and the self-mask at once: the encoding is added onto the mask
        mask = pending.take()
        try:
            x = participant.encode_update(delta, count, onto=mask)
        except BaseException:
            mask.fill(0)
            participant.give_back_draws(pending)
            raise
        if params.recovery is not Recovery.DOUBLE_MASK or pending.seed is None:
            return [Upload(session, round_number, me, x, wire_bits=params.bits)]
        seed, pending.seed = pending.seed, None
        others = tuple(p for p in participant.group if p != me and p in participant.round_keys)
        early, pending.shares = pending.shares, None
        if early is not None:
            sealed = _early_shares(participant, early, others)
        else:  # drawn and done now, in the order the early draw takes
            request = _share_request(participant, keys, participant.share_keys, seed)
            sealed = seal_seed_shares(request)
        # each pair's AEAD key of the round opens its shares in the unmask step too
        for peer, key in zip(others, sealed.aead_keys, strict=True):
            participant.aead_keys[peer] = (participant.share_keys[peer], key)
        participant.scheme_state = sealed.own
        return [
            MaskedUpload(session, round_number, me, x, others, sealed.sealed, wire_bits=params.bits)
        ]

    def participant_handlers(self) -> Mapping[Kind, ParticipantHandler]:
        return {
            K.REVEAL_REQUEST: _reveal,
            K.CONSISTENCY_REQUEST: _sign_survivors,
            K.UNMASK_REQUEST: _unmask,
        }

    def encode_participant_state(self, state: Any) -> bytes:
        return b"" if state is None else _OwnSeedShare(state).to_bytes()

    def decode_participant_state(self, data: bytes) -> Any:
        return _OwnSeedShare.from_bytes(data).share if data else None

    # -- server ----------------------------------------------------------------------------

    def server_checks(self) -> Mapping[Kind, ServerCheck]:
        return {
            K.UPLOAD: lambda server, msg: check_upload(server, msg, field=False),
            K.MASKED_UPLOAD: _check_masked_upload,
            K.REVEAL_RESPONSE: _check_reveal,
            K.CONSISTENCY_SIGNATURE: check_signature,
            K.UNMASK_RESPONSE: _check_unmask_response,
        }

    def server_closers(self) -> Mapping[BaseServerStage, ServerCloser]:
        return {
            S.COLLECTING_UPLOADS: _close_uploads,
            S.COLLECTING_REVEALS: _close_reveals,
            S.COLLECTING_SIGNATURES: lambda server: close_signatures(server, _ask_unmask),
            S.COLLECTING_UNMASK: _close_unmask,
        }

    def encode_server_data(self, data: Any) -> bytes:
        return b"" if data is None else data.to_bytes()

    def decode_server_data(self, data: bytes) -> Any:
        if not data:
            return None
        record = _Recovery if data[5] == _Recovery.KIND else _Unmask
        return record.from_bytes(data)


def _share_request(
    participant: MemberRole, keys: RoundKeys, share_keys: Mapping[int, bytes], seed: bytes
) -> SeedShareRequest:
    """The seed's shares for the member and its pairs in the round's group (sparse: its
    neighbours), their randomness drawn from the member's source."""
    me = participant.id
    holders = tuple(p for p in keys.group if p == me or p in share_keys)
    return draw_seed_share_request(
        participant.random,
        session_id=participant.session_id,
        round_number=keys.round_number,
        owner=me,
        holders=holders,
        threshold=participant.params.threshold,
        seed=seed,
        share_keys=[share_keys[p] for p in holders if p != me],
        algorithm=participant.params.aead,
        model_digest=keys.model_digest,  # empty ahead of the round: bound at its start
    )


def _early_shares(
    participant: MemberRole, early: PendingShares, others: tuple[int, ...]
) -> SealedSeedShares:
    """The shares sealed before the update existed, checked to be this round's: for the
    round's pairs (``others``), in order, under their share keys of the round and its model
    digest."""
    keys = participant.share_keys
    if early.receivers != others or tuple(keys[p] for p in others) != early.share_keys:
        early.discard()
        raise ShareError("the seed shares sealed ahead belong to another round's keys")
    if early.model_digest != participant.model_digest:
        early.discard()
        raise ShareError("the seed shares sealed ahead are bound to another model")
    return early.result()


def _sparse_guarantee(params: SessionParams) -> Guarantee:
    n, k, t = params.group_size, params.degree, params.threshold
    corrupt = math.floor(params.corrupt_fraction * n)
    dropped = math.floor(params.dropout_fraction * n)
    double = params.recovery is Recovery.DOUBLE_MASK
    # a lying server splits the survivor lists of one member's k + 1 seed-share holders
    # (the graph is public): the complete-graph condition with n = k + 1
    local = 2 * t - (k + 1) - 2 if double else corrupt
    return Guarantee(
        corrupt,
        dropped if double else 0,
        2 if double else 1,
        f"sparse pairing (k={k} neighbours of {n}, seed threshold t={t}): except with "
        f"probability below 2^-{SECURITY_BITS} over the public pairing graph, for members "
        f"chosen before the session; "
        + (
            f"up to {dropped} members may vanish (the round fails with probability below "
            f"2^-{FAILURE_BITS}), and a late upload is never unmasked"
            if double
            else "a member that does not upload aborts the round"
        ),
        lying=(min(corrupt, local), dropped if double else 0),
    )


# -- participant handlers ------------------------------------------------------------------


def _reveal(participant: MemberRole, msg: RevealRequest) -> list[Message]:
    """unsafe-reveal-keys: reveal this round's pair keys with the members said to be gone."""
    participant.check_round(msg.round)
    group = participant.group
    if participant.id in msg.dropped or not set(msg.dropped) <= set(group):
        raise UnknownSender(
            f"round {msg.round}: the vanished members {list(msg.dropped)} must be other "
            f"members of the group"
        )
    survivors = len(group) - len(msg.dropped)
    if survivors < participant.min_contributors:
        raise GroupTooSmall(
            f"round {msg.round}: revealing keys would leave {survivors} survivors, below "
            f"the {participant.min_contributors} this participant needs; refused"
        )
    keys = tuple(participant.round_keys[p] for p in msg.dropped)
    return [RevealResponse(participant.session_id, msg.round, participant.id, msg.dropped, keys)]


def _needed(params: SessionParams) -> int:
    return params.min_contributors


def _sign_survivors(participant: MemberRole, msg: Any) -> list[Message]:
    return answer_request(participant, msg, at_least=participant.min_contributors, what="survivors")


def _unmask(participant: MemberRole, msg: UnmaskRequest) -> list[Message]:
    """Open the survivors' seed shares and reveal the round keys with the dropped members:
    never both for one member (the sets are disjoint), once per round (the stage)."""
    participant.check_round(msg.round)
    check_partition(
        participant.group,
        msg.survivors,
        msg.dropped,
        member=participant.id,
        at_least=participant.min_contributors,
        what="survivors",
    )
    check_signed(participant, msg.survivors, msg.dropped, msg.signers, msg.signatures)
    if participant.id in msg.senders:
        raise MalformedMessage("a member's own seed share is never relayed back to it")
    opened = open_all_from(participant, msg.senders, msg.seed_shares)
    _shares_from_bytes(opened, msg.senders)  # every opened share is a field vector
    owners = (participant.id, *msg.senders)
    shares = (participant.scheme_state, *opened)
    key_peers = tuple(p for p in msg.dropped if p in participant.round_keys)  # pairs only
    response = UnmaskResponse(
        participant.session_id,
        msg.round,
        participant.id,
        owners,
        shares,
        key_peers,
        tuple(participant.round_keys[p] for p in key_peers),
    )
    participant.scheme_state = None
    return [response]


# -- server ----------------------------------------------------------------------------------


def _pairs_of(server: ServerRole, member: int) -> frozenset[int] | None:
    """The members ``member`` pairs with under sparse pairing (None: everyone)."""
    degree = server.config.degree
    if not degree:
        return None
    graph = round_graph(
        server.graph_seed(), server.round, server.open.group, server.registered, degree
    )
    return graph[member]


def _check_masked_upload(server: ServerRole, msg: MaskedUpload) -> None:
    check_upload(server, msg, field=False)
    pairs = _pairs_of(server, msg.sender)
    others = tuple(
        p for p in server.open.group if p != msg.sender and (pairs is None or p in pairs)
    )
    if tuple(sorted(msg.receivers)) != others:
        raise MalformedMessage(
            f"participant {msg.sender} sealed seed shares for {sorted(msg.receivers)}; the "
            f"other members are {list(others)}"
        )


def _check_reveal(server: ServerRole, msg: RevealResponse) -> None:
    recovery = server.open.data
    if tuple(msg.peers) != recovery.dropped:
        raise MalformedMessage(
            f"participant {msg.sender} revealed keys for {list(msg.peers)}; "
            f"asked for {list(recovery.dropped)}"
        )


def _check_unmask_response(server: ServerRole, msg: UnmaskResponse) -> None:
    data: _Unmask = server.open.data
    pairs = _pairs_of(server, msg.sender)
    asked = tuple(p for p in data.excluded if pairs is None or p in pairs)
    if tuple(msg.key_peers) != asked:
        raise MalformedMessage(
            f"participant {msg.sender} revealed keys for {list(msg.key_peers)}; asked for "
            f"{list(asked)}"
        )
    if not set(msg.share_owners) <= set(data.included):
        raise MalformedMessage(f"participant {msg.sender} sent seed shares of non-survivors")
    _shares_from_bytes(msg.seed_shares, msg.share_owners)


def _close_uploads(server: ServerRole) -> list[Envelope]:
    params = server.config
    kind: type[Message] = MaskedUpload if params.recovery is Recovery.DOUBLE_MASK else Upload
    uploads: dict[int, Any] = server.received(kind)  # without payloads: summed on arrival
    aggregate = server.summed() if uploads else None
    survivors = tuple(uploads)
    dropped = tuple(p for p in server.open.group if p not in uploads)
    if params.recovery is Recovery.DOUBLE_MASK:
        if len(survivors) < _needed(params) or aggregate is None:
            return server.abort(f"{len(survivors)} uploads; {_needed(params)} are needed")
        data = _Unmask(
            aggregate,
            survivors,
            dropped,
            *_flatten_shares(uploads),
        )
        if params.consistency:
            return request_signatures(server, survivors, dropped, data)
        return _ask_unmask(server, (), (), data)
    if not dropped:
        return server.apply_secure(aggregate, survivors)
    if params.recovery is Recovery.NONE:
        return server.abort(f"members {list(dropped)} did not upload; recovery is 'none'")
    if len(survivors) < _needed(params) or aggregate is None:
        return server.abort(f"{len(survivors)} uploads; {_needed(params)} are needed")
    request = RevealRequest(server.session_id, server.round, dropped)
    return server.next_phase(
        S.COLLECTING_REVEALS,
        frozenset(survivors),
        [Envelope(p, request) for p in survivors],
        _Recovery(aggregate, survivors, dropped),
    )


def _flatten_shares(
    uploads: Mapping[int, MaskedUpload],
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[bytes, ...]]:
    triples = [
        (sender, receiver, blob)
        for sender, msg in uploads.items()
        for receiver, blob in zip(msg.receivers, msg.seed_shares, strict=True)
    ]
    return (
        tuple(t[0] for t in triples),
        tuple(t[1] for t in triples),
        tuple(t[2] for t in triples),
    )


def _ask_unmask(
    server: ServerRole,
    signers: tuple[int, ...],
    signatures: tuple[bytes, ...],
    data: _Unmask | None = None,
) -> list[Envelope]:
    """Send every survivor (every signer, with the consistency check) its unmask request."""
    if data is None:
        data = server.open.data
    data = _Unmask(
        data.partial,
        data.included,
        data.excluded,
        data.share_from,
        data.share_to,
        data.shares,
        signers,
        signatures,
    )
    asked = signers if server.config.consistency else data.included
    included = set(data.included)
    relays: dict[int, list[tuple[int, bytes]]] = {}  # one pass over the n² sealed shares
    for sender, receiver, blob in zip(data.share_from, data.share_to, data.shares, strict=True):
        if sender in included:
            relays.setdefault(receiver, []).append((sender, blob))
    envelopes = []
    for member in asked:
        relayed = relays.get(member, [])
        request = UnmaskRequest(
            server.session_id,
            server.round,
            data.included,
            data.excluded,
            tuple(s for s, _ in relayed),
            tuple(b for _, b in relayed),
            signers,
            signatures,
        )
        envelopes.append(Envelope(member, request))
    return server.next_phase(S.COLLECTING_UNMASK, frozenset(asked), envelopes, data)


def _close_unmask(server: ServerRole) -> list[Envelope]:
    """Rebuild each survivor's seed from t shares and take its self-mask out; take the
    survivors' halves of the pair masks with the dropped members out; apply the sum."""
    data: _Unmask = server.open.data
    params = server.config
    responses = server.received(UnmaskResponse)
    missing = sorted(
        p
        for p in set(data.included) - set(responses)
        if any(q in data.excluded for q in (_pairs_of(server, p) or data.excluded))
    )
    if missing:
        return server.abort(
            f"members {missing} vanished while unmasking; their pair keys with the members "
            f"that did not upload are needed"
        )
    shares: dict[int, list[tuple[int, list[int]]]] = {p: [] for p in data.included}
    for holder, response in responses.items():
        rows = _shares_from_bytes(response.seed_shares, response.share_owners).tolist()
        for owner, row in zip(response.share_owners, rows, strict=True):
            shares[owner].append((holder, row))
    short = [p for p, got in shares.items() if len(got) < params.threshold]
    if short:
        return server.abort(
            f"too few seed shares to unmask members {short} (threshold {params.threshold})"
        )
    aggregate = _without_self_masks(
        server, data.partial, _reconstruct_seeds(shares, params.threshold)
    )
    revealed = {p: zip(r.key_peers, r.round_keys, strict=True) for p, r in responses.items()}
    _remove_revealed(server, aggregate, revealed)
    return server.apply_secure(aggregate, data.included)


def _without_self_masks(
    server: ServerRole, partial: np.ndarray, seeds: Mapping[int, np.ndarray]
) -> np.ndarray:
    """``partial`` minus every owner's self-mask PRG(s_i), as a new array: the masks are
    combined chunk by chunk in the cache (:func:`~ssddl.protocol.masks.combined_mask`), so
    the vector goes through memory once rather than once per survivor."""
    streams = []
    for owner, words in seeds.items():
        key, nonce, _ = self_stream(
            seed_from_field(words),
            session_id=server.session_id,
            round_number=server.round,
            owner=owner,
        )
        streams.append((key, nonce, -1))
    combined = combined_mask(partial.size, partial.dtype, streams, server.config.cipher)
    return np.add(partial, combined, out=combined)


def _reconstruct_seeds(
    shares: Mapping[int, list[tuple[int, list[int]]]], threshold: int
) -> dict[int, np.ndarray]:
    """Each owner's seed words from its first ``threshold`` shares (as (holder, words)), all
    owners in one call: under sparse pairing every owner's holders differ."""
    owners = list(shares)
    rows = np.array(
        [[words for _, words in shares[owner][:threshold]] for owner in owners], dtype=np.uint64
    ).reshape(len(owners), threshold, SEED_WORDS)
    points = [[holder for holder, _ in shares[owner][:threshold]] for owner in owners]
    seeds = shamir_reconstruct_each(rows, points, threshold=threshold)
    return dict(zip(owners, seeds, strict=True))


def _close_reveals(server: ServerRole) -> list[Envelope]:
    recovery: _Recovery = server.open.data
    responses = server.received(RevealResponse)
    if set(responses) != set(recovery.uploaded):
        missing = sorted(set(recovery.uploaded) - set(responses))
        return server.abort(f"members {missing} vanished during dropout recovery")
    aggregate = recovery.partial.copy()
    revealed = {p: zip(r.peers, r.round_keys, strict=True) for p, r in responses.items()}
    _remove_revealed(server, aggregate, revealed)
    return server.apply_secure(aggregate, recovery.uploaded)


def _remove_revealed(
    server: ServerRole, aggregate: np.ndarray, revealed: Mapping[int, Iterable[tuple[int, bytes]]]
) -> None:
    """Take each survivor's half of its pair masks with the members that did not upload out
    of ``aggregate``: ``revealed[survivor]`` holds (peer, round key) pairs. Pair masks bound
    to the model are removed under the digest of the model this server sent."""
    binding = server.model_digest() if binds_pair_masks(server.config) else b""
    for survivor, pairs in revealed.items():
        for peer, key in pairs:
            remove_pair_mask(
                aggregate,
                key,
                owner=survivor,
                peer=peer,
                session_id=server.session_id,
                round_number=server.round,
                cipher=server.config.cipher,
                binding=binding,
            )


SCHEME = PrgScheme()
