"""The modes by name: which sharing scheme ``ProtocolConfig(mode=name)`` selects.

The registry knows names and objects, nothing of what a scheme is, so every module can ask
it — the configuration, the stage tables and the participant's policy too, which the
schemes themselves are built on — without an import circle. A scheme is checked and added
by :func:`ssddl.protocol.schemes.register_scheme`; importing :mod:`ssddl.protocol` (which
every import of one of its modules does first) registers the built-in ones, so the registry
is full before anything looks a mode up.

What a registered scheme is (:class:`~ssddl.protocol.schemes.base.Scheme`) is checked when it
is registered; this module imports nothing of the protocol, so it hands schemes out untyped.
"""

from __future__ import annotations

from typing import Any

from ssddl.exceptions import ConfigurationError
from ssddl.validators import did_you_mean

__all__ = ["add_scheme", "get_scheme", "remove_scheme", "scheme_names", "secure_built_ins"]

_SCHEMES: dict[str, Any] = {}
_BUILT_IN: set[str] = set()


def add_scheme(scheme: Any, *, built_in: bool = False) -> None:
    """Make ``scheme`` selectable by its ``name`` (a short word, not taken by another)."""
    name = getattr(scheme, "name", None)
    if not isinstance(name, str) or not name or not name.replace("-", "").isalnum():
        raise ConfigurationError(f"scheme name {name!r} must be a short alphanumeric word")
    if _SCHEMES.get(name, scheme) is not scheme:
        raise ConfigurationError(f"a scheme named {name!r} is already registered")
    _SCHEMES[name] = scheme
    if built_in:
        _BUILT_IN.add(name)


def remove_scheme(name: str) -> None:
    """Forget a scheme added without ``built_in`` (tests); built-ins stay."""
    if name in _BUILT_IN:
        raise ConfigurationError(f"the built-in scheme {name!r} cannot be removed")
    _SCHEMES.pop(name, None)


def scheme_names() -> tuple[str, ...]:
    """Every selectable mode, in the order they were added (built-ins first)."""
    return tuple(_SCHEMES)


def secure_built_ins() -> tuple[str, ...]:
    """The built-in schemes that hide a member's change (``secure``), in registration order:
    what a participant's policy accepts unless it lists its modes."""
    return tuple(n for n in _SCHEMES if n in _BUILT_IN and getattr(_SCHEMES[n], "secure", False))


def get_scheme(mode: Any) -> Any:
    """The scheme registered as ``mode`` (a name or a ``Mode`` member)."""
    name = getattr(mode, "value", mode)
    scheme = _SCHEMES.get(name) if isinstance(name, str) else None
    if scheme is None:
        choices = ", ".join(repr(n) for n in _SCHEMES)
        raise ConfigurationError(
            f"mode={name!r} is not one of {choices}{did_you_mean(name, _SCHEMES)}"
        )
    return scheme
