"""ParaShare as pluggable schemes: one module per sharing mode, found through a registry.

A scheme (:class:`~ssddl.protocol.schemes.base.Scheme`) gives both sides of one sharing mode:
the participant's contribution and what it does with deliveries, the server's checks of the
scheme's messages and the end of each of its phases, and the stage tables of both. The
participant and the server call the scheme; neither names a mode. Adding a mode is adding a
module that calls :func:`register_scheme`, which also registers the scheme's own message
kinds (``Scheme.messages``) and server stages (``Scheme.stages``) — see
``docs/writing-a-scheme.md`` and ``tests/protocol/test_plugin_scheme.py``, which adds a scheme
with a message kind of its own from the test file alone.

Importing this package registers the built-in schemes in :mod:`ssddl.protocol.registry`
(:mod:`ssddl.protocol` imports it, so they are there before any mode is looked up).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ssddl.protocol.registry as registry
from ssddl.exceptions import ConfigurationError
from ssddl.protocol.messages import (
    MESSAGE_TYPES,
    Message,
    register_message,
    unregister_message,
)
from ssddl.protocol.schemes import explicit, plain, prg, shamir
from ssddl.protocol.schemes.base import Scheme
from ssddl.protocol.stages import BaseServerStage, register_stages, unregister_stages

__all__ = ["Scheme", "get_scheme", "register_scheme", "scheme_names", "unregister_scheme"]


def register_scheme(scheme: Scheme) -> Scheme:
    """Make ``scheme`` selectable as ``ProtocolConfig(mode=scheme.name)``, with its own
    message kinds and server stages. All or nothing: a name, kind code or stage value that
    is taken is refused (ConfigurationError) and nothing of the scheme is registered."""
    if not isinstance(scheme, Scheme):
        raise ConfigurationError("register_scheme takes a Scheme instance")
    if scheme.name in registry.scheme_names():
        if registry.get_scheme(scheme.name) is scheme:
            return scheme  # registered already: nothing to do
        raise ConfigurationError(f"a scheme named {scheme.name!r} is already registered")
    added: list[type[Message]] = []
    stages: type[BaseServerStage] | None = None
    try:
        for cls in scheme.messages:
            if cls in MESSAGE_TYPES.values():
                raise ConfigurationError(
                    f"{cls.__name__} is registered already; Scheme.messages lists only the "
                    f"scheme's own message classes"
                )
            register_message(cls)
            added.append(cls)
        if scheme.stages is not None:
            register_stages(scheme.stages)  # refuses stages registered already
            stages = scheme.stages
        registry.add_scheme(scheme)
    except ConfigurationError:
        _forget(added, stages)  # only what this call added
        raise
    return scheme


def _forget(messages: Iterable[type[Message]], stages: type[BaseServerStage] | None) -> None:
    for cls in messages:
        unregister_message(cls)
    if stages is not None:
        unregister_stages(stages)


def unregister_scheme(name: str) -> None:
    """Remove a scheme added with :func:`register_scheme`, its message kinds and stages
    (tests); built-ins stay."""
    if name not in registry.scheme_names():
        return
    scheme = get_scheme(name)
    registry.remove_scheme(name)  # refuses a built-in before anything goes
    _forget(scheme.messages, scheme.stages)


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
