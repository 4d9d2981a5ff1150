"""``giis``: run a Grid Index Information Service in the foreground.

    giis --config conf/giis.yaml [--name NAME] [--listen ENDPOINT]... [--register LDAP-URL]...
         [--child LDAP-URL]... [--bdii-urls site-urls.conf]...

``--bdii-urls`` reads BDII's ``site-urls.conf`` / ``top-urls.conf`` (``NAME ldap://host:port/base``
lines) into static children pulled as BDII pulls them (gridinfo.bdii.BDII_CHILD; docs/bdii.md).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from gridinfo.config import GIISConfig, RegisterConfig, StaticChildConfig, check_giis_name, load_config
from gridinfo.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="giis", description="Serve a GIIS (mds-vo-name=NAME,o=grid) over LDAP.")
    p.add_argument("--config", "-c", help="YAML config file (see conf/giis.yaml)")
    p.add_argument("--name", help="the GIIS's name: it serves mds-vo-name=NAME,o=grid")
    p.add_argument(
        "--listen",
        action="append",
        metavar="ENDPOINT",
        help="Twisted endpoint string, e.g. tcp:2135:interface=127.0.0.1 (repeatable; replaces the config's)",
    )
    p.add_argument(
        "--register",
        action="append",
        metavar="LDAP-URL",
        help="register with this parent, e.g. ldap://top.example.org:2135/mds-vo-name=top,o=grid (repeatable; added)",
    )
    p.add_argument("--child", action="append", metavar="LDAP-URL", help="a static child (repeatable; added)")
    p.add_argument(
        "--bdii-urls",
        action="append",
        metavar="FILE",
        help="static children from a BDII site-urls.conf/top-urls.conf (repeatable; added)",
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


def make_config(args: argparse.Namespace) -> GIISConfig:
    config = load_config(args.config, GIISConfig) if args.config else GIISConfig()
    changes: dict[str, object] = {}
    if args.name:
        problem = check_giis_name(args.name)
        if problem:
            raise ConfigError(f"--name: {problem}", "<command line>")
        changes["name"] = args.name
    if args.listen:
        changes["listen"] = tuple(args.listen)
    if args.http:
        changes["http"] = tuple(args.http)
    if args.register:
        changes["register"] = config.register + tuple(RegisterConfig(url=u) for u in args.register)
    if args.child:
        changes["children"] = config.children + tuple(StaticChildConfig(url=u) for u in args.child)
    for path in getattr(args, "bdii_urls", None) or ():
        from gridinfo.bdii import read_bdii_urls, static_children

        children = changes.get("children", config.children)
        assert isinstance(children, tuple)
        changes["children"] = children + static_children(read_bdii_urls(path))
    return replace(config, **changes) if changes else config


def main(argv: list[str] | None = None) -> int:
    from gridinfo.cli.common import run_daemon
    from gridinfo.service import make_giis_service

    args = build_parser().parse_args(argv)
    return run_daemon("giis", lambda: make_config(args), make_giis_service, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
