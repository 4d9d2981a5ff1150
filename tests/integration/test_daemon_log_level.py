"""A daemon's log level, in a real ``gris``: debug lines (each client connection accepted and
closed) appear at ``--log-level debug`` and cost nothing at the default info, where they are not
even made (gridinfo.debuglog)."""

from __future__ import annotations

import re
import subprocess
import time

import gridinfo
from gridinfo_dev import compiled
from tests.support.gris import GrisProcess


def _connect_twice(url: str) -> None:
    for _ in range(2):
        subprocess.run(["ldapsearch", "-x", "-LLL", "-H", url, "-s", "base", "-b", "o=grid", "1.1"],
                       capture_output=True, timeout=30, check=True)


def _wait_for(gris: GrisProcess, pattern: str, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = re.findall(pattern, gris.log)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_connection_lines_at_debug_and_none_at_info() -> None:
    closed_line = r"#debug\] LDAP connection from 127\.0\.0\.1:\d+ closed"
    with GrisProcess(["--log-level", "debug"]) as gris:
        probes = len(_wait_for(gris, closed_line, 1))  # the start-up probe's connection
        _connect_twice(gris.url)
        closed = _wait_for(gris, closed_line, probes + 2)
        assert len(closed) == probes + 2, gris.log[-2000:]
        assert len(re.findall(r"#debug\] LDAP connection from 127\.0\.0\.1:\d+\n", gris.log)) == probes + 2
    with GrisProcess([]) as gris:  # info: the default
        _connect_twice(gris.url)
        served = gris.log
        assert "listening on" in served
        assert "LDAP connection from" not in served
    # the start says which of the modules it has imported run compiled: here, those built since
    # their source last changed, the reader, the tree and the server among them
    current = {name.removeprefix("gridinfo.") for name in compiled.MODULES if compiled.current(name)}
    line = re.search(r"\] (\d+) modules run compiled: (.*)\n", served)
    if current and not gridinfo.PURE_PYTHON:
        assert line is not None, served[:2000]
        names = line.group(2).split(", ")
        assert int(line.group(1)) == len(names) and set(names) <= current
        assert {"directory.ldif", "directory.tree", "ldap.server", "eventloop"} <= set(names)
    else:
        assert line is None and "] running pure Python: " in served
