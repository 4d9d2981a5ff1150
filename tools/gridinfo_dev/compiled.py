"""Compiling gridinfo's hot modules with Cython, in place (``tools/build-compiled``, which
``make`` runs on every machine).

Each module listed in ``MODULES`` is compiled from its unchanged Python source into an
extension module beside it (``ldif.cpython-311-x86_64-linux-gnu.so`` next to ``ldif.py``);
Python imports an extension before a source of the same name.  Nothing else changes: the
source stays the reference, type annotations are not used as C types (the compiled module
behaves as the source does), and ``gridinfo``'s import rule uses an extension only while it is
newer than its source (a module edited since the last build runs from its source until the
next build), or never with ``GRIDINFO_PURE_PYTHON=1``.  The C files go to ``build/cython``.
"""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The modules a search, a load and a GIIS merge spend their time in.
MODULES = (
    "gridinfo.ber",
    "gridinfo.eventloop",
    "gridinfo.directory.cursor",
    "gridinfo.directory.dn",
    "gridinfo.directory.entry",
    "gridinfo.directory.evaluate",
    "gridinfo.directory.filters",
    "gridinfo.directory.ldif",
    "gridinfo.directory.matching",
    "gridinfo.directory.query",
    "gridinfo.directory.schema",
    "gridinfo.directory.snapshot",
    "gridinfo.directory.tree",
    "gridinfo.giis.answers",
    "gridinfo.giis.backend",
    "gridinfo.giis.children",
    "gridinfo.giis.duplicates",
    "gridinfo.giis.forwarder",
    "gridinfo.giis.merged",
    "gridinfo.giis.namespace",
    "gridinfo.gris.backend",
    "gridinfo.gris.parallel_load",
    "gridinfo.ldap.client",
    "gridinfo.ldap.server",
    "gridinfo.ldap.streams",
    "gridinfo.ldap.wire",
)


def source_of(module: str) -> Path:
    """The source file of ``module`` (a dotted name)."""
    return REPO.joinpath(*module.split(".")).with_suffix(".py")


def built(module: str) -> list[Path]:
    """The extension modules built for ``module``."""
    source = source_of(module)
    candidates = [source.with_name(source.stem + suffix) for suffix in EXTENSION_SUFFIXES]
    return [path for path in candidates if path.exists()]


def current(module: str) -> bool:
    """Whether ``module`` has an extension at least as new as its source: what gridinfo's
    import rule uses unless pure Python is asked for."""
    source_mtime = source_of(module).stat().st_mtime
    return any(path.stat().st_mtime >= source_mtime for path in built(module))


def clean() -> None:
    """Remove the extension modules: everything runs from its source."""
    for module in MODULES:
        for path in built(module):
            path.unlink()


def build() -> list[str]:
    """Build every module in ``MODULES``; the ones not built (empty: all are)."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    os.chdir(REPO)

    extensions = cythonize(
        [Extension(module, [str(source_of(module).relative_to(REPO))]) for module in MODULES],
        build_dir="build/cython",
        compiler_directives={"language_level": 3, "annotation_typing": False},
        nthreads=os.cpu_count() or 1,
        quiet=True,
    )
    dist = Distribution({"name": "gridinfo-compiled", "ext_modules": extensions})
    command = dist.get_command_obj("build_ext")
    command.inplace = True  # type: ignore[attr-defined]
    command.parallel = os.cpu_count() or 1  # type: ignore[attr-defined]
    command.build_temp = "build/temp"  # type: ignore[attr-defined]
    dist.script_args = []
    command.ensure_finalized()
    command.run()
    for module in MODULES:
        for path in built(module):
            path.touch()  # newer than its source, by the import rule's clock too
    return [m for m in MODULES if not built(m)]
