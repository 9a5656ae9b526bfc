"""The recorded views: every frame, decoded, per round; coalition states from to_bytes()."""

from __future__ import annotations

import numpy as np
import pytest

from ssddl.attacks import ServerFrame
from ssddl.exceptions import ConfigurationError
from ssddl.hazmat.codec import ring_sum
from ssddl.protocol.messages import decode_message


def test_the_server_view_holds_every_frame_decoded_and_the_run_is_unchanged(runs):
    run = runs["prg"]
    view = run.server
    assert all(isinstance(f, ServerFrame) for f in view.frames)
    assert all(f.message is not None for f in view.frames)
    # the raw bytes are the frames on the wire, and decode to the recorded message
    assert all(decode_message(f.data) == f.message for f in view.frames[:5])
    kinds_up = {f.kind for f in view.frames if f.direction == "up"}
    assert {"key_advert", "masked_upload", "unmask_response"} <= kinds_up
    assert sorted(view.uploads(0)) == list(run.participants)
    # recording changed nothing: the aggregate is the ring sum of the true updates
    truth = ring_sum([run.truth[p][0] for p in run.participants])
    assert np.array_equal(view.aggregate(0), truth)
    assert view.rounds() == (0,)


@pytest.mark.parametrize("mode", ["prg", "explicit", "shamir"])
def test_a_colluder_state_holds_its_round_keys_share_keys_own_share_and_update(runs, mode):
    run = runs[mode]
    view = run.coalition([2, 3])
    assert view.colluders == (2, 3)
    state = view.member(2, 0)
    assert set(state.round_keys) == set(state.share_keys) == {1, 3, 4}
    assert all(len(k) == 32 for k in state.round_keys.values())
    assert state.own_share is not None
    assert np.array_equal(state.update, run.truth[2][0])
    # pair keys are symmetric: the pair (2, 3) holds one key
    assert view.member(3, 0).round_keys[2] == state.round_keys[3]
    assert "round_keys" not in repr(state) and repr(state) == "MemberState(participant=2, round=0)"


def test_a_plain_view_holds_the_changes_in_the_clear(runs):
    uploads = runs["plain"].server.uploads(0)
    assert {type(m).__name__ for m in uploads.values()} == {"PlainUpload"}


def test_a_coalition_of_strangers_or_a_missing_state_is_refused(runs):
    run = runs["prg"]
    with pytest.raises(ConfigurationError, match="not participants"):
        run.coalition([9])
    with pytest.raises(ConfigurationError, match="not a colluder"):
        run.coalition([2]).member(3, 0)
