"""Every stated bound, attacked (issue 21): a coalition of the stated size, with a server that
is honest-but-curious or lies (splits survivor or contributor lists, chooses groups, declares
dropouts), fails against the real participants; one colluder more recovers a member's encoded
change exactly — the control that shows each attack is real, so each bound is tight."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ssddl.attacks.server import (
    BOUND_CONFIGS,
    bound_attacks,
    contributor_split,
    run_server_attacks,
    session,
    survivor_split,
)
from ssddl.exceptions import ConfigurationError, GroupTooSmall, PolicyViolation, SecurityWarning
from ssddl.protocol import ProtocolConfig
from ssddl.protocol.consistency import statement
from ssddl.protocol.messages import ConsistencyRequest, MaskedUpload, RoundStart, UnmaskRequest
from ssddl.protocol.policy import ParticipantPolicy
from ssddl.protocol.schemes import get_scheme


def _guarantee(mode: str, n: int, **options):
    params = ProtocolConfig(mode=mode, rounds=1, max_samples=64, **options).resolve(n)
    return params, get_scheme(mode).guarantee(params)


@pytest.mark.parametrize("n", [5, 7])
def test_every_stated_bound_fails_at_the_bound_and_falls_one_beyond(n):
    rows = bound_attacks(n)
    configs = {label for label, _, _ in BOUND_CONFIGS}
    assert {r.config.split(" n=")[0] for r in rows} == configs
    broken = [r for r in rows if not r.holds]
    assert not broken, "\n".join(f"{r.config} {r.attack} c={r.colluders}: {r}" for r in broken)
    # every bound of every configuration was attacked on both sides (where a side exists)
    for label in configs:
        mine = [r for r in rows if r.config.startswith(label + " ")]
        assert any(r.within_bound and not r.recovered for r in mine), label
        assert any(not r.within_bound and r.recovered for r in mine), label


def test_the_split_attacks_are_tight_across_group_sizes():
    for n in (3, 4, 6):
        _, g = _guarantee("prg", n)
        bound = g.lying[0]
        assert not survivor_split(n=n, colluders=bound).unmasked
        assert survivor_split(n=n, colluders=bound + 1).unmasked
        _, g = _guarantee("shamir", n)
        bound = g.lying[0]
        assert not contributor_split(n=n, colluders=bound).unmasked
        if bound + 1 <= n - 2:
            assert contributor_split(n=n, colluders=bound + 1).unmasked


@pytest.mark.parametrize(
    ("mode", "options", "n", "honest", "lying"),
    [
        ("prg", {}, 5, (2, 1), (1, 1)),
        ("prg", {}, 10, (5, 3), (2, 3)),
        ("prg", {"consistency": True}, 5, (2, 1), (2, 1)),
        ("prg", {"consistency": True}, 10, (5, 3), (5, 3)),
        ("prg", {"recovery": "none"}, 5, (3, 0), (3, 0)),
        ("prg", {"recovery": "unsafe-reveal-keys"}, 5, (2, 1), None),
        ("shamir", {}, 5, (2, 1), (2, 1)),
        ("shamir", {"consistency": True}, 7, (3, 2), (2, 2)),
        ("explicit", {}, 5, (3, 0), (3, 0)),
    ],
)
def test_the_stated_guarantees(mode, options, n, honest, lying):
    params, g = _guarantee(mode, n, **options)
    assert (g.collusion_bound, g.dropout_bound) == honest
    assert g.lying == lying
    # what participants enforce follows the same numbers: the floor of contributors
    assert params.min_contributors == max(params.max_colluders + 2, params.threshold, 2)
    if lying is not None:
        assert params.max_colluders <= lying[0]
    text = g.describe(n)
    assert "honest-but-curious" in text and "lies" in text


@pytest.mark.parametrize(
    ("mode", "n", "threshold", "consistency"),
    [
        ("prg", 5, 3, False),  # the old default: a split unmasks a member with no colluder
        ("prg", 10, 3, False),
        ("prg", 10, 5, False),
        ("prg", 12, 4, False),
        ("prg", 7, 3, True),
        ("shamir", 10, 5, False),
    ],
)
def test_thresholds_a_lying_server_can_split_are_refused(mode, n, threshold, consistency):
    config = ProtocolConfig(
        mode=mode, rounds=1, max_samples=64, threshold=threshold, consistency=consistency
    )
    with pytest.raises(ConfigurationError, match=r"different lists.*use threshold >= "):
        config.resolve(n)


def test_a_lower_max_colluders_warns_with_its_cost_and_a_higher_one_is_refused():
    config = ProtocolConfig(rounds=1, max_samples=64, max_colluders=0)
    with pytest.warns(SecurityWarning, match="max_colluders=0 is below the 2"):
        params = config.resolve(10)
    assert params.max_colluders == 0 and params.min_contributors == 7  # t still binds
    with pytest.raises(ConfigurationError, match="max_colluders=9 needs groups of 11"):
        ProtocolConfig(rounds=1, max_samples=64, max_colluders=9).resolve(10)
    with pytest.raises(ConfigurationError, match=r"with 3 colluder.*use threshold >= 8"):
        ProtocolConfig(rounds=1, max_samples=64, threshold=7, max_colluders=3).resolve(10)
    # asking for more colluders raises the default threshold to what survives them
    params = ProtocolConfig(rounds=1, max_samples=64, max_colluders=4).resolve(10)
    assert params.threshold == 8 and params.max_colluders == 4


def test_participants_refuse_a_threshold_that_a_split_would_break():
    honest = ProtocolConfig(mode="prg", rounds=1, max_samples=64).resolve(5)
    policy = ParticipantPolicy.for_config(honest)
    assert policy.max_colluders == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        weak = ProtocolConfig(mode="prg", rounds=1, max_samples=64, threshold=4, max_colluders=0)
        weak_params = weak.resolve(5)
    policy.check_session(weak_params)  # t=4 at n=5 survives one colluder: accepted
    low = ProtocolConfig(mode="prg", rounds=1, max_samples=64, threshold=3, consistency=True)
    with pytest.raises(PolicyViolation, match="threshold >= 4"):
        ParticipantPolicy(max_colluders=1, modes=("prg",)).check_session(low.resolve(5))
    with pytest.raises(GroupTooSmall, match="groups of 5"):
        ParticipantPolicy(max_colluders=4).check_session(honest)


def test_consistency_signatures_count_only_from_inside_the_signed_set():
    """A member left out of the set (here a colluder) signs it: refused, not counted."""
    s = session(ProtocolConfig(mode="prg", rounds=1, consistency=True), 5)
    group = (1, 2, 3, 4, 5)
    uploads = {}
    for p in group:
        for reply in s.send(p, RoundStart(s.server.session_id, 0, group, s.server.weights)):
            if isinstance(reply, MaskedUpload):
                uploads[p] = reply
    survivors, dropped = (1, 2, 3, 4), (5,)
    for p in survivors:
        s.send(p, ConsistencyRequest(s.server.session_id, 0, survivors, dropped))
    digest = s.participants[1].model_digest  # every member was sent the same model
    message = statement(s.server.session_id, 0, survivors, dropped, digest)
    signers = (2, 3, 5)  # 5 is outside the set: with 1 itself that would make t = 4
    signatures = tuple(s.participants[p].sign(message) for p in signers)
    relayed = [(q, uploads[q].seed_shares[uploads[q].receivers.index(1)]) for q in (2, 3, 4)]
    request = UnmaskRequest(
        s.server.session_id,
        0,
        survivors,
        dropped,
        tuple(q for q, _ in relayed),
        tuple(b for _, b in relayed),
        signers,
        signatures,
    )
    assert s.send(1, request) == []
    assert s.last_refusal() == "UnknownSender"
    assert "leaves out" in s.exchange.rejections[-1].detail


def test_the_audit_rows_carry_the_fields_the_json_promises():
    rows = run_server_attacks(quick=True)
    assert rows and all(r.holds for r in rows)
    fields = rows[0].as_dict()
    assert {"attack", "config", "colluders", "bound", "recovered", "holds"} <= set(fields)
    assert np.all([isinstance(r.colluders, int) for r in rows])


def test_state_and_messages_of_the_previous_wire_version_are_refused_naming_the_fix():
    """Wire version 3 carries max_colluders in the announcement and the participants' new
    checks: a state saved by version 2 is refused, saying what to do, never half-loaded."""
    from ssddl.exceptions import MalformedMessage
    from ssddl.protocol.participant import Participant

    s = session(ProtocolConfig(mode="prg", rounds=2), 5)
    member = s.participants[1]
    old = bytearray(member.to_bytes())
    assert old[4] == 3  # magic, then the version byte
    old[4] = 2
    with pytest.raises(MalformedMessage, match=r"wire version 2.*start a new session"):
        Participant.restore(bytes(old), member._identity, member.roster, lambda w, r: None)


def test_the_cli_says_a_lower_max_colluders_once_in_one_line(tmp_path, capsys):
    from ssddl.cli import main

    args = ["simulate", "--participants", "5", "--rounds", "1", "--epochs", "1"]
    assert main([*args, "--max-colluders", "0", "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("ssddl: warning:")]
    assert len(lines) == 1 and "--max-colluders=0 is below the 1" in lines[0], err
