"""Mask engines: where a member's masks are built when not in the caller (DESIGN.md §3).

The protocol names the port (:class:`~ssddl.protocol.ports.MaskBuilder`) and its default,
:class:`~ssddl.protocol.ports.InlineMaskBuilder`, which builds each mask in the caller. The
machinery lives here, at the edge (STYLE §19):

* :class:`MaskEngine` (:mod:`.engine`): one background worker — a thread, or a persistent
  child process — that builds masks while the members train, and builds the next round's
  masks ahead within a memory budget. A runtime creates one, passes it to its participants
  and closes it at the end (``with MaskEngine("process") as masks: ...``).
* :mod:`.process`: the parent's end of the child process (pipes, shared-memory segments);
  :mod:`.child`: the child's loop; :mod:`.framing`: the bytes between them.
"""

from __future__ import annotations

from ssddl.protocol.ports import InlineMaskBuilder, MaskBuilder
from ssddl.runtime.masking.engine import AHEAD_BUDGET_BYTES, MaskEngine, MaskWorker, check_worker

__all__ = [
    "AHEAD_BUDGET_BYTES",
    "InlineMaskBuilder",
    "MaskBuilder",
    "MaskEngine",
    "MaskWorker",
    "check_worker",
]
