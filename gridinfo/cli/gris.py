"""``gris``: run a Grid Resource Information Service in the foreground.

    gris --config conf/gris.yaml [--listen ENDPOINT]... [--ldif DIR]... [--schema PATH]...
         [--providers DIR]...
    gris --bdii-config /etc/bdii/bdii.conf [--config conf/gris.yaml] ...

``--bdii-config`` serves an existing BDII's folders as its resource BDII did (docs/bdii.md):
the YAML file (if any) gives the rest, bdii.conf replaces what it says (port, folders, cycle,
timeouts; see gridinfo.bdii), and the other flags come last.
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
        "--bdii-config",
        metavar="BDII.CONF",
        help="serve an existing BDII's folders and port as it did, e.g. /etc/bdii/bdii.conf (docs/bdii.md)",
    )
    p.add_argument(
        "--http",
        action="append",
        metavar="ENDPOINT",
        help="serve the web view, JSON API and /metrics here, e.g. tcp:8080 (loopback unless an interface "
        "is named; repeatable; replaces the config's http:)",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warn", "error"],
        help="default info (with --bdii-config: from BDII_LOG_LEVEL)",
    )
    return p


def make_config(args: argparse.Namespace) -> GRISConfig:
    config = load_config(args.config, GRISConfig) if args.config else GRISConfig()
    if getattr(args, "bdii_config", None):
        config = _from_bdii(args.bdii_config, config)
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


def _from_bdii(path: str, config: GRISConfig) -> GRISConfig:
    """The bdii profile: bdii.conf's port, folders and cycle over ``config``; says what it ignored."""
    from twisted.logger import Logger

    from gridinfo.bdii import gris_config_from_bdii, read_bdii_conf

    log = Logger()
    conf = read_bdii_conf(path)
    for setting, why in conf.ignored:
        log.info("{source}:{line}: {key} ignored: {why}", source=conf.source, line=setting.line, key=setting.key, why=why)
    for setting in conf.unknown:
        log.warn("{source}:{line}: {key} is not a BDII setting; ignored", source=conf.source, line=setting.line,
                 key=setting.key)
    return gris_config_from_bdii(conf, config)


def log_level(args: argparse.Namespace) -> str:
    """--log-level, else BDII_LOG_LEVEL with --bdii-config, else info."""
    if args.log_level:
        return str(args.log_level)
    if getattr(args, "bdii_config", None):
        from gridinfo.bdii import log_level as bdii_log_level, read_bdii_conf
        from gridinfo.errors import ConfigError

        try:
            return bdii_log_level(read_bdii_conf(args.bdii_config))
        except ConfigError:
            pass  # make_config reports it
    return "info"


def main(argv: list[str] | None = None) -> int:
    from gridinfo.cli.common import run_daemon
    from gridinfo.service import make_gris_service

    args = build_parser().parse_args(argv)
    return run_daemon("gris", lambda: make_config(args), make_gris_service, log_level(args))


if __name__ == "__main__":
    sys.exit(main())
