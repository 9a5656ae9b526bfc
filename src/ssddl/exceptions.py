"""The named exceptions of ssddl.

Every error that a caller can act on is one of these. Messages say what was wrong and what to
do about it; they never contain a key, a seed, a share, a mask or a raw update.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ForwardSecurityError",
    "GroupTooSmall",
    "InvalidCiphertext",
    "InvalidKey",
    "InvalidSignature",
    "KeyCompromise",
    "MalformedMessage",
    "NonFiniteError",
    "PolicyViolation",
    "ProtocolError",
    "ReplayedMessage",
    "SSDDLError",
    "SecurityWarning",
    "ShareError",
    "UnexpectedMessage",
    "UnknownSender",
    "ValidationError",
]


class SSDDLError(Exception):
    """Base class of every error ssddl raises on purpose."""


class SecurityWarning(UserWarning):
    """A configuration weaker than it could be, with what that costs (one line)."""


class ConfigurationError(SSDDLError, ValueError):
    """A configuration value is out of range or the values do not fit together
    (for example a fixed-point ring too small for the number of summands)."""


class NonFiniteError(SSDDLError, ValueError):
    """An array that must be finite holds NaN or ±Inf."""


class InvalidKey(SSDDLError, ValueError):
    """A public key is malformed, of the wrong length, or of low order."""


class InvalidSignature(SSDDLError):
    """A signature does not verify under the signer's identity key."""


class InvalidCiphertext(SSDDLError):
    """An AEAD ciphertext failed to authenticate: tampered, truncated, or addressed to
    another session, round, sender or receiver."""


class ShareError(SSDDLError, ValueError):
    """Shares cannot be made or combined: duplicate or zero evaluation points, too few
    shares, shapes or dtypes that do not match."""


class ForwardSecurityError(SSDDLError):
    """A forward-secure generator was asked for a round whose state is already erased."""


class MalformedMessage(SSDDLError, ValueError):
    """A wire message could not be decoded, or a decoded message has fields out of range."""


class ProtocolError(SSDDLError):
    """A message or event does not fit the protocol state."""


class UnexpectedMessage(ProtocolError):
    """A message arrived in a stage that does not accept it (out of order)."""


class UnknownSender(ProtocolError):
    """A message came from a participant that is not registered, or not in the round's group."""


class ReplayedMessage(ProtocolError):
    """A message repeats one already accepted, or belongs to a round that is over."""


class PolicyViolation(ProtocolError):
    """The server asked for something outside the participant's own policy (a mode, a
    threshold, a group size, a recovery or a round number it does not accept)."""


class GroupTooSmall(ProtocolError):
    """Fewer participants than the configured minimum are available for a round."""


class KeyCompromise(ProtocolError):
    """Two parties proved possession of one participant's identity key: the key was copied,
    and the session must not start until that participant has a new key."""


class ValidationError(SSDDLError):
    """Validation mode found a secure aggregate that differs from the plaintext sum: a bug
    in a scheme or a runtime, never a user's mistake."""
