"""``make run``: gridinfo on loopback in the foreground, with the bundled example config.

A small hierarchy in one process: a GIIS ``mds-vo-name=site,o=grid`` on 127.0.0.1:2135 (from
``conf/giis.yaml``) with two GRIS registered under it on the next two loopback ports, both from
``conf/gris.yaml``: the first runs the bundled providers in ``providers/`` (unless the config
names its own folders), the second publishes the static example LDIF.  Prints the
``ldapsearch`` and ``giis-tree`` lines to try, and the URL of the GIIS's web view
(127.0.0.1:8135, ``GRIDINFO_DEMO_HTTP_PORT``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

HOST = "127.0.0.1"
PORT = int(os.environ.get("GRIDINFO_DEMO_PORT", "2135"))
HTTP_PORT = int(os.environ.get("GRIDINFO_DEMO_HTTP_PORT", "8135"))


def main() -> int:
    from twisted.internet import reactor

    from gridinfo.cli.common import failures, run_service, start_logging
    from twisted.application import service

    from gridinfo.config import GIISConfig, GRISConfig, ProviderConfig, RegisterConfig, load_config
    from gridinfo.errors import GridinfoError
    from gridinfo.service import make_giis_service, make_gris_service

    top_dir = Path(__file__).resolve().parents[2]
    conf = top_dir / "conf" / "gris.yaml"
    giis_url = f"ldap://{HOST}:{PORT}/mds-vo-name=site,o=grid"
    register = (RegisterConfig(url=giis_url, regperiod=30, ttl=60, keepto=120, cachettl=10, timeout=5, hostname=HOST),)
    try:
        # the registration journal goes beside the virtualenv, not to /var/lib, for a demo
        giis_config = replace(
            load_config(top_dir / "conf" / "giis.yaml", GIISConfig), name="site", listen=(f"tcp:{PORT}:interface={HOST}",),
            journal=str(top_dir / ".venv" / "demo-giis-registrations.sqlite"),
            http=(f"tcp:{HTTP_PORT}:interface={HOST}",),  # the web view (docs/web.md)
        )
        base_config = load_config(conf, GRISConfig)
        config = replace(base_config, listen=(f"tcp:{PORT + 1}:interface={HOST}",), ldif=(), register=register)
        if not config.providers:
            config = replace(config, providers=(str(top_dir / "providers"),))
        # the network provider measures the paths named in conf/providers/network.yaml (TCP and
        # ping to this loopback GIIS), so the demo shows network entries beside the host's
        if "network" not in config.provider:
            network = ProviderConfig(env={"GRIDINFO_PROVIDER_CONFIG": str(top_dir / "conf" / "providers" / "network.yaml")})
            config = replace(config, provider={**config.provider, "network": network})
        static_config = replace(
            base_config, listen=(f"tcp:{PORT + 2}:interface={HOST}",), providers=(), plugins=(), register=register
        )
        start_logging("info")
        top = service.MultiService()
        make_giis_service(giis_config, reactor).setServiceParent(top)
        for name, gris_config in (("gris-providers", config), ("gris-static", static_config)):
            gris = make_gris_service(gris_config, reactor)
            gris.setName(name)  # MultiService children need distinct names
            gris.setServiceParent(top)
    except GridinfoError as e:
        sys.stderr.write(f"make run: {e}\n")
        return 2

    def hello() -> None:
        if failures(top):  # a port is taken (another make run?): the errors say which, no banner
            return
        sys.stdout.write(
            "\ngridinfo is serving a GIIS on ldap://%s:%d/ with two GRIS registered under it\n"
            "(ports %d: providers, %d: static LDIF; Ctrl-C stops them all). Try:\n\n"
            "    ldapsearch -x -H ldap://%s:%d -b mds-vo-name=site,o=grid\n"
            "    ldapsearch -x -H ldap://%s:%d -b mds-vo-name=site,o=grid -s base giisregistrationstatus\n"
            "    ldapsearch -x -H ldap://%s:%d -b o=infosys          (child status)\n"
            "    ldapsearch -x -H ldap://%s:%d -b mds-vo-name=local,o=grid   (one GRIS directly)\n"
            "    ldapsearch -x -H ldap://%s:%d -b mds-vo-name=site,o=grid -E sync=rp '(objectClass=GlueCE)'\n"
            "                                     (every change, pushed up from the GRIS; Ctrl-C stops)\n"
            "    .venv/bin/giis-tree --count %s\n\n"
            "The GIIS's web view (hierarchy, queues, browser, history; JSON under /api/, Prometheus\n"
            "metrics at /metrics) is at http://%s:%d/\n\n"
            % (HOST, PORT, PORT + 1, PORT + 2, HOST, PORT, HOST, PORT, HOST, PORT, HOST, PORT + 1, HOST, PORT, giis_url,
               HOST, HTTP_PORT)
        )
        sys.stdout.flush()

    reactor.callWhenRunning(lambda: reactor.callLater(0, hello))
    return run_service(top, reactor)


if __name__ == "__main__":
    sys.exit(main())
