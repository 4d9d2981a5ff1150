"""The compiled build: gridinfo's hot modules compiled with Cython, used only while current.

The rule (``gridinfo/__init__.py``) is tried on a one-function module compiled here, in a copy
of the package's ``__init__``: an extension newer than its source is imported, an edited source
wins over an older extension, and ``GRIDINFO_PURE_PYTHON`` turns every extension off.  Then
the real build: each module ``make`` compiles runs compiled when built (``make test`` sets
``GRIDINFO_REQUIRE_COMPILED=1``: every one must be), and from its source when pure Python is
asked for, which is how ``make test`` runs those modules' tests a second time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gridinfo_dev import compiled

REPO = Path(__file__).resolve().parents[1]


def _run(cwd: Path, code: str, pure: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDINFO_PURE_PYTHON", "PYTHONPATH")}
    if pure is not None:
        env["GRIDINFO_PURE_PYTHON"] = pure
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_an_extension_is_used_only_while_newer_than_its_source(tmp_path):
    package = tmp_path / "gridinfo"
    package.mkdir()
    shutil.copy(REPO / "gridinfo" / "__init__.py", package)
    source = package / "probe.py"
    source.write_text("def where():\n    return 'as built'\n")
    subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-q", "gridinfo/probe.py"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    [extension] = [p for p in package.iterdir() if p.name.startswith("probe.") and p.suffix == ".so"]
    probe = "import gridinfo, gridinfo.probe as p; print(gridinfo.compiled(p), p.where())"
    assert _run(tmp_path, probe) == "True as built"
    assert _run(tmp_path, probe, pure="1") == "False as built"
    assert _run(tmp_path, probe, pure="0") == "True as built"
    # the source edited after the build: it runs as written, until the next build
    source.write_text("def where():\n    return 'as edited'\n")
    built_at = extension.stat().st_mtime
    os.utime(source, (built_at + 5, built_at + 5))
    assert _run(tmp_path, probe) == "False as edited"


def test_each_compiled_module_runs_compiled_when_built_and_from_source_when_asked():
    names = list(compiled.MODULES)
    code = "import importlib, gridinfo; print(' '.join(str(gridinfo.compiled(importlib.import_module(n))) for n in %r))" % names
    as_built = dict(zip(names, _run(REPO, code).split()))
    assert as_built == {name: str(compiled.current(name)) for name in names}
    if os.environ.get("GRIDINFO_REQUIRE_COMPILED") == "1":
        assert set(as_built.values()) == {"True"}, "modules not compiled: run make compiled"
    assert set(_run(REPO, code, pure="1").split()) == {"False"}


def test_the_modules_being_tested_are_the_ones_asked_for():
    """This run's own modules: compiled unless pure Python was asked for (the second pass of
    ``make test``), so each pass tests what it says."""
    import gridinfo
    from gridinfo.directory import ldif

    assert gridinfo.compiled(ldif) == (not gridinfo.PURE_PYTHON and compiled.current("gridinfo.directory.ldif"))
    if os.environ.get("GRIDINFO_REQUIRE_COMPILED") == "1":
        assert gridinfo.compiled(ldif)


def test_each_compiled_modules_logger_names_its_module():
    """A module's ``Logger()`` takes its namespace from the calling frame, which a compiled
    module has not: each listed module names its own, so its log lines say where they are from
    whether it runs compiled or not."""
    import importlib

    from twisted.logger import Logger

    for name in compiled.MODULES:
        module = importlib.import_module(name)
        loggers = [value for value in vars(module).values() if isinstance(value, Logger)]
        assert all(logger.namespace == name for logger in loggers), (name, [lg.namespace for lg in loggers])
