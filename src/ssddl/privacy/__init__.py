"""Differential privacy for the aggregate: accounting and calibration of distributed DP.

The mechanisms' primitives (exact integer noise, rotation, rounding, wrap-around) are in
:mod:`ssddl.hazmat.noise` and :mod:`ssddl.hazmat.dp`; this package turns a session's
parameters into the per-member noise and the (ε, δ) it buys (:mod:`ssddl.privacy.accounting`,
composed by Google's ``dp-accounting``). It imports only ``ssddl.hazmat``; the protocol may
import it.
"""

from ssddl.privacy.accounting import (
    DistributedDp,
    DistributedDpAccountant,
    Mechanism,
    NoisePlan,
    calibrate,
    epsilon,
    plan,
)

__all__ = [
    "DistributedDp",
    "DistributedDpAccountant",
    "Mechanism",
    "NoisePlan",
    "calibrate",
    "epsilon",
    "plan",
]
