"""ssddl: privacy-preserving distributed deep learning based on secret sharing.

The safe entry points live here::

    import ssddl
    result = ssddl.simulate(model, datasets, ssddl.SimulationConfig(), test=test_set)

Protocol pieces are in :mod:`ssddl.protocol`, raw primitives in :mod:`ssddl.hazmat`.

The names below are imported on first use, so that ``ssddl --help`` and ``ssddl --version``
answer without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ssddl.exceptions import ConfigurationError, SSDDLError
    from ssddl.learning.train import LocalTrainConfig
    from ssddl.protocol.config import Mode, ProtocolConfig
    from ssddl.runtime.driver import Vanish
    from ssddl.runtime.simulate import SimulationConfig, SimulationResult, simulate

#: public name -> the module that defines it
_LAZY = {
    "ConfigurationError": "ssddl.exceptions",
    "LocalTrainConfig": "ssddl.learning.train",
    "Mode": "ssddl.protocol.config",
    "ProtocolConfig": "ssddl.protocol.config",
    "SSDDLError": "ssddl.exceptions",
    "SimulationConfig": "ssddl.runtime.simulate",
    "SimulationResult": "ssddl.runtime.simulate",
    "Vanish": "ssddl.runtime.driver",
    "simulate": "ssddl.runtime.simulate",
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
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
