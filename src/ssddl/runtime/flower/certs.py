"""Throw-away TLS material and SuperNode keys for running Flower on one machine.

:func:`make_tls_material` writes a self-signed CA and a server certificate for
``127.0.0.1`` (what ``flower-superlink --ssl-*`` and ``flower-supernode
--root-certificates`` / ``flwr`` take); :func:`make_node_key` writes a SuperNode
authentication key pair (EC P-384 in OpenSSH format, registered with ``flwr supernode
register``). Both use the ``cryptography`` package and the operating system's CSPRNG. The
clock is an argument so that tests can pin it. Private keys are written with mode 0600.

These are for tests, demos and a first deployment on one machine; a real federation uses
certificates from its own CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ssddl.exceptions import ConfigurationError

__all__ = ["NodeKey", "TLSMaterial", "make_node_key", "make_tls_material"]

_CURVE = ec.SECP384R1


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of the files :func:`make_tls_material` wrote (no key material in memory)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class NodeKey:
    """Paths of a SuperNode's authentication key pair (OpenSSH formats)."""

    private_key: Path
    public_key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _check_directory(directory: Path) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(
            f"directory {str(directory)!r} does not exist; create it before writing keys into it"
        )
    return directory


def make_tls_material(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    valid_days: int = 7,
    now: datetime.datetime | None = None,
) -> TLSMaterial:
    """Write ``ca.crt``, ``server.pem`` and ``server.key`` into ``directory``.

    The server certificate is signed by the fresh CA and names ``host`` (an IP address) as
    its subject alternative name, which is what Flower's clients verify. ``now`` defaults to
    the current UTC time; certificates are valid from one minute before it.
    """
    directory = _check_directory(directory)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigurationError(
            f"host must be an IP address such as '127.0.0.1', got {host!r}"
        ) from None
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days < 1:
        raise ConfigurationError(f"valid_days must be a positive integer, got {valid_days!r}")
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif now.tzinfo is None:
        raise ConfigurationError("now must be timezone-aware (e.g. datetime.timezone.utc)")
    not_before = now - datetime.timedelta(minutes=1)
    not_after = now + datetime.timedelta(days=valid_days)

    ca_key = ec.generate_private_key(_CURVE())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ssddl throw-away CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )

    server_key = ec.generate_private_key(_CURVE())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(address)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )

    pem = serialization.Encoding.PEM
    material = TLSMaterial(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
    )
    material.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    material.server_cert.write_bytes(server_cert.public_bytes(pem))
    _write_private(
        material.server_key,
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return material


def make_node_key(directory: Path, name: str) -> NodeKey:
    """Write ``<name>`` (private) and ``<name>.pub`` (public): an EC P-384 key pair in
    OpenSSH format, the SuperNode authentication key Flower expects."""
    directory = _check_directory(directory)
    if not name or name != Path(name).name or name.startswith("."):
        raise ConfigurationError(
            f"name must be a plain file name such as 'supernode_1', got {name!r}"
        )
    key = ec.generate_private_key(_CURVE())
    pair = NodeKey(private_key=directory / name, public_key=directory / f"{name}.pub")
    _write_private(
        pair.private_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    pair.public_key.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return pair
