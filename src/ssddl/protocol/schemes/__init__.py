"""ParaShare as pluggable schemes: one module per sharing mode, found through a registry.

A scheme (:class:`~ssddl.protocol.schemes.base.Scheme`) gives both sides of one sharing mode:
the participant's contribution and what it does with deliveries, the server's checks of the
scheme's messages and the end of each of its phases, and the stage tables of both. The
participant and the server call the scheme; neither names a mode. Adding a mode is adding a
module that calls :func:`register_scheme` — see ``tests/protocol/test_toy_scheme.py``.

Importing this package registers the built-in schemes in :mod:`ssddl.protocol.registry`
(:mod:`ssddl.protocol` imports it, so they are there before any mode is looked up).
"""

from __future__ import annotations

from typing import Any

import ssddl.protocol.registry as registry
from ssddl.exceptions import ConfigurationError
from ssddl.protocol.schemes import explicit, plain, prg, shamir
from ssddl.protocol.schemes.base import Scheme

__all__ = ["Scheme", "get_scheme", "register_scheme", "scheme_names", "unregister_scheme"]


def register_scheme(scheme: Scheme) -> Scheme:
    """Make ``scheme`` selectable as ``ProtocolConfig(mode=scheme.name)``."""
    if not isinstance(scheme, Scheme):
        raise ConfigurationError("register_scheme takes a Scheme instance")
    registry.add_scheme(scheme)
    return scheme


def unregister_scheme(name: str) -> None:
    """Remove a scheme added with :func:`register_scheme` (tests); built-ins stay."""
    registry.remove_scheme(name)


def scheme_names() -> tuple[str, ...]:
    """Every selectable mode, built-ins first."""
    return registry.scheme_names()


def get_scheme(mode: Any) -> Scheme:
    """The scheme registered as ``mode`` (a name or a ``Mode`` member)."""
    scheme: Scheme = registry.get_scheme(mode)
    return scheme


# Registration order is the order users see in help texts and errors.
for _builtin in (prg.SCHEME, explicit.SCHEME, shamir.SCHEME, plain.SCHEME):
    registry.add_scheme(_builtin, built_in=True)
