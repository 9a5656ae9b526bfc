"""Signed Flower app bundles: only an app a trusted publisher signed runs on a SuperNode.

Flower 1.42's SuperNode verifies app bundles (FABs) against ``--trusted-entities`` (a YAML
map ``key id -> "ssh-ed25519 ..."``), but the signatures it checks only ever come from Flower
Hub: for an app pushed with ``flwr run <dir>`` the SuperLink attaches none, so a SuperNode
with ``--trusted-entities`` refuses every such app ("App verification is not supported by the
connected SuperLink"). This module supplies the signatures from a directory the node
operator holds, in the format the Hub uses, and leaves the check itself to Flower:

* :func:`write_app_key` -- an Ed25519 signing key (OpenSSH, mode 0600), its public key and
  the ``trusted-entities.yaml`` a SuperNode is started with (``ssddl keys app-key``);
* :func:`sign_app` -- a detached signature ``<fab sha256>.sig`` over the bundle that
  ``flwr run`` builds from an app directory (``ssddl keys sign-app``): Ed25519 over the
  8-byte big-endian signing time followed by the bundle's SHA-256, Flower's message;
* :func:`verifications` -- the verification record for a bundle from that directory;
* :func:`run_supernode` -- Flower's ``flower-supernode`` with every fetched bundle given its
  verification record before Flower checks it (``ssddl supernode``).

No key material is printed or logged; signatures and hashes are public.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ssddl.exceptions import ConfigurationError, InvalidKey

__all__ = [
    "SIGNATURE_FORMAT",
    "AppKey",
    "fab_of",
    "key_id_of",
    "run_supernode",
    "sign_app",
    "signed_message",
    "verifications",
    "write_app_key",
]

SIGNATURE_FORMAT = "ssddl-fab-signature/1"
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AppKey:
    """Where :func:`write_app_key` put the signing material (paths and the public key id)."""

    private_key: Path
    public_key: Path
    trusted_entities: Path
    key_id: str


def key_id_of(public_raw: bytes) -> str:
    """The public key's id in ``trusted-entities.yaml``: ``ssddl-`` + 16 hex digits of its
    SHA-256, so a signature names the key that made it."""
    return "ssddl-" + hashlib.sha256(public_raw).hexdigest()[:16]


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_app_key(directory: Path, *, name: str = "app-signing") -> AppKey:
    """Write ``<name>.key`` (OpenSSH Ed25519 private key, 0600), ``<name>.pub`` and
    ``trusted-entities.yaml`` into ``directory`` (which must exist; nothing is overwritten)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(f"--out {str(directory)!r} is not a directory; create it first")
    paths = [directory / f"{name}.key", directory / f"{name}.pub"]
    paths.append(directory / "trusted-entities.yaml")
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise ConfigurationError(
            f"{existing[0]} already exists; keys are never overwritten: use an empty directory"
        )
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    key_id = key_id_of(public.public_bytes_raw())
    _write_new(paths[0], private, 0o600)
    _write_new(paths[1], line + b"\n", 0o644)
    entities = (
        "# trusted app publishers: key id -> public key (flower-supernode --trusted-entities)\n"
        f'{key_id}: "{line.decode()}"\n'
    )
    _write_new(paths[2], entities.encode(), 0o644)
    return AppKey(paths[0], paths[1], paths[2], key_id)


def fab_of(app: Path) -> bytes:
    """The bundle ``flwr run`` pushes for ``app``: Flower's own deterministic build of an app
    directory, or the bytes of a ``.fab`` file."""
    app = Path(app)
    if app.is_file():
        return app.read_bytes()
    if not (app / "pyproject.toml").is_file():
        raise ConfigurationError(
            f"--app {str(app)!r} is neither a .fab file nor a Flower app directory "
            "(no pyproject.toml)"
        )
    from flwr.cli.build import build_fab_from_disk

    return bytes(build_fab_from_disk(app))


def signed_message(fab: bytes, signed_at: int) -> bytes:
    """What the publisher signs: the signing time (8 bytes, big-endian) and the bundle's
    SHA-256 -- Flower's ``create_message_to_sign``."""
    return signed_at.to_bytes(8, "big") + hashlib.sha256(fab).digest()


