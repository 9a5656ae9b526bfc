"""Runtimes that move protocol messages: the Grid-shaped seam, the in-memory exchange that
counts every byte and injects faults, session assembly, the in-process simulator, and the
mask engines that build members' masks off the critical path (``ssddl.runtime.masking``).

The seam (``exchange``), the in-memory exchange and session assembly need no torch; the
simulator (``ssddl.runtime.simulator``) does, and is loaded on first use of its names, so a
process that only moves messages (a Flower ClientApp, say) never pays for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ssddl.runtime.callbacks import ParticipantEval, RunCallback
from ssddl.runtime.exchange import Driver, Exchange, Frame, Rejection
from ssddl.runtime.inmemory import (
    Delay,
    Drop,
    Duplicate,
    Fault,
    InMemoryExchange,
    LiveHost,
    PersistedHost,
    Reorder,
    TrafficRecord,
    Vanish,
    VanishAt,
    VanishPhase,
)
from ssddl.runtime.session import Members, NodeMap, make_members

_LAZY = {
    "RoundMetrics": "ssddl.runtime.simulator",
    "SimulationConfig": "ssddl.runtime.simulator",
    "SimulationResult": "ssddl.runtime.simulator",
    "simulate": "ssddl.runtime.simulator",
}

__all__ = [
    "Delay",
    "Driver",
    "Drop",
    "Duplicate",
    "Exchange",
    "Fault",
    "Frame",
    "InMemoryExchange",
    "LiveHost",
    "Members",
    "NodeMap",
    "ParticipantEval",
    "PersistedHost",
    "Rejection",
    "Reorder",
    "RoundMetrics",
    "RunCallback",
    "SimulationConfig",
    "SimulationResult",
    "TrafficRecord",
    "Vanish",
    "VanishAt",
    "VanishPhase",
    "make_members",
    "simulate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ssddl.runtime' has no attribute {name!r}")
    return getattr(import_module(module), name)
