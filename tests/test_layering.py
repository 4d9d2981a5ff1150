"""The installed package holds only what the daemons and commands run.

Benchmarks, load and data generators and the slapd harness live in ``tools/gridinfo_dev``; tests
live in ``tests``.  Neither ships, so a module of ``gridinfo`` that imported either would break
every installed daemon.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gridinfo"
FORBIDDEN = ("tests", "gridinfo_dev")


def _forbidden(module: str) -> bool:
    return module.split(".")[0] in FORBIDDEN


def _dotted_module_names(text: str) -> list[str]:
    """Words of a string literal that look like a dotted module path (``-m tests.support.x``)."""
    return [w for w in text.split() if "." in w and all(part.isidentifier() for part in w.split("."))]


def offences(path: Path, root: Path) -> list[str]:
    """Every import of, or string naming, a forbidden module in ``path``, as ``file:what``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {alias.name}" for alias in node.names if _forbidden(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _forbidden(node.module):
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [f"string {word!r}" for word in _dotted_module_names(node.value) if _forbidden(word)]
    return [f"{path.relative_to(root)}:{what}" for what in found]


def test_no_module_of_the_package_imports_tests_or_dev_tools() -> None:
    """No module under gridinfo/ imports ``tests`` or ``gridinfo_dev``, or names them as a module."""
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20  # the walk found the package
    assert [o for path in modules for o in offences(path, PACKAGE.parent)] == []


def test_no_dev_tools_inside_the_package() -> None:
    """The benchmark tooling moved out: there is no gridinfo/devtools any more."""
    assert not (PACKAGE / "devtools").exists()


def test_the_check_finds_each_way_of_reaching_the_dev_tools(tmp_path: Path) -> None:
    """The check is not vacuous: imports and ``-m`` module strings are reported, a relative import is not."""
    probe = tmp_path / "gridinfo" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(
        "import tests.support.gris\n"
        "from gridinfo_dev import loadgen\n"
        "from . import tests\n"
        "ARGS = ['-m', 'gridinfo_dev.giisbench']\n"
        "TEXT = 'see the tests. They pass.'\n"
    )
    assert offences(probe, tmp_path) == [
        "gridinfo/probe.py:import tests.support.gris",
        "gridinfo/probe.py:from gridinfo_dev import ...",
        "gridinfo/probe.py:string 'gridinfo_dev.giisbench'",
    ]
