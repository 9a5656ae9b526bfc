"""Runtimes that move protocol messages: the Grid-shaped seam, the in-memory exchange that
counts every byte and injects faults, session assembly, and the in-process simulator.

The seam (``exchange``), the in-memory exchange and session assembly need no torch; the
simulator does (``import ssddl.runtime`` loads it; import the submodules to avoid that).
"""

from __future__ import annotations

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
    VanishPhase,
)
from ssddl.runtime.session import Members, NodeMap, make_members
from ssddl.runtime.simulate import RoundMetrics, SimulationConfig, SimulationResult, simulate

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
    "PersistedHost",
    "Rejection",
    "Reorder",
    "RoundMetrics",
    "SimulationConfig",
    "SimulationResult",
    "TrafficRecord",
    "Vanish",
    "VanishPhase",
    "make_members",
    "simulate",
]

