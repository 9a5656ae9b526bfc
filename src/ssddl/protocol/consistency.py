"""The consistency check (Bonawitz et al. 2017, against an active server).

Before revealing anything for a round, a member needs the set the server is acting on (the
survivors whose seeds it will unmask, or the contributors whose shares it will add) signed,
over exactly the same sets, by at least t members *inside the signed set* with their identity
keys; it signs the set it was shown itself first. An honest member signs one set a round and
c colluders sign any, so with t > (n + c)/2 two different sets cannot both gather t
signatures, and every honest member reveals for one and the same set. (A signature from a
member the set calls missing would let a colluder left out of both sets count twice; it is
refused.)
"""

from __future__ import annotations

from collections.abc import Mapping

from ssddl.exceptions import InvalidSignature, MalformedMessage, UnknownSender
from ssddl.hazmat.keys import verify_signature
from ssddl.protocol.messages import ConsistencyRequest, ConsistencySignature, Message
from ssddl.protocol.roles import MemberRole

__all__ = ["answer_request", "check_partition", "check_signed", "statement", "verify_sets"]

LABEL = b"ssddl/consistency/v2"  #: v2: the model digest is part of the statement


def statement(
    session_id: bytes,
    round_number: int,
    included: tuple[int, ...],
    excluded: tuple[int, ...],
    model_digest: bytes,
) -> bytes:
    """The bytes a member signs: session, round, both sets (sorted) and the digest of the
    model it was sent (:mod:`ssddl.protocol.binding`), length-prefixed: members shown
    different models sign different statements, so no set gathers t signatures across them."""
    parts = [LABEL, len(session_id).to_bytes(4, "little"), session_id]
    parts.append(round_number.to_bytes(8, "little"))
    for ids in (tuple(sorted(included)), tuple(sorted(excluded))):
        parts.append(len(ids).to_bytes(4, "little"))
        parts += [i.to_bytes(8, "little") for i in ids]
    parts += [len(model_digest).to_bytes(4, "little"), model_digest]
    return b"".join(parts)


def check_partition(
    group: tuple[int, ...],
    included: tuple[int, ...],
    excluded: tuple[int, ...],
    *,
    member: int,
    at_least: int,
    what: str,
) -> None:
    """``included`` and ``excluded`` split the group exactly, the member is included, and
    at least ``at_least`` members are."""
    if set(included) | set(excluded) != set(group) or set(included) & set(excluded):
        raise UnknownSender(
            f"the {what} {sorted(included)} and the missing {sorted(excluded)} do not split "
            f"the round's group {sorted(group)}"
        )
    if member not in included:
        raise UnknownSender(f"participant {member} is not among the {what} it is asked about")
    if len(included) < at_least:
        raise MalformedMessage(
            f"{len(included)} {what} is below the {at_least} the round needs; refused"
        )


def verify_sets(
    roster: Mapping[int, bytes],
    group: tuple[int, ...],
    message: bytes,
    signers: tuple[int, ...],
    signatures: tuple[bytes, ...],
    *,
    at_least: int,
    within: tuple[int, ...],
) -> None:
    """At least ``at_least`` distinct members of ``within`` (the signed set, inside the
    group) signed ``message``; every signature given must verify (InvalidSignature names
    the first that does not)."""
    if len(set(signers)) != len(signers):
        raise MalformedMessage("a member signed the set twice")
    stray = [s for s in signers if s not in group]
    if stray:
        raise UnknownSender(f"signatures from {stray}, who are not in the round's group")
    outside = [s for s in signers if s not in within]
    if outside:
        raise UnknownSender(
            f"signatures from {outside}, whom the signed set leaves out; only members "
            f"inside it count"
        )
    for signer, signature in zip(signers, signatures, strict=True):
        try:
            verify_signature(roster[signer], message, signature)
        except InvalidSignature:
            raise InvalidSignature(
                f"participant {signer}'s signature over the round's set does not verify"
            ) from None
    if len(signers) < at_least:
        raise InvalidSignature(
            f"the set is signed by {len(signers)} members; {at_least} are needed"
        )


# -- participant side --------------------------------------------------------------------------


def answer_request(
    participant: MemberRole, msg: ConsistencyRequest, *, at_least: int, what: str
) -> list[Message]:
    """Sign the set the server shows, once per round, after checking it splits the group."""
    participant.check_round(msg.round)
    check_partition(
        participant.group,
        msg.included,
        msg.excluded,
        member=participant.id,
        at_least=at_least,
        what=what,
    )
    participant.signed_set = tuple(sorted(msg.included))
    signature = participant.sign(
        statement(
            participant.session_id, msg.round, msg.included, msg.excluded, participant.model_digest
        )
    )
    return [ConsistencySignature(participant.session_id, msg.round, participant.id, signature)]


def check_signed(
    participant: MemberRole,
    included: tuple[int, ...],
    excluded: tuple[int, ...],
    signers: tuple[int, ...],
    signatures: tuple[bytes, ...],
) -> None:
    """With the consistency check on: the set is the one this member signed, and at least
    t members of the group signed exactly it. Without it, nothing to check."""
    params = participant.params
    if not params.consistency:
        return
    if tuple(sorted(included)) != participant.signed_set:
        raise InvalidSignature(
            f"round {participant.round}: the server acts on {sorted(included)}, but this "
            f"participant signed {list(participant.signed_set)}; refused"
        )
    verify_sets(
        participant.roster,
        participant.group,
        statement(
            participant.session_id, participant.round, included, excluded, participant.model_digest
        ),
        signers,
        signatures,
        at_least=params.consistency_threshold,
        within=included,
    )
