"""A refactor must reproduce the recorded protocol transcript byte for byte (STYLE.md §4)."""

from __future__ import annotations

import json

import pytest

from tests.vectors import transcript


@pytest.fixture(scope="module")
def recorded():
    return json.loads(transcript.PATH.read_text())


@pytest.mark.parametrize("name", sorted(transcript.CASES))
def test_transcript_is_reproduced_byte_for_byte(name, recorded):
    now = transcript.record(name)
    assert now["statuses"] == recorded[name]["statuses"]
    assert now["weights"] == recorded[name]["weights"]
    for index, (got, want) in enumerate(zip(now["frames"], recorded[name]["frames"], strict=False)):
        assert got == want, f"frame {index} of {name} changed"
    assert len(now["frames"]) == len(recorded[name]["frames"])


def test_the_transcript_covers_every_message_kind(recorded):
    from ssddl.protocol.messages import MessageKind

    kinds = {frame.split(":")[0] for case in recorded.values() for frame in case["frames"]}
    # sparse_upload belongs to the DSSGD baseline scheme (tests/baselines/test_modes.py)
    assert kinds == {kind.name.lower() for kind in MessageKind} - {"sparse_upload"}
