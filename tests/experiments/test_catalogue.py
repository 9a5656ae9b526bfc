"""The catalogue of modes (``ssddl.modes``): the choices, comparison runs and secure modes it
gives, that secure modes follow the scheme registry, that DSSGD's on-demand variants are not
modes of their own, the guarantee each entry states, the options each entry owns, and that
no layer below the faces imports it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssddl import modes
from ssddl.baselines.dssgd import DSSGDConfig
from ssddl.baselines.schemes import dssgd_mode, runner_guarantee
from ssddl.exceptions import ConfigurationError
from ssddl.experiments.options import OPTIONS, check_applicable
from ssddl.protocol import ProtocolConfig
from ssddl.protocol.schemes import get_scheme, register_scheme, scheme_names, unregister_scheme
from ssddl.protocol.schemes.explicit import ExplicitScheme
from tests.test_layers import imports_of

SRC = Path(__file__).resolve().parents[2] / "src" / "ssddl"

#: what --mode takes (the parallel DSSGD variant under its own name since issue 25)
CHOICES = (
    *("prg", "explicit", "shamir", "plain", "fedavg", "fedsgd", "dssgd-parallel"),
    *("centralized", "standalone", "dssgd-rr", "phong-paillier", "phong-bfv", "dp-fedavg"),
)
#: E1 runs the paper's DSSGD (round robin); the parallel variant only labelled as one
E1 = (
    ("centralized", "centralized", {}),
    ("standalone", "standalone", {}),
    ("fedavg", "fedavg", {}),
    ("dssgd-rr θu=0.01", "dssgd-rr", {"theta_u": 0.01}),
    ("dssgd-rr θu=0.1", "dssgd-rr", {"theta_u": 0.1}),
    ("dssgd-parallel θu=0.1 (variant)", "dssgd-parallel", {"theta_u": 0.1}),
    ("phong-paillier", "phong-paillier", {}),
    ("phong-bfv (BFV for LWE)", "phong-bfv", {}),
    ("ssddl prg", "prg", {}),
    ("ssddl explicit", "explicit", {}),
    ("ssddl shamir", "shamir", {}),
)


def test_the_built_in_catalogue_gives_the_same_choices_and_comparison():
    assert modes.mode_names() == CHOICES
    assert modes.runner_names() == CHOICES[7:]
    assert modes.comparison() == E1
    assert modes.secure_modes() == ("prg", "explicit", "shamir")
    engines = {m.name: m.engine for m in modes.catalogue()}
    assert [n for n in CHOICES if engines[n] is modes.Engine.RUNNER] == list(CHOICES[7:])


def test_secure_modes_are_the_registry_s():
    secure = tuple(n for n in scheme_names() if get_scheme(n).secure)
    assert modes.secure_modes() == tuple(n for n in secure if n in modes.mode_names())
    for name in modes.mode_names():
        mode = modes.entry(name)
        if mode.engine is modes.Engine.SIMULATOR:
            assert mode.secure == bool(get_scheme(name).secure), name


class CopiedExplicit(ExplicitScheme):
    name = "explicit-copy"


@pytest.fixture
def new_scheme() -> Iterator[str]:
    register_scheme(CopiedExplicit())
    try:
        yield CopiedExplicit.name
    finally:
        unregister_scheme(CopiedExplicit.name)


def test_a_registered_secure_scheme_is_a_secure_mode_at_once(new_scheme):
    assert new_scheme in modes.secure_modes()
    assert new_scheme in modes.mode_names()
    assert (f"ssddl {new_scheme}", new_scheme, {}) in modes.comparison()
    check_applicable({"protocol.mode": new_scheme, "protocol.ring_bits": 64})  # not in the clear


def test_a_dssgd_variant_is_not_a_mode_of_its_own():
    variant = dssgd_mode(DSSGDConfig(theta_u=0.01))
    assert variant in scheme_names() and variant not in modes.mode_names()
    assert modes.entry(variant).name == "dssgd-parallel"
    assert modes.mode_names() == CHOICES


def test_dssgd_is_only_a_deprecated_alias_of_the_parallel_variant():
    # still registered (recorded transcripts name it), never a choice, never in E1
    assert "dssgd" in scheme_names() and "dssgd" not in modes.mode_names()
    assert modes.entry("dssgd").name == "dssgd-parallel"
    assert all(mode != "dssgd" for _, mode, _ in modes.comparison())
    assert "not the paper's" in modes.entry("dssgd-parallel").summary
    assert modes.DSSGD_E1_VARIANT == "round_robin"


def test_each_entry_states_its_guarantee():
    assert modes.entry("phong-bfv").guarantee(5) == runner_guarantee("phong-bfv", 5)
    params = ProtocolConfig(mode="shamir", max_samples=64).resolve(5)
    assert modes.entry("shamir").guarantee(5, params) == get_scheme("shamir").guarantee(params)
    with pytest.raises(ConfigurationError, match="give params"):
        modes.entry("shamir").guarantee(5)


@pytest.mark.parametrize("mode", modes.catalogue(), ids=lambda m: m.name)
def test_an_option_of_an_entry_applies_to_its_modes_only(mode):
    keys = {o.key for o in OPTIONS}
    for key in mode.options:
        assert key in keys, f"{mode.name} lists unknown option {key}"
        value = next(o for o in OPTIONS if o.key == key).default
        value = 1 if value is None else value
        check_applicable({"protocol.mode": mode.name, key: value})
        others = [n for n in modes.mode_names() if n not in modes.modes_using(key)]
        with pytest.raises(ConfigurationError, match="does not apply: it is only used with"):
            check_applicable({"protocol.mode": others[0], key: value})


def test_register_baseline_refuses_what_cannot_run():
    def runner(*args, **kwargs):  # never called
        raise AssertionError

    def states(n):  # never called either
        return runner_guarantee("centralized", n)

    with pytest.raises(ConfigurationError, match="register its scheme first"):
        modes.register_baseline(modes.ModeEntry("no-such-scheme", "x"))
    with pytest.raises(ConfigurationError, match="both runner and states"):
        modes.ModeEntry("half", "x", runner=runner)
    with pytest.raises(ConfigurationError, match="already in the catalogue"):
        modes.register_baseline(modes.ModeEntry("prg", "x", runner=runner, states=states))
    with pytest.raises(ConfigurationError, match="alphanumeric"):
        modes.ModeEntry("two words", "x")
    with pytest.raises(ConfigurationError, match="cannot be removed"):
        modes.unregister_baseline("phong-bfv")
    with pytest.raises(ConfigurationError, match="is not one of prg, explicit"):
        modes.entry("nope")


def test_no_layer_below_the_faces_imports_the_catalogue():
    below = ("hazmat", "protocol", "learning", "runtime", "baselines")
    found = [
        f"{path.relative_to(SRC)}"
        for layer in below
        for path in sorted((SRC / layer).rglob("*.py"))
        if any(n == "ssddl.modes" or n.startswith("ssddl.modes.") for n in imports_of(path))
    ]
    assert found == []


def test_the_catalogue_loads_no_torch():
    probe = "import ssddl.modes, sys; ssddl.modes.mode_help(); print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=True
    )
    assert out.stdout.strip() == "False", out.stderr
