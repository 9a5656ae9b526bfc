"""Signed app bundles: the signing material ``ssddl keys app-key`` writes, the signature
``ssddl keys sign-app`` makes, and Flower 1.42's own verification (``_verify_fab``, the code
a SuperNode started with ``--trusted-entities`` runs) accepting exactly the bundle that was
signed by a trusted key. The SuperNodes refusing a differently signed app in a real
deployment is ``tests/flower/test_flower_deploy_script.py``."""

from __future__ import annotations

import importlib
import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flwr", reason="needs the 'flower' extra: pip install -e '.[flower]'")

import yaml
from flwr.supercore.fab import Fab
from flwr.supernode.start_client_internal import _verify_fab

from ssddl.cli import main
from ssddl.exceptions import ConfigurationError, InvalidKey
from ssddl.runtime import appsign

APP = Path(__file__).resolve().parents[2] / "examples" / "flower-app"


def _entities(key: appsign.AppKey) -> dict[str, str]:
    loaded = yaml.safe_load(key.trusted_entities.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _fab(content: bytes, directory: Path) -> Fab:
    import hashlib

    found = appsign.verifications(content, directory)
    return Fab(hashlib.sha256(content).hexdigest(), content, found)


@pytest.fixture
def publisher(tmp_path: Path) -> appsign.AppKey:
    (tmp_path / "pub").mkdir()
    return appsign.write_app_key(tmp_path / "pub")


def test_app_key_files_are_what_flower_reads(publisher: appsign.AppKey) -> None:
    assert stat.S_IMODE(publisher.private_key.stat().st_mode) == 0o600
    assert publisher.private_key.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    entities = _entities(publisher)
    assert list(entities) == [publisher.key_id]
    assert entities[publisher.key_id] == publisher.public_key.read_text().strip()
    assert entities[publisher.key_id].startswith("ssh-ed25519 ")
    with pytest.raises(ConfigurationError, match="never overwritten"):
        appsign.write_app_key(publisher.private_key.parent)


def test_flower_accepts_exactly_the_signed_bundle_from_a_trusted_key(
    tmp_path: Path, publisher: appsign.AppKey
) -> None:
    sigs = tmp_path / "sigs"
    sigs.mkdir()
    path = appsign.sign_app(APP, publisher.private_key, sigs, now=1_800_000_000)
    content = appsign.fab_of(APP)
    record = json.loads(path.read_text())
    assert path.name == f"{record['fab-sha256']}.sig"
    assert record["public-key-id"] == publisher.key_id and record["signed-at"] == 1_800_000_000
    fab = _fab(content, sigs)
    assert fab.verifications["valid_license"] == "Valid"
    assert _verify_fab(fab, _entities(publisher)) is True
    # the same bundle, a SuperNode that trusts another publisher
    (tmp_path / "other").mkdir()
    other = appsign.write_app_key(tmp_path / "other")
    assert _verify_fab(fab, _entities(other)) is False
    # one byte changed: no signature for that bundle at all
    assert appsign.verifications(content + b"\0", sigs) == {}
    # a copied signature under the changed bundle's name does not verify either
    changed = content + b"\0"
    forged = sigs / f"{_fab(changed, tmp_path).hash_str}.sig"
    forged.write_text(path.read_text().replace(record["fab-sha256"], forged.stem))
    assert _verify_fab(_fab(changed, sigs), _entities(publisher)) is False


def test_a_signature_for_another_bundle_is_not_used(tmp_path: Path) -> None:
    digest = "0" * 64
    (tmp_path / f"{digest}.sig").write_text(json.dumps({"format": appsign.SIGNATURE_FORMAT}))
    assert appsign.verifications(b"bundle", tmp_path) == {}
    (tmp_path / "x.sig").write_text("not json")
    assert appsign.verifications(b"x", tmp_path) == {}


def test_the_supernode_hook_adds_the_record_to_every_fetched_bundle(
    tmp_path: Path, publisher: appsign.AppKey
) -> None:
    appsign.sign_app(APP, publisher.private_key, tmp_path, now=1)
    content = appsign.fab_of(APP)
    seen: list[Fab] = []

    def pull(**kwargs: Any) -> int:
        seen.append(kwargs["get_fab"]("hash", 7))
        seen.append(kwargs["get_fab"]("hash", 8))
        return 7

    served = iter([Fab("hash", content, {}), Fab("hash", b"unsigned", {})])
    hooked = appsign._with_signatures(pull, tmp_path)
    assert hooked(get_fab=lambda h, r: next(served), state=None) == 7
    signed, unsigned = seen
    assert _verify_fab(signed, _entities(publisher)) is True
    assert unsigned.verifications == {}  # Flower then refuses it: no "valid_license"


def test_signing_refuses_bad_input(tmp_path: Path, publisher: appsign.AppKey) -> None:
    with pytest.raises(ConfigurationError, match="not a directory"):
        appsign.sign_app(APP, publisher.private_key, tmp_path / "missing")
    with pytest.raises(InvalidKey, match="not an unencrypted OpenSSH private key"):
        appsign.sign_app(APP, publisher.public_key, tmp_path)
    with pytest.raises(ConfigurationError, match=r"neither a \.fab file nor a Flower app"):
        appsign.sign_app(tmp_path, publisher.private_key, tmp_path)


def test_cli_app_key_sign_app_and_supernode_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "s").mkdir()
    assert main(["keys", "app-key", "--out", str(tmp_path / "k")]) == 0
    key = str(tmp_path / "k" / "app-signing.key")
    sign = ["keys", "sign-app", "--app", str(APP), "--key", key, "--out", str(tmp_path / "s")]
    assert main(sign) == 0
    out = capsys.readouterr().out
    assert "BEGIN" not in out and out.count(".sig") == 1  # paths only, never key material
    assert main(["supernode", "--app-signatures", str(tmp_path / "s"), "--", "--insecure"]) == 2
    assert "needs Flower's --trusted-entities" in capsys.readouterr().err
    assert main(["supernode", "--app-signatures", str(tmp_path / "no"), "--"]) == 2
    assert "--app-signatures" in capsys.readouterr().err
    assert main(["keys", "app-key", "--out", str(tmp_path / "k")]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_the_heartbeat_interval_reaches_flowers_supernode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ssddl supernode --heartbeat-interval S`` sets what Flower's SuperNode announces and
    its heartbeat timer (both read the module constant at call time); Flower's own default is
    kept without the flag; a value the SuperLink would refuse is refused here, exit 2."""
    from flwr.supercore import heartbeat
    from flwr.supernode import fleet_http_connection
    from flwr.supernode import start_client_internal as internal

    cli = importlib.import_module("flwr.supernode.cli.flower_supernode")

    (tmp_path / "s").mkdir()
    seen: list[tuple[float, float, list[str]]] = []

    def fake() -> None:
        seen.append((fleet_http_connection.HEARTBEAT_DEFAULT_INTERVAL,
                     heartbeat.HEARTBEAT_DEFAULT_INTERVAL, list(sys.argv)))  # fmt: skip

    monkeypatch.setattr(cli, "flower_supernode", fake)
    monkeypatch.setattr(internal, "_pull_and_store_message", internal._pull_and_store_message)
    for module in (fleet_http_connection, heartbeat):  # restored after the test
        monkeypatch.setattr(module, "HEARTBEAT_DEFAULT_INTERVAL", 30)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    base = ["supernode", "--app-signatures", str(tmp_path / "s")]
    flower = ["--", "--trusted-entities", "t.yaml", "--insecure"]
    assert main([*base, *flower]) == 0
    assert main([*base, "--heartbeat-interval", "10", *flower]) == 0
    assert [s[:2] for s in seen] == [(30, 30), (10.0, 10.0)]
    assert seen[1][2] == ["flower-supernode", "--trusted-entities", "t.yaml", "--insecure"]
    for bad in ("5", "1801", "nan"):
        assert main([*base, "--heartbeat-interval", bad, *flower]) == 2
        err = capsys.readouterr().err
        assert "--heartbeat-interval" in err and "10 to 1800" in err, err
        assert len(err.strip().splitlines()) == 1
    assert len(seen) == 2
