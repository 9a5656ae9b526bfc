"""ssddl: privacy-preserving distributed deep learning based on secret sharing.

The safe entry points live here::

    import ssddl
    result = ssddl.simulate(model, datasets, ssddl.SimulationConfig(), test=test_set)

Protocol pieces are in :mod:`ssddl.protocol`, raw primitives in :mod:`ssddl.hazmat`.
Importing ``ssddl`` loads no torch: the names that need it are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ssddl.exceptions import ConfigurationError, SSDDLError

__version__ = "0.1.0"

_LAZY = {
    "LocalTrainConfig": "ssddl.learning.train",
    "Mode": "ssddl.protocol.config",
    "ProtocolConfig": "ssddl.protocol.config",
    "SimulationConfig": "ssddl.runtime.simulator",
    "SimulationResult": "ssddl.runtime.simulator",
    "Vanish": "ssddl.runtime.inmemory",
    "simulate": "ssddl.runtime.simulator",
}

__all__ = [
    "ConfigurationError",
    "LocalTrainConfig",
    "Mode",
    "ProtocolConfig",
    "SSDDLError",
    "SimulationConfig",
    "SimulationResult",
    "Vanish",
    "__version__",
    "simulate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ssddl' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
