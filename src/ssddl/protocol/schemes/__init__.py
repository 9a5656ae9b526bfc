"""ParaShare as pluggable schemes: one module per sharing mode, found through a registry.

A scheme (:class:`~ssddl.protocol.schemes.base.Scheme`) gives both sides of one sharing mode:
the participant's contribution and what it does with deliveries, the server's checks of the
scheme's messages and the end of each of its phases, and the stage tables of both. The
participant and the server call the scheme; neither names a mode. Adding a mode is adding a
module that calls :func:`register_scheme` — see ``tests/protocol/test_toy_scheme.py``.
"""

from __future__ import annotations

from typing import Any

from ssddl.exceptions import ConfigurationError
from ssddl.protocol.schemes.base import Scheme

__all__ = ["Scheme", "get_scheme", "register_scheme", "scheme_names", "unregister_scheme"]

_REGISTRY: dict[str, Scheme] = {}
_BUILTINS_LOADED = False


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    # Registration order is the order users see in help texts and errors.
    from ssddl.protocol.schemes import explicit, plain, prg, shamir

    for module in (prg, explicit, shamir, plain):
        register_scheme(module.SCHEME)


def register_scheme(scheme: Scheme) -> Scheme:
    """Make ``scheme`` selectable as ``ProtocolConfig(mode=scheme.name)``."""
    if not isinstance(scheme, Scheme):
        raise ConfigurationError("register_scheme takes a Scheme instance")
    name = scheme.name
    if not isinstance(name, str) or not name or not name.replace("-", "").isalnum():
        raise ConfigurationError(f"scheme name {name!r} must be a short alphanumeric word")
    if _REGISTRY.get(name, scheme) is not scheme:
        raise ConfigurationError(f"a scheme named {name!r} is already registered")
    _REGISTRY[name] = scheme
    return scheme


def unregister_scheme(name: str) -> None:
    """Remove a scheme added with :func:`register_scheme` (tests); built-ins stay."""
    _load_builtins()
    if name in ("prg", "explicit", "shamir", "plain"):
        raise ConfigurationError(f"the built-in scheme {name!r} cannot be removed")
    _REGISTRY.pop(name, None)


def scheme_names() -> tuple[str, ...]:
    """Every selectable mode, built-ins first."""
    _load_builtins()
    return tuple(_REGISTRY)


def get_scheme(mode: Any) -> Scheme:
    """The scheme registered as ``mode`` (a name or a ``Mode`` member)."""
    _load_builtins()
    name = getattr(mode, "value", mode)
    scheme = _REGISTRY.get(name) if isinstance(name, str) else None
    if scheme is None:
        choices = ", ".join(repr(n) for n in _REGISTRY)
        raise ConfigurationError(f"mode={name!r} is not one of {choices}")
    return scheme
