"""Throw-away TLS material and SuperNode keys: what Flower needs, checked with cryptography."""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ssddl.exceptions import ConfigurationError
from ssddl.runtime.flower.certs import make_node_key, make_tls_material

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def test_server_certificate_is_signed_by_the_ca_for_127_0_0_1(tmp_path: Path) -> None:
    tls = make_tls_material(tmp_path, now=NOW, valid_days=3)
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert server.not_valid_before_utc == NOW - datetime.timedelta(minutes=1)
    assert server.not_valid_after_utc == NOW + datetime.timedelta(days=3)
    key = serialization.load_pem_private_key(tls.server_key.read_bytes(), password=None)
    assert key.public_key().public_numbers() == server.public_key().public_numbers()  # type: ignore[union-attr]
    assert stat.S_IMODE(tls.server_key.stat().st_mode) == 0o600


def test_python_tls_accepts_the_chain(tmp_path: Path) -> None:
    tls = make_tls_material(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tls.server_cert, tls.server_key)  # key matches the cert
    client_ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    assert client_ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(client_ctx.get_ca_certs()) == 1


def test_node_key_is_p384_in_openssh_format(tmp_path: Path) -> None:
    pair = make_node_key(tmp_path, "supernode_1")
    private = serialization.load_ssh_private_key(pair.private_key.read_bytes(), password=None)
    public = serialization.load_ssh_public_key(pair.public_key.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp384r1"
    assert private.public_key().public_numbers() == public.public_numbers()
    assert pair.public_key.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    other = make_node_key(tmp_path, "supernode_2")
    assert other.public_key.read_bytes() != pair.public_key.read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"host": "localhost"}, "host"),
        ({"valid_days": 0}, "valid_days"),
        ({"now": datetime.datetime(2026, 1, 1)}, "timezone"),
    ],
)
def test_bad_tls_arguments(tmp_path: Path, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        make_tls_material(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_bad_node_key_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="name"):
        make_node_key(tmp_path, "../escape")
    with pytest.raises(ConfigurationError, match="does not exist"):
        make_node_key(tmp_path / "missing", "n1")
