"""A recorded protocol transcript: every frame of a small seeded session, per mode.

With all randomness seeded (``InsecureSeededRandom``, tests only) a session is deterministic,
so a refactor must reproduce it byte for byte (STYLE.md §4). The file stores, per mode, the
SHA-256 of every frame with its sender and recipient, and the final weights.

    python -m tests.vectors.transcript           # check the file against the code
    python -m tests.vectors.transcript --write   # rewrite it, only when the wire must change
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import ssddl.baselines.schemes  # noqa: F401  (registers the baseline schemes)
from ssddl.protocol import Mode, ProtocolConfig
from ssddl.protocol.messages import MessageKind
from ssddl.runtime import Frame, InMemoryExchange, Vanish, VanishPhase
from tests.protocol.helpers import make_session

PATH = Path(__file__).resolve().parent / "protocol_transcript.json"

#: (mode, extra config, vanishing participants): each mode once, plus dropout recovery paths
CASES: dict[str, tuple[Mode | str, dict[str, Any], tuple[Vanish, ...]]] = {
    "prg": (Mode.PRG, {}, ()),
    # groups of 4 with t = 3 (a split of survivor lists needs 2t - n - 2 >= 0) survive one
    "prg-dropout": (
        Mode.PRG,
        {"group_size": 4, "threshold": 3},
        (Vanish(3, 1, VanishPhase.ROUND_START),),
    ),
    "prg-consistency": (
        Mode.PRG,
        {"consistency": True, "threshold": 2},
        (Vanish(2, 1, VanishPhase.ROUND_START),),
    ),
    "prg-unsafe-reveal": (
        Mode.PRG,
        {"recovery": "unsafe-reveal-keys", "max_colluders": 0},
        (Vanish(3, 1, VanishPhase.ROUND_START),),
    ),
    "prg-no-recovery": (Mode.PRG, {"recovery": "none"}, ()),
    "explicit": (Mode.EXPLICIT, {}, ()),
    "explicit-consistency": (Mode.EXPLICIT, {"consistency": True}, ()),
    "shamir-dropout": (Mode.SHAMIR, {"threshold": 2}, (Vanish(4, 0, VanishPhase.AFTER_SHARE),)),
    "shamir-consistency": (Mode.SHAMIR, {"consistency": True}, ()),
    "plain": (Mode.PLAIN, {}, ()),
    "dssgd": ("dssgd", {}, ()),  # a baseline scheme from ssddl.baselines: the slot is the same
}


def record(name: str, *, persisted: bool = False) -> dict[str, Any]:
    """Every frame of case ``name``; ``persisted`` rebuilds each participant from its state
    bytes for every message (it must not change a single frame)."""
    mode, extra, vanish = CASES[name]
    frames: list[str] = []

    def tap(frame: Frame) -> Frame:
        digest = hashlib.sha256(frame.data).hexdigest()
        kind = MessageKind(frame.data[5]).name.lower()
        frames.append(f"{kind}:{frame.sender}>{frame.recipient}:{len(frame.data)}:{digest}")
        return frame

    config = ProtocolConfig(**({"mode": mode, "rounds": 2, "group_size": 3} | extra))
    session = make_session(
        config,
        n=4,
        size=9,
        vanish=vanish,
        seed=f"transcript/{name}",
        transport=InMemoryExchange(interceptor=tap),
        persisted=persisted,
    )
    session.driver.init()
    for _ in range(2):
        session.driver.round()
    session.driver.finish()
    return {
        "frames": frames,
        "weights": session.driver.server.weights.tobytes().hex(),
        "statuses": [o.status.name.lower() for o in session.driver.server.history],
    }


def record_all() -> dict[str, Any]:
    return {name: record(name) for name in CASES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    data = record_all()
    if args.write:
        PATH.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {PATH}")
        return 0
    same = json.loads(PATH.read_text()) == data
    print("transcript matches" if same else "transcript DIFFERS")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
