"""``gris``: run a Grid Resource Information Service in the foreground.

    gris --config conf/gris.yaml [--listen ENDPOINT]... [--ldif DIR]... [--schema PATH]...
         [--providers DIR]...
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from gridinfo.config import GRISConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gris", description="Serve a GRIS (mds-vo-name=local,o=grid) over LDAP.")
    p.add_argument("--config", "-c", help="YAML config file (see conf/gris.yaml)")
    p.add_argument(
        "--listen",
        action="append",
        metavar="ENDPOINT",
        help="Twisted endpoint string, e.g. tcp:2135:interface=127.0.0.1 (repeatable; replaces the config's)",
    )
    p.add_argument("--ldif", action="append", metavar="PATH", help="static LDIF file or folder (repeatable; added)")
    p.add_argument("--schema", action="append", metavar="PATH", help="extra schema file or folder (repeatable; added)")
    p.add_argument(
        "--providers", action="append", metavar="DIR", help="information providers folder (repeatable; added)"
    )
    p.add_argument(
        "--register",
        action="append",
        metavar="LDAP-URL",
        help="register with this GIIS, e.g. ldap://giis:2135/mds-vo-name=site,o=grid (repeatable; added)",
    )
    p.add_argument(
        "--http",
        action="append",
        metavar="ENDPOINT",
        help="serve the web view, JSON API and /metrics here, e.g. tcp:8080 (loopback unless an interface "
        "is named; repeatable; replaces the config's http:)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    return p


def make_config(args: argparse.Namespace) -> GRISConfig:
    config = load_config(args.config, GRISConfig) if args.config else GRISConfig()
    changes: dict[str, object] = {}
    if args.listen:
        changes["listen"] = tuple(args.listen)
    if args.http:
        changes["http"] = tuple(args.http)
    if args.ldif:
        changes["ldif"] = config.ldif + tuple(args.ldif)
    if args.schema:
        changes["schema"] = config.schema + tuple(args.schema)
    if args.providers:
        changes["providers"] = config.providers + tuple(os.path.abspath(p) for p in args.providers)
    if args.register:
        from gridinfo.config import RegisterConfig

        changes["register"] = config.register + tuple(RegisterConfig(url=u) for u in args.register)
    return replace(config, **changes) if changes else config


def main(argv: list[str] | None = None) -> int:
    from gridinfo.cli.common import run_daemon
    from gridinfo.service import make_gris_service

    args = build_parser().parse_args(argv)
    return run_daemon("gris", lambda: make_config(args), make_gris_service, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
