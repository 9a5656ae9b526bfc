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
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
