"""Identity keys and the roster as files, for participants on separate machines.

``ssddl keys gen`` writes one Ed25519 identity key per participant
(``participant-<id>.key``, PKCS#8 PEM, mode 0600) and ``roster.json``, the public roster
every party loads: ``{"format": "ssddl-roster/1", "participants": {"<id>": "<hex>"}}``.
A participant's protocol id is the roster entry that holds its own public key, so a key file
is all a node needs to know who it is. Keys come from the operating system's CSPRNG.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ssddl.exceptions import ConfigurationError, InvalidKey
from ssddl.hazmat.keys import IdentityKey
from ssddl.hazmat.rand import OsRandom, RandomSource
from ssddl.protocol.messages import MAX_ID
from ssddl.validators import check_int

__all__ = [
    "ROSTER_FORMAT",
    "KeyFiles",
    "identity_file",
    "load_identity",
    "load_roster",
    "participant_id",
    "write_identities",
]

ROSTER_FORMAT = "ssddl-roster/1"
_KEY_SIZE = 32


@dataclass(frozen=True)
class KeyFiles:
    """Where :func:`write_identities` put the keys (paths only, no key material)."""

    keys: dict[int, Path]
    roster: Path


def identity_file(directory: Path, participant: int) -> Path:
    return Path(directory) / f"participant-{participant}.key"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_identities(
    directory: Path, participants: int, *, source: RandomSource | None = None
) -> KeyFiles:
    """Write ``participants`` fresh identity keys and ``roster.json`` into ``directory``
    (which must exist and hold none of these files: keys are never overwritten)."""
    check_int(participants, "participants", low=1, high=MAX_ID)
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(f"--out {str(directory)!r} is not a directory; create it first")
    roster_path = directory / "roster.json"
    paths = {p: identity_file(directory, p) for p in range(1, participants + 1)}
    existing = [str(p) for p in (roster_path, *paths.values()) if p.exists()]
    if existing:
        raise ConfigurationError(
            f"{existing[0]} already exists; keys are never overwritten: use an empty directory"
        )
    source = source if source is not None else OsRandom()
    roster: dict[str, str] = {}
    for pid, path in paths.items():
        key = Ed25519PrivateKey.from_private_bytes(source.random_bytes(_KEY_SIZE))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(path, pem)
        roster[str(pid)] = key.public_key().public_bytes_raw().hex()
    roster_path.write_text(
        json.dumps({"format": ROSTER_FORMAT, "participants": roster}, indent=2) + "\n"
    )
    return KeyFiles(paths, roster_path)


def load_identity(path: Path | str) -> IdentityKey:
    """A participant's identity key from its PEM file; refused if others may read it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"identity key {str(path)!r} cannot be read ({exc.strerror}); give the path "
            "of a participant-<id>.key file written by 'ssddl keys gen'"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"identity key {str(path)!r} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InvalidKey(
            f"identity key {str(path)!r} is not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidKey(f"identity key {str(path)!r} is not an Ed25519 key")
    return IdentityKey(key)


def load_roster(path: Path | str) -> dict[int, bytes]:
    """The roster ``{participant id: 32-byte Ed25519 public key}`` of a roster file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigurationError(
            f"roster {str(path)!r} cannot be read ({exc.strerror}); give the roster.json "
            "written by 'ssddl keys gen'"
        ) from None
    except ValueError:
        raise ConfigurationError(f"roster {str(path)!r} is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != ROSTER_FORMAT:
        raise ConfigurationError(
            f'roster {str(path)!r} lacks "format": {ROSTER_FORMAT!r}; write it with '
            "'ssddl keys gen'"
        )
    entries = data.get("participants")
    if not isinstance(entries, dict) or not entries:
        raise ConfigurationError(f'roster {str(path)!r} has no "participants" table')
    roster: dict[int, bytes] = {}
    for key, value in entries.items():
        try:
            pid = int(key)
            public = bytes.fromhex(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"roster {str(path)!r}: entry {key!r} must map an id to a hex public key"
            ) from None
        if not 1 <= pid <= MAX_ID or len(public) != _KEY_SIZE:
            raise ConfigurationError(
                f"roster {str(path)!r}: entry {key!r} needs an id in [1, {MAX_ID}] and a "
                f"{_KEY_SIZE}-byte key"
            )
        roster[pid] = public
    if len(set(roster.values())) != len(roster):
        raise ConfigurationError(f"roster {str(path)!r} lists one public key twice")
    return dict(sorted(roster.items()))


def participant_id(identity: IdentityKey, roster: dict[int, bytes]) -> int:
    """The protocol id whose roster entry is ``identity``'s public key."""
    public = identity.public_bytes
    for pid, entry in roster.items():
        if entry == public:
            return pid
    raise ConfigurationError(
        "this node's identity key is not in the roster; use the roster.json written with it"
    )
