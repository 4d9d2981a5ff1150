"""``make run``: gridinfo on loopback in the foreground, with the bundled example config.

Serves a GRIS on 127.0.0.1:2135 from ``conf/gris.yaml`` and prints the ``ldapsearch`` line to
try.  (When the GIIS lands, this grows into a small hierarchy: a GIIS with GRIS under it.)
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

HOST = "127.0.0.1"
PORT = int(os.environ.get("GRIDINFO_DEMO_PORT", "2135"))


def main() -> int:
    from twisted.internet import reactor

    from gridinfo.cli.common import run_service, start_logging
    from gridinfo.config import GRISConfig, load_config
    from gridinfo.errors import GridinfoError
    from gridinfo.service import make_gris_service

    conf = Path(__file__).resolve().parents[2] / "conf" / "gris.yaml"
    try:
        config = replace(load_config(conf, GRISConfig), listen=(f"tcp:{PORT}:interface={HOST}",))
        start_logging("info")
        top = make_gris_service(config, reactor)
    except GridinfoError as e:
        sys.stderr.write(f"make run: {e}\n")
        return 2

    def hello() -> None:
        sys.stdout.write(
            "\ngridinfo is serving a GRIS on ldap://%s:%d/ (Ctrl-C stops it). Try:\n\n"
            "    ldapsearch -x -H ldap://%s:%d -b mds-vo-name=local,o=grid\n\n" % (HOST, PORT, HOST, PORT)
        )
        sys.stdout.flush()

    reactor.callWhenRunning(lambda: reactor.callLater(0, hello))
    return run_service(top, reactor)


if __name__ == "__main__":
    sys.exit(main())
