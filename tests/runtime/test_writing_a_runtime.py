"""docs/writing-a-runtime.md does what it says: its code blocks, run as written, give a
runtime that carries real rounds and a whole simulated training run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ssddl.protocol.messages import RoundStatus

PAGE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-runtime.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def test_the_page_has_the_three_blocks_it_describes():
    assert len(blocks()) == 3


def test_the_pages_runtime_runs_rounds_and_a_simulation(capsys):
    namespace: dict[str, object] = {"__name__": "writing_a_runtime"}
    for block in blocks():
        exec(compile(block, str(PAGE), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "APPLIED (1, 2, 3, 4, 5)"  # the comment on the page
    accuracy, upload = map(float, printed[1].split())
    assert accuracy > 0.5 and upload > 0  # digits after two rounds; bytes counted at the seam

    session = namespace["session"]
    outcome = namespace["outcome"]
    assert type(session.exchange).__name__ == "StreamExchange"
    assert outcome.status is RoundStatus.APPLIED and session.exchange.refused == []
    # the update the server applied over the stream is the members' mean change (equal
    # sample counts), up to the fixed-point encoding
    changes = [
        np.random.default_rng([pid, outcome.round]).normal(0, 0.1, 100).astype(np.float32)
        for pid in outcome.contributors
    ]
    assert np.abs(outcome.update - np.mean(changes, axis=0)).max() < 1e-4


def test_the_pages_runtime_records_refusals_instead_of_raising():
    namespace: dict[str, object] = {"__name__": "writing_a_runtime"}
    exec(compile(blocks()[0], str(PAGE), "exec"), namespace)
    from ssddl.exceptions import MalformedMessage
    from ssddl.runtime.exchange import Frame

    class Refuses:
        def handle(self, data: bytes) -> list[bytes]:
            raise MalformedMessage("not a frame")

    exchange = namespace["StreamExchange"]({3: Refuses()})
    assert exchange.send_and_receive([Frame(0, 3, b"junk")], timeout=None) == []
    assert exchange.refused == [(3, "MalformedMessage")]
