"""The audit's own attacks, registered in the order ``ssddl audit`` runs them.

Each is an adapter that plays one published attack (its own function stays usable on its
own) behind :class:`~ssddl.attacks.attack.Attack`. An attack added with
:func:`~ssddl.attacks.attack.register_attack` runs after these.
"""

from __future__ import annotations

from ssddl.attacks.aggregate import AggregateAttacks
from ssddl.attacks.attack import Attack, register_attack
from ssddl.attacks.canary import EmpiricalEpsilon
from ssddl.attacks.coalition import CoalitionAttack
from ssddl.attacks.dp_aggregate import DpAggregateRecovery
from ssddl.attacks.server import ModelInconsistency, PolicyAnnouncements, StatedBounds
from ssddl.attacks.uploads import FirstLayerOnUploads, InversionOnUploads, PhongSharedKey

__all__ = ["BUILT_IN"]

BUILT_IN: tuple[Attack, ...] = (
    FirstLayerOnUploads(),
    InversionOnUploads(),
    AggregateAttacks(),
    DpAggregateRecovery(),
    EmpiricalEpsilon(),
    CoalitionAttack(),
    StatedBounds(),
    PolicyAnnouncements(),
    ModelInconsistency(),
    PhongSharedKey(),
)

for _attack in BUILT_IN:
    register_attack(_attack, built_in=True)
