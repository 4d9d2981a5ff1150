"""Helpers for the bundled providers' tests: run a provider as the GRIS would, parse and check.

A provider is run as a real subprocess (``providers/<name>``) with the virtualenv's ``bin`` first
on PATH, exactly as the GRIS runs it; its output is parsed with gridinfo's own LDIF reader and
every entry is checked against gridinfo's schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gridinfo.directory.ldif import parse_ldif
from gridinfo.directory.schema import default_schema

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = ROOT / "providers"
DATA = Path(__file__).resolve().parent / "data"
SUFFIX = "mds-vo-name=local,o=grid"
GLUE2_SUFFIX = "GLUE2GroupID=resource,o=glue"


@dataclass
class Published:
    """One entry as a provider printed it: DN and attributes (lower-cased names -> str values)."""

    dn: str
    attrs: dict[str, list[str]]

    def one(self, name: str) -> str:
        values = self.attrs[name.lower()]
        assert len(values) == 1, (name, values)
        return values[0]

    def get(self, name: str) -> str | None:
        values = self.attrs.get(name.lower())
        return values[0] if values else None

    def classes(self) -> set[str]:
        return {v.lower() for v in self.attrs.get("objectclass", [])}


@dataclass
class Run:
    """What one provider run did."""

    returncode: int
    entries: list[Published]
    stderr: str
    seconds: float

    def by_class(self, object_class: str) -> list[Published]:
        return [e for e in self.entries if object_class.lower() in e.classes()]


def parse_and_check(
    text: str, source: str = "<provider>", suffix: str = SUFFIX, glue2_suffix: str = GLUE2_SUFFIX
) -> list[Published]:
    """Parse LDIF ``text``; assert every entry satisfies gridinfo's schema and ends with ``suffix``
    (or, for GLUE 2 entries, with ``glue2_suffix``)."""
    schema = default_schema()
    published = []
    for record in parse_ldif(text, source):
        attrs: dict[str, list[bytes]] = {}
        for name, values in record.attributes:
            attrs.setdefault(name, []).extend(values)
        problems = schema.check_entry(attrs)
        assert not problems, f"{record.dn}: {problems}"
        ends = [suffix] + ([glue2_suffix] if glue2_suffix else [])
        assert any(record.dn.lower().endswith("," + e.lower()) for e in ends), record.dn
        published.append(
            Published(record.dn, {k.lower(): [v.decode("utf-8") for v in vs] for k, vs in attrs.items()})
        )
    return published


def run_provider(
    name: str, args: Sequence[str] = (), env: dict[str, str] | None = None, timeout: float = 20.0
) -> Run:
    """Run ``providers/<name>`` the way the GRIS does and check what it printed."""
    full_env = dict(os.environ)
    full_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), full_env.get("PATH", "")])
    full_env.update(env or {})
    started = time.monotonic()
    done = subprocess.run(
        [str(PROVIDERS / name), *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )
    seconds = time.monotonic() - started
    suffix = full_env.get("GRIDINFO_SUFFIX") or SUFFIX
    glue2 = full_env.get("GRIDINFO_GLUE2_SUFFIX", GLUE2_SUFFIX)
    entries = parse_and_check(done.stdout, name, suffix, glue2) if done.returncode == 0 else []
    return Run(done.returncode, entries, done.stderr, seconds)
