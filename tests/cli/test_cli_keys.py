"""``ssddl keys gen`` and ``ssddl keys certs``: the files, their modes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from ssddl.cli import main
from ssddl.runtime.keyfiles import load_identity, load_roster


def test_gen_writes_private_keys_and_the_matching_roster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "gen", "--participants", "3", "--out", str(tmp_path)]) == 0
    roster = load_roster(tmp_path / "roster.json")
    assert sorted(roster) == [1, 2, 3]
    for pid in roster:
        key = tmp_path / f"participant-{pid}.key"
        assert key.stat().st_mode & 0o777 == 0o600
        assert load_identity(key).public_bytes == roster[pid]
    assert len(set(roster.values())) == 3
    printed = capsys.readouterr().out
    assert "BEGIN" not in printed and printed.count("\n") == 4


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["keys", "gen", "--participants", "0"], "--participants"),
        (["keys", "gen", "--participants", "2", "--out", "/proc/ssddl-nope/x"], "--out"),
        (["keys", "certs", "--out", "/proc/ssddl-nope/x"], "--out"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_gen_creates_its_directory_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "new" / "keys"  # README's `ssddl keys gen --out keys`, in a fresh place
    assert main(["keys", "gen", "--participants", "2", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o700
    assert (out / "participant-2.key").stat().st_mode & 0o777 == 0o600
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["keys", "gen", "--participants", "2", "--out", str(afile)]) == 2


def test_gen_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "gen", "--participants", "1", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "participant-1.key").read_bytes()
    assert main(["keys", "gen", "--participants", "1", "--out", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "participant-1.key").read_bytes() == before


def test_certs_writes_tls_material_and_supernode_keys(tmp_path: Path) -> None:
    assert main(["keys", "certs", "--out", str(tmp_path), "--supernodes", "2"]) == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "supernode-2.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    assert main(["keys", "certs", "--out", str(tmp_path)]) == 2
