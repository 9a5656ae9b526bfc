"""The layers of DESIGN.md §3 hold, at import time and in the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ssddl"

#: layer -> the ssddl packages (and third-party roots) it must never import
FORBIDDEN = {
    "hazmat": {
        "ssddl.privacy",
        "ssddl.protocol",
        "ssddl.learning",
        "ssddl.runtime",
        "ssddl.baselines",
        "ssddl.attacks",
        "ssddl.cli",
        "ssddl.experiments",
        "torch",
    },
    "protocol": {
        "ssddl.learning",
        "ssddl.runtime",
        "ssddl.baselines",
        "ssddl.attacks",
        "ssddl.cli",
        "ssddl.experiments",
        "torch",
        "flwr",
        # machinery lives at the edge (STYLE §19): workers, pipes and shared memory are
        # ssddl.runtime.masking's, behind the MaskBuilder port
        *("socket", "subprocess", "threading", "mmap", "multiprocessing", "select"),
        *("selectors", "asyncio", "concurrent", "_thread", "fcntl", "signal", "atexit"),
    },
    # accounting and calibration of distributed DP: above hazmat, below the protocol
    "privacy": {
        "ssddl.protocol",
        "ssddl.learning",
        "ssddl.runtime",
        "ssddl.baselines",
        "ssddl.attacks",
        "ssddl.cli",
        "ssddl.experiments",
        "torch",
    },
    "learning": {"ssddl.protocol", "ssddl.runtime", "ssddl.cli", "ssddl.experiments"},
    "runtime": {"ssddl.cli", "ssddl.experiments", "ssddl.attacks"},
    "baselines": {"ssddl.cli", "ssddl.experiments"},
    "attacks": {"ssddl.cli", "ssddl.experiments"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(layer: str) -> list[str]:
    found = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for name in imports_of(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{path.relative_to(SRC)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_only_the_layers_below_it(layer):
    if not (SRC / layer).exists():
        pytest.skip(f"no {layer} package yet")
    assert violations(layer) == []


def test_the_protocol_runs_no_machinery_even_in_a_function(tmp_path, monkeypatch):
    fake = tmp_path / "ssddl" / "protocol"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text(
        "import selectors\n"
        "def late():\n"
        "    import threading\n"
        "    from concurrent.futures import ThreadPoolExecutor\n"
        "    import socket, mmap as m\n"
        "    from subprocess import Popen\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "ssddl")
    assert sorted(violations("protocol")) == [
        "protocol/bad.py imports concurrent.futures",
        "protocol/bad.py imports mmap",
        "protocol/bad.py imports selectors",
        "protocol/bad.py imports socket",
        "protocol/bad.py imports subprocess",
        "protocol/bad.py imports threading",
    ]


def test_the_contract_test_catches_a_violation(tmp_path, monkeypatch):
    fake = tmp_path / "ssddl" / "protocol"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("import torch\nfrom ssddl.runtime.exchange import Frame\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "ssddl")
    assert sorted(violations("protocol")) == [
        "protocol/bad.py imports ssddl.runtime.exchange",
        "protocol/bad.py imports torch",
    ]


@pytest.mark.parametrize(
    "code",
    [
        "import ssddl",
        "import ssddl.hazmat",
        "import ssddl.protocol",
        "import ssddl.runtime.exchange, ssddl.runtime.inmemory, ssddl.runtime.session",
        "import ssddl.protocol.schemes; ssddl.protocol.schemes.scheme_names()",
        "from ssddl.cli import main; import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--version'])",
    ],
)
def test_importing_the_core_loads_no_torch(code):
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


# -- inside the protocol: no import circle, and schemes see roles, never the hosts ----------

#: the hosts that call the schemes, and the front door that imports everything
HOSTS = {"protocol/participant.py", "protocol/server.py"}
FRONT = "protocol/__init__.py"


def import_graph(package: Path) -> dict[Path, set[Path]]:
    """Every module of ``package`` -> the modules of ``package`` it imports, counting every
    import (under TYPE_CHECKING, in a function, relative). Importing ``a.b.c`` counts the
    module ``a.b.c``, or else the package ``a.b`` whose ``__init__`` defines the name."""
    root = package.parents[1]  # the folder that holds ssddl/
    files = {
        p: ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in package.rglob("*.py")
    }
    modules = {name: path for path, name in files.items()}
    graph: dict[Path, set[Path]] = {p: set() for p in files}
    for path, name in files.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                parts = here.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
                module = ".".join(x for x in (base, node.module or "") if x)
                names = [module] + [f"{module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for candidate in names:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and modules[candidate] != path:
                    graph[path].add(modules[candidate])
    return graph


def on_circles(graph: dict[Path, set[Path]], top: Path = SRC) -> list[str]:
    """The modules that reach themselves through their imports (paths from ``top``)."""

    def reach(start: Path) -> set[Path]:
        seen: set[Path] = set()
        todo = [start]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        return seen

    return sorted(str(p.relative_to(top)) for p in graph if p in reach(p))


def test_the_protocol_sits_on_no_import_circle():
    assert on_circles(import_graph(SRC / "protocol")) == []


def test_the_circle_check_counts_type_checking_and_function_imports(tmp_path):
    fake = tmp_path / "ssddl" / "protocol"
    (fake / "schemes").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "schemes" / "__init__.py").write_text("from ssddl.protocol.schemes.a import A\n")
    (fake / "schemes" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ssddl.protocol.host import Host\n"
        "A = 1\n"
    )
    (fake / "host.py").write_text("def late():\n    from ssddl.protocol.schemes import A\n")
    (fake / "leaf.py").write_text("from . import host\n")  # the package: not on the circle
    assert on_circles(import_graph(fake), fake.parent) == [
        "protocol/host.py",
        "protocol/schemes/__init__.py",
        "protocol/schemes/a.py",
    ]


def test_scheme_code_sees_roles_never_the_participant_or_the_server():
    graph = import_graph(SRC / "protocol")
    hosts = {SRC / h for h in HOSTS}
    found = [
        f"{path.relative_to(SRC)} imports {target.relative_to(SRC)}"
        for path, targets in graph.items()
        if str(path.relative_to(SRC)) not in HOSTS | {FRONT}
        for target in targets & hosts
    ]
    baseline_schemes = imports_of(SRC / "baselines" / "schemes.py")
    found += [
        n
        for n in baseline_schemes
        if n.startswith(("ssddl.protocol.participant", "ssddl.protocol.server"))
    ]
    assert found == []


def test_the_scheme_registry_is_not_reached_from_below():
    """Only the hosts and the front door import the schemes package (which registers the
    built-in schemes); everything else looks a mode up in ssddl.protocol.registry."""
    graph = import_graph(SRC / "protocol")
    schemes = SRC / "protocol" / "schemes"
    found = [
        str(path.relative_to(SRC))
        for path, targets in graph.items()
        if schemes / "__init__.py" in targets
        and path.parent != schemes
        and str(path.relative_to(SRC)) not in HOSTS | {FRONT}
    ]
    assert found == []
    assert imports_of(SRC / "protocol" / "registry.py") <= {
        "__future__",
        "typing",
        "ssddl.exceptions",
        "ssddl.validators",  # a leaf: the "did you mean" of an unknown mode
    }


def test_looking_a_mode_up_from_below_finds_the_built_in_schemes():
    """Importing any protocol module imports ssddl.protocol first, which registers them."""
    probe = (
        "from ssddl.protocol.registry import scheme_names\n"
        "from ssddl.protocol.config import ProtocolConfig\n"
        "ProtocolConfig(mode='shamir', weighted=False).resolve(4)\n"
        "print(scheme_names())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=True
    )
    assert out.stdout.strip() == "('prg', 'explicit', 'shamir', 'plain')", out.stderr
