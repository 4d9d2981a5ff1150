"""Run a tool with the project's virtualenv when the Python that started it lacks Twisted.

``tools/*`` start with ``#!/usr/bin/env python3``: from a plain shell that is the system
Python, which has none of gridinfo's dependencies.  A tool that runs gridinfo's Twisted code
in its own process calls :func:`require_twisted` first: it replaces the process with the same
command under ``.venv/bin/python`` (made by ``make .venv/.test-stamp``), or says how to make it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def require_twisted() -> None:
    if importlib.util.find_spec("twisted") is not None:
        return
    venv_python = REPO / ".venv" / "bin" / "python"
    # a venv's python is a link to the base interpreter: which environment runs is sys.prefix
    if venv_python.exists() and Path(sys.prefix).resolve() != venv_python.parents[1].resolve():
        os.execv(str(venv_python), [str(venv_python), sys.argv[0], *sys.argv[1:]])
    raise SystemExit(f"{sys.argv[0]}: needs Twisted: run `make .venv/.test-stamp` in {REPO}, "
                     f"then run this with .venv/bin/python")
