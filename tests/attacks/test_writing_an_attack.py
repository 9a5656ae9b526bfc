"""docs/writing-an-attack.md, step by step: a new attack defined in this file alone, against
a real prg session, registered, and collected by the audit's entry point — failing at its
stated bound and succeeding one colluder beyond it (the control)."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from ssddl.attacks import (
    AttackContext,
    AttackOutcome,
    AuditConfig,
    attack_names,
    expected_at,
    register_attack,
    unregister_attack,
)
from ssddl.attacks.audit import run_audit
from ssddl.hazmat.codec import ring_sub, ring_sum

PAGE = Path(__file__).resolve().parents[2] / "docs" / "writing-an-attack.md"


class SumMinusOwn:
    """The server plus c colluders: the aggregate minus the colluders' own updates."""

    name = "sum-minus-own"
    guarantee = (
        "a coalition of c members learns only the sum of the others' changes "
        "while the round has at least c + 2 contributors"
    )
    adversary = "an honest-but-curious server plus c colluders who know their own updates"

    def bound(self, contributors: int) -> int:
        """The largest coalition the guarantee covers: c + 2 <= contributors."""
        return contributors - 2

    def run(self, context: AttackContext) -> list[AttackOutcome]:
        run = context.recorded("prg")  # a real prg session of the audit's victims
        n = len(run.participants)  # every member contributed to round 0
        target = 1
        bound = self.bound(n)
        outcomes = []
        for c in (bound, bound + 1):  # at the bound, and the control one beyond it
            if c > n - 1:
                break  # a coalition leaves the target out
            colluders = tuple(range(n - c + 1, n + 1))  # the highest ids
            view = run.coalition(colluders)  # the server's view plus the colluders' states
            own = ring_sum([view.member(q, 0).update for q in colluders])
            estimate = ring_sub(view.server.aggregate(0), own)
            succeeded = bool(np.array_equal(estimate, run.truth[target][0]))
            outcomes.append(
                AttackOutcome(
                    self.name,
                    "prg",
                    succeeded,
                    expected_at(c, bound),
                    target=f"member {target}",
                    colluders=c,
                    bound=bound,
                    measured={"contributors": n},
                )
            )
        return outcomes


@pytest.fixture
def registered():
    attack = register_attack(SumMinusOwn())
    yield attack
    unregister_attack(attack.name)


@pytest.fixture(scope="module")
def config() -> AuditConfig:
    return AuditConfig.quick(crypto_seed=hashlib.sha256(b"tests/writing-an-attack").digest())


def test_the_page_shows_this_attack_word_for_word():
    page = PAGE.read_text(encoding="utf-8")
    assert inspect.getsource(SumMinusOwn) in page
    assert 'run_audit(AuditConfig.quick(), attacks=["sum-minus-own"])' in page


def test_the_audit_collects_it_failing_at_the_bound_and_succeeding_beyond(registered, config):
    assert attack_names()[-1] == "sum-minus-own"  # after the audit's own attacks
    report = run_audit(config, attacks=["sum-minus-own"])
    at, beyond = report.results["sum-minus-own"]
    assert (at.colluders, at.bound, at.succeeded, at.expected) == (2, 2, False, False)
    assert (beyond.colluders, beyond.succeeded, beyond.expected) == (3, True, True)
    assert at.holds and beyond.holds and report.failed_claims() == []
    rows = report.json_summary()["attacks"]
    assert [r["attack"] for r in rows] == ["sum-minus-own"] * 2
    assert rows[1] == beyond.as_row() and rows[1]["contributors"] == 4
    assert "| sum-minus-own |" in report.markdown()


def test_a_bound_stated_one_too_high_is_a_failed_claim(config):
    class Overclaimed(SumMinusOwn):
        name = "sum-minus-own, overclaimed"

        def bound(self, contributors: int) -> int:
            return contributors - 1

    register_attack(Overclaimed())
    try:
        report = run_audit(config, attacks=[Overclaimed.name])
    finally:
        unregister_attack(Overclaimed.name)
    (failed,) = report.failed_claims()
    assert "with 3 colluders succeeded; it must fail (stated bound 3)" in failed


def test_the_report_files_hold_it(registered, config, tmp_path):
    report = run_audit(config, attacks=["sum-minus-own"])
    report.write(tmp_path)
    written = json.loads((tmp_path / "audit.json").read_text())
    assert [r["holds"] for r in written["attacks"]] == [True, True]