def _load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"--key {str(path)!r} cannot be read ({exc.strerror}); give the app-signing.key "
            "written by 'ssddl keys app-key'"
        ) from None
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidKey(f"--key {str(path)!r} is not an unencrypted OpenSSH private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidKey(f"--key {str(path)!r} is not an Ed25519 key")
    return key


def sign_app(app: Path, key: Path, out: Path, *, now: int | None = None) -> Path:
    """Sign the bundle of ``app`` with the key file ``key``; write ``<out>/<sha256>.sig``."""
    out = Path(out)
    if not out.is_dir():
        raise ConfigurationError(f"--out {str(out)!r} is not a directory; create it first")
    private = _load_signing_key(key)
    fab = fab_of(app)
    signed_at = int(time.time()) if now is None else now
    signature = private.sign(signed_message(fab, signed_at))
    digest = hashlib.sha256(fab).hexdigest()
    record = {
        "format": SIGNATURE_FORMAT,
        "fab-sha256": digest,
        "public-key-id": key_id_of(private.public_key().public_bytes_raw()),
        "signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
        "signed-at": signed_at,
    }
    path = out / f"{digest}.sig"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def verifications(fab: bytes, directory: Path) -> dict[str, str]:
    """Flower's verification record for ``fab`` from ``<directory>/<sha256>.sig``: ``{key id:
    '{"signature": ..., "signed_at": ...}', "valid_license": "Valid"}``; ``{}`` when there is
    no signature for exactly this bundle. Flower's SuperNode then checks the signature against
    its ``--trusted-entities``; nothing here decides whether the app runs."""
    digest = hashlib.sha256(fab).hexdigest()
    path = Path(directory) / f"{digest}.sig"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("format") != SIGNATURE_FORMAT:
        return {}
    key_id, signature, signed_at = (
        record.get("public-key-id"),
        record.get("signature"),
        record.get("signed-at"),
    )
    if record.get("fab-sha256") != digest or not isinstance(key_id, str):
        return {}
    if not isinstance(signature, str) or not isinstance(signed_at, int):
        return {}
    return {
        key_id: json.dumps({"signature": signature, "signed_at": signed_at}),
        "valid_license": "Valid",
    }


def _with_signatures(pull: Any, directory: Path) -> Any:
    """Flower's ``_pull_and_store_message`` whose ``get_fab`` adds the verification record."""
    from flwr.common.logger import log
    from flwr.supercore.fab import Fab

    def pull_and_store(*args: Any, **kwargs: Any) -> Any:
        get_fab = kwargs["get_fab"]

        def signed_fab(fab_hash: str, run_id: int) -> Fab:
            fab = get_fab(fab_hash, run_id)
            found = verifications(fab.content, directory)
            digest = hashlib.sha256(fab.content).hexdigest()
            if found:
                signer = next(k for k in found if k != "valid_license")
                log(logging.INFO, "ssddl: app bundle %s has a signature by %s; Flower checks it "
                    "against --trusted-entities", digest, signer)  # fmt: skip
            else:
                log(logging.ERROR, "ssddl: app bundle %s has no signature in %s: this SuperNode "
                    "refuses to run it", digest, directory)  # fmt: skip
            return Fab(fab.hash_str, fab.content, {**fab.verifications, **found})

        kwargs["get_fab"] = signed_fab
        return pull(*args, **kwargs)

    return pull_and_store


#: the heartbeat intervals Flower's SuperLink accepts from a SuperNode, in seconds
HEARTBEAT_RANGE = (10.0, 1800.0)


def run_supernode(
    signatures: Path, flower_args: list[str], heartbeat_interval: float | None = None
) -> None:
    """Run Flower's ``flower-supernode`` with ``flower_args`` (which must include
    ``--trusted-entities``), taking app signatures from ``signatures``.

    ``heartbeat_interval`` (seconds, within :data:`HEARTBEAT_RANGE`; Flower's own default is
    30): the interval this SuperNode announces to the SuperLink and heartbeats at. The
    SuperLink declares a node dead after two intervals without a heartbeat and then answers
    the ServerApp's messages to it with an error, so a shorter interval lets a round go on
    sooner after a node vanishes, for one small request every 0.7-0.9 intervals. Flower 1.42
    has no flag for it; this sets the constant its SuperNode reads."""
    low, high = HEARTBEAT_RANGE
    if heartbeat_interval is not None and not low <= heartbeat_interval <= high:
        raise ConfigurationError(
            f"--heartbeat-interval {heartbeat_interval:g} is outside the {low:g} to {high:g} "
            "seconds Flower's SuperLink accepts; give a value in that range"
        )
    signatures = Path(signatures)
    if not signatures.is_dir():
        raise ConfigurationError(
            f"--app-signatures {str(signatures)!r} is not a directory; give the directory "
            "that holds the publisher's <sha256>.sig files"
        )
    flag = "--trusted-entities"
    if not any(a == flag or a.startswith(flag + "=") for a in flower_args):
        raise ConfigurationError(
            "ssddl supernode needs Flower's --trusted-entities FILE after '--' (the "
            "trusted-entities.yaml from 'ssddl keys app-key'); without it no app is checked"
        )
    from flwr.supernode import start_client_internal as internal
    from flwr.supernode.cli.flower_supernode import flower_supernode

    if not callable(getattr(internal, "_pull_and_store_message", None)):  # pinned: flwr 1.42.0
        raise ConfigurationError(
            "ssddl supernode needs flwr 1.42.0 (its SuperNode's message loop is what gets the "
            "signatures); install it with: pip install 'ssddl[flower]'"
        )
    internal._pull_and_store_message = _with_signatures(
        internal._pull_and_store_message, signatures.resolve()
    )
    if heartbeat_interval is not None:
        _set_heartbeat_interval(heartbeat_interval)
    sys.argv = ["flower-supernode", *flower_args]
    flower_supernode()


def _set_heartbeat_interval(seconds: float) -> None:
    """The two places Flower 1.42's SuperNode reads its heartbeat interval: the value it
    announces (activation and every heartbeat) and the sender's own timer."""
    from flwr.supercore import heartbeat
    from flwr.supernode import fleet_http_connection

    for module in (fleet_http_connection, heartbeat):
        if not hasattr(module, "HEARTBEAT_DEFAULT_INTERVAL"):  # pinned: flwr 1.42.0
            raise ConfigurationError(
                "--heartbeat-interval needs flwr 1.42.0; install it with: "
                "pip install 'ssddl[flower]'"
            )
        module.HEARTBEAT_DEFAULT_INTERVAL = seconds  # type: ignore[attr-defined]
