"""The package surface of ssddl.hazmat and the rules its source must follow."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import ssddl.hazmat as hazmat

SOURCE = Path(hazmat.__file__).resolve().parent
MODULES = ["rand", "codec", "prg", "fsprng", "keys", "aead", "sharing"]


def test_all_is_sorted_and_complete() -> None:
    names = hazmat.__all__
    upper = [n for n in names if n.isupper()]
    classes = [n for n in names if n[0].isupper() and not n.isupper()]
    functions = [n for n in names if n[0].islower()]
    assert names == sorted(upper) + sorted(classes) + sorted(functions)  # ruff RUF022 order
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(hazmat, name), name


def test_every_module_all_is_exported_by_its_module() -> None:
    for module_name in MODULES:
        module = importlib.import_module(f"ssddl.hazmat.{module_name}")
        for name in module.__all__:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_docstring_warns_this_is_the_low_level_layer() -> None:
    doc = hazmat.__doc__ or ""
    assert "HAZARDOUS" in doc
    assert "ssddl.protocol" in doc


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(SOURCE.glob("*.py"))]


def test_no_assert_for_validation() -> None:
    for path, tree in _trees():
        asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
        assert not asserts, f"{path.name} uses assert at lines {asserts}"


def test_no_global_random_state() -> None:
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(alias.name != "random" for alias in node.names), path.name
            if isinstance(node, ast.ImportFrom):
                assert node.module != "random", path.name
                assert node.module != "numpy.random", path.name
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "np"
                and node.value.attr == "random"
            ):
                assert node.attr == "Generator", f"{path.name}: np.random.{node.attr}"
