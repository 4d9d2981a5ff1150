"""The operator log of a real gris (``stats_log: text``), for what ldapsearch sends it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from gridinfo_dev.daemon import wait_for
from tests.support.gris import GrisProcess

ETIME = r"etime=\d+\.\d{6}"


def test_a_gris_with_stats_log_writes_a_line_per_ldapsearch_operation(tmp_path: Path) -> None:
    """Over a real socket, with ``stats_log: text`` in gris.yaml: ldapsearch's bind, search and unbind."""
    config = tmp_path / "gris.yaml"
    config.write_text('stats_log: "text"\n')
    with GrisProcess(["--config", str(config)]) as gris:
        out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", gris.url, "-b", "o=grid", "-s", "base", "o"],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        wait_for("the connection's close logged", lambda: gris.log.count("fd=0 closed") >= 2, 30)  # probe + ldapsearch
        log = gris.log
    # the harness's readiness probe was an earlier connection: ldapsearch's is a later conn=
    m = re.search(r'conn=(\d+) op=1 SRCH base="o=grid" scope=0 deref=0 filter="\(objectclass=\*\)"', log)
    assert m, log
    conn = m.group(1)
    assert re.search(rf'conn={conn} op=0 BIND dn="" method=128', log)
    assert re.search(rf"conn={conn} op=1 SRCH attr=o\n", log)
    assert re.search(rf"conn={conn} op=1 SEARCH RESULT tag=101 err=0 nentries=1 {ETIME} text=", log)
    assert re.search(rf"conn={conn} op=2 UNBIND", log)
