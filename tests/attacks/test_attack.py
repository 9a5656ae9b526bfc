"""The one interface every attack sits behind: the registry, the outcome and its row."""

from __future__ import annotations

import csv
import io

import pytest

from ssddl.attacks import (
    Attack,
    AttackOutcome,
    attack_names,
    expected_at,
    get_attack,
    register_attack,
    unregister_attack,
)
from ssddl.attacks.attack import ROW_FIELDS
from ssddl.attacks.coalition import CoalitionRow
from ssddl.attacks.server import AttackRow, late_upload
from ssddl.exceptions import ConfigurationError

BUILT_IN = (
    "first-layer",
    "gradient-inversion",
    "aggregate",
    "dp-aggregate",
    "empirical-epsilon",
    "coalition",
    "stated-bounds",
    "policy",
    "model-inconsistency",
    "phong-shared-key",
)


def test_the_audits_attacks_are_registered_in_the_order_it_runs_them():
    assert attack_names()[: len(BUILT_IN)] == BUILT_IN
    for name in BUILT_IN:
        attack = get_attack(name)
        assert isinstance(attack, Attack) and attack.name == name
        assert attack.guarantee and attack.adversary


def test_the_registry_refuses_what_it_cannot_run_by_name():
    class Nameless:
        name = ""
        guarantee = adversary = "x"

        def run(self, context):
            return []

    with pytest.raises(ConfigurationError, match="run\\(context\\)"):
        register_attack(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty"):
        register_attack(Nameless())
    with pytest.raises(ConfigurationError, match="'coalition' is already registered"):
        register_attack(get_attack("coalition"))
    with pytest.raises(ConfigurationError, match="audit's own attacks; it stays"):
        unregister_attack("coalition")
    with pytest.raises(ConfigurationError, match="no attack named 'nope'; registered: first"):
        get_attack("nope")


def test_an_outcome_holds_when_it_agrees_with_its_guarantee():
    def outcome(succeeded, expected):
        return AttackOutcome("a", "prg", succeeded, expected)

    assert outcome(False, False).holds and outcome(True, True).holds
    assert outcome(True, None).holds and outcome(False, None).holds
    assert not outcome(True, False).holds and not outcome(False, True).holds
    assert [expected_at(c, 2) for c in (0, 2, 3)] == [False, False, True]
    assert expected_at(0, None)  # no bound stated: nothing protects the target
    with pytest.raises(ConfigurationError, match="expected must be True, False or None"):
        AttackOutcome("a", "prg", True, 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="attack name and a setting"):
        AttackOutcome("a", "", True, None)
    with pytest.raises(ConfigurationError, match="succeeded must be a bool, got int"):
        AttackOutcome("a", "prg", 1, None)  # type: ignore[arg-type]


def test_a_row_is_flat_starts_with_the_common_fields_and_keeps_them_over_measured():
    o = AttackOutcome(
        "a",
        "prg",
        True,
        False,
        colluders=3,
        bound=2,
        measured={"succeeded": "not this", "psnr": 31.5, "n": 5},
    )
    row = o.as_row()
    assert tuple(row)[: len(ROW_FIELDS)] == ROW_FIELDS
    assert row["succeeded"] is True and row["holds"] is False
    assert (row["psnr"], row["n"]) == (31.5, 5)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    assert out.getvalue().splitlines()[0].startswith("attack,setting,target,server,colluders")
    assert "with 3 colluders succeeded; it must fail (stated bound 2)" in o.failure()


def test_the_attacks_own_rows_keep_their_verdicts_as_outcomes():
    result = late_upload("unsafe-reveal-keys")  # the control: this recovery leaks
    row = AttackRow(result.name, "prg", "lying", 0, None, result.unmasked, None, "")
    outcome = row.outcome()
    assert outcome.succeeded and outcome.expected and outcome.holds == row.holds
    assert AttackRow.from_outcome(outcome) == row
    within = AttackRow("x", "prg", "lying", 1, 1, True, None, "")
    assert not within.outcome().holds and not within.holds
    inside = CoalitionRow("prg", 1, (5,), False, 1.0, 0.5, 0.5, 0.5, bound=2)
    beyond = CoalitionRow("prg", 4, (2, 3, 4, 5), True, 0.0, 0.5, 0.0, 0.0, bound=2)
    distinguished = CoalitionRow("prg", 2, (4, 5), False, 1.0, 0.5, 0.5, 1e-9, bound=2)
    assert inside.outcome(5).holds and beyond.outcome(5).holds
    assert not distinguished.outcome(5).holds  # told apart from uniform within the bound
    assert (
        CoalitionRow("prg", 3, (3, 4, 5), False, 1.0, 0.5, 0.5, 0.5, 2).outcome(5).expected is None
    )
