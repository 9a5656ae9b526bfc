"""A mistyped flag, command, choice or TOML key is refused with the fix: "did you mean …?"
(issue 27, item 5). Still one line, exit 2, nothing run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssddl.cli import main
from ssddl.validators import did_you_mean

CASES = [
    (["simulate", "--roundz", "3"], "did you mean '--rounds'?"),
    (["simulate", "--Rounds", "3"], "did you mean '--rounds'?"),
    (["simulate", "--max-coluders", "1"], "did you mean '--max-colluders'?"),
    (["simulte"], "did you mean 'simulate'?"),
    (["simulate", "--mode", "prgg"], "did you mean 'prg'?"),
    (["simulate", "--mode", "shamri"], "did you mean 'shamir'?"),
    (["simulate", "--dataset", "digit"], "did you mean 'digits'?"),
    (["simulate", "--dataset", "mnist-1d"], "did you mean 'mnist1d'?"),
    (["simulate", "--model", "mpl"], "did you mean 'mlp'?"),
    (["audit", "--quik"], "did you mean '--quick'?"),
]


@pytest.mark.parametrize(("argv", "hint"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_a_mistyped_word_names_the_one_meant(argv, hint, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"({hint})")
    assert "Traceback" not in "\n".join(err)


def test_nothing_close_gets_no_guess(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--mode", "quantum-teleport"])
    assert "did you mean" not in capsys.readouterr().err


TOML_CASES = [
    ("[protocol]\nthreshhold = 3\n", "'threshhold' in [protocol] (did you mean 'threshold'?)"),
    ("roundz = 2\n", "'roundz' at the top level (did you mean 'rounds' in [protocol]?)"),
    ("[train]\nrounds = 2\n", "'rounds' in [train] (it belongs in [protocol])"),
    ('mode = "prg"\n', "'mode' at the top level (it belongs in [protocol])"),
    ("[protocl]\nrounds = 2\n", "(did you mean 'protocol'?)"),
    ('[protocol]\nmode = "prgg"\n', "(did you mean 'prg'?)"),
    ('dataset = "digit"\n', "(did you mean 'digits'?)"),
]


@pytest.mark.parametrize(("text", "hint"), TOML_CASES)
def test_a_mistyped_toml_key_or_value_names_the_fix(text, hint, tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert main(["simulate", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and hint in err[0]
    assert not (tmp_path / "run").exists()


def test_did_you_mean_offers_only_a_candidate():
    assert did_you_mean("prgg", ["prg", "shamir"]) == " (did you mean 'prg'?)"
    assert did_you_mean("prg", ["prg", "shamir"]) == ""  # the word itself is no typo
    assert did_you_mean("zzz", ["prg", "shamir"]) == ""
    assert did_you_mean(3, ["prg"]) == ""
    assert did_you_mean("MAX-COLLUDERS", ["max_colluders"]) == " (did you mean 'max_colluders'?)"


@given(st.text(max_size=12), st.lists(st.text(max_size=12), max_size=8))
def test_a_suggestion_is_always_one_of_the_candidates(word, candidates):
    hint = did_you_mean(word, candidates)
    assert hint == "" or any(hint == f" (did you mean {c!r}?)" for c in candidates)
