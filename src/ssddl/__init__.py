"""ssddl: privacy-preserving distributed deep learning based on secret sharing.

The safe entry points live here::

    import ssddl
    result = ssddl.simulate(model, datasets, ssddl.SimulationConfig(), test=test_set)

Protocol pieces are in :mod:`ssddl.protocol`, raw primitives in :mod:`ssddl.hazmat`.
"""

from ssddl.exceptions import ConfigurationError, SSDDLError
from ssddl.learning.train import LocalTrainConfig
from ssddl.protocol.config import Mode, ProtocolConfig
from ssddl.runtime.driver import Vanish
from ssddl.runtime.simulate import SimulationConfig, SimulationResult, simulate

__version__ = "0.1.0"

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
