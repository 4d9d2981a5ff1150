"""gridinfo: a hierarchical, LDAP-speaking information service for grid and cloud sites.

Some modules may be compiled (``tools/build-compiled``, run by ``make``): an extension module
beside its source.  The import rule installed here uses such an extension only while it is
newer than its source, so an edited module runs as written until the next build, and never
when ``GRIDINFO_PURE_PYTHON`` is set to anything but ``0`` or the empty string.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from types import ModuleType

__version__ = "0.1.0"

PURE_PYTHON = os.environ.get("GRIDINFO_PURE_PYTHON", "") not in ("", "0")


class _CompiledWhenCurrent:
    """A meta path finder for ``gridinfo``'s modules that have an extension beside their
    source: the source's spec when the extension is older than it (or pure Python is asked
    for); else nothing, and the usual finder imports the extension."""

    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if path is None or not name.startswith("gridinfo."):
            return None
        leaf = name.rpartition(".")[2]
        for folder in path:
            source = os.path.join(folder, leaf + ".py")
            try:
                source_mtime = os.stat(source).st_mtime
            except OSError:
                continue
            extensions = []
            for suffix in EXTENSION_SUFFIXES:
                try:
                    extensions.append(os.stat(os.path.join(folder, leaf + suffix)).st_mtime)
                except OSError:
                    pass
            if not extensions or (not PURE_PYTHON and max(extensions) >= source_mtime):
                return None
            return spec_from_file_location(name, source)
        return None


def compiled(module: ModuleType) -> bool:
    """Whether ``module`` runs compiled (from an extension module)."""
    return str(getattr(module, "__file__", None) or "").endswith(tuple(EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """The names of gridinfo's imported modules that run compiled."""
    return sorted(name for name, module in list(sys.modules.items())
                  if name.startswith("gridinfo.") and module is not None and compiled(module))


sys.meta_path.insert(0, _CompiledWhenCurrent())
