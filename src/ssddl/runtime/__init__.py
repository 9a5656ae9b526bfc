"""Runtimes that move protocol messages: the in-process simulator (counts every byte)."""

from ssddl.runtime.driver import Driver, Rejection, Vanish, VanishPhase
from ssddl.runtime.simulate import (
    RoundMetrics,
    SimulationConfig,
    SimulationResult,
    ValidationError,
    simulate,
)
from ssddl.runtime.transport import Delivery, InMemoryTransport, TrafficRecord, Transport

__all__ = [
    "Delivery",
    "Driver",
    "InMemoryTransport",
    "Rejection",
    "RoundMetrics",
    "SimulationConfig",
    "SimulationResult",
    "TrafficRecord",
    "Transport",
    "ValidationError",
    "Vanish",
    "VanishPhase",
    "simulate",
]
