"""``grid-info-search``: ``ldapsearch`` with MDS defaults.

As MDS2's command did: anonymous simple bind, host from ``GRID_INFO_HOST`` or localhost, port
2135, base ``mds-vo-name=local,o=grid``, scope subtree, filter ``(objectClass=*)``.  It runs
OpenLDAP's ``ldapsearch`` when present (so every ldapsearch habit works), otherwise it searches
with ldap3 and prints LDIF itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

DEFAULT_PORT = 2135
DEFAULT_BASE = "mds-vo-name=local,o=grid"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grid-info-search",
        description="Search a GRIS or GIIS (ldapsearch with MDS defaults).",
        add_help=False,
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-H", dest="uri", help="LDAP URI (overrides -h/-p)")
    p.add_argument("-h", dest="host", default=os.environ.get("GRID_INFO_HOST", "localhost"))
    p.add_argument("-p", dest="port", type=int, default=int(os.environ.get("GRID_INFO_PORT", DEFAULT_PORT)))
    p.add_argument("-b", dest="base", default=os.environ.get("GRID_INFO_BASEDN", DEFAULT_BASE))
    p.add_argument("-s", dest="scope", default="sub", choices=["base", "one", "sub", "children"])
    p.add_argument("-T", dest="timeout", type=int, default=30, help="time limit in seconds")
    p.add_argument("-z", dest="sizelimit", type=int, default=0)
    p.add_argument("-L", dest="ldif_only", action="store_true", help="plain LDIF (as ldapsearch -LLL)")
    p.add_argument("--no-ldapsearch", action="store_true", help="use the built-in client even if ldapsearch exists")
    p.add_argument("filter", nargs="?", default="(objectClass=*)")
    p.add_argument("attributes", nargs="*")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    uri = args.uri or f"ldap://{args.host}:{args.port}"
    ldapsearch = shutil.which("ldapsearch")
    if ldapsearch and not args.no_ldapsearch:
        cmd = [ldapsearch, "-x", "-H", uri, "-b", args.base, "-s", args.scope, "-l", str(args.timeout)]
        if args.sizelimit:
            cmd += ["-z", str(args.sizelimit)]
        cmd += ["-LLL" if args.ldif_only else "-LL", args.filter, *args.attributes]
        os.execv(ldapsearch, cmd)
    return _search_with_ldap3(uri, args)


def _search_with_ldap3(uri: str, args: argparse.Namespace) -> int:
    import ldap3

    from gridinfo.directory.ldif import format_ldif

    scope = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}.get(args.scope, ldap3.SUBTREE)
    try:
        conn = ldap3.Connection(ldap3.Server(uri, connect_timeout=args.timeout), auto_bind=True, receive_timeout=args.timeout)
        conn.search(
            args.base,
            args.filter,
            search_scope=scope,
            attributes=args.attributes or [ldap3.ALL_ATTRIBUTES],
            size_limit=args.sizelimit,
            time_limit=args.timeout,
        )
    except ldap3.core.exceptions.LDAPException as e:
        sys.stderr.write(f"grid-info-search: {uri}: {e}\n")
        return 1
    records = [(r["dn"], [(k, list(v)) for k, v in r["raw_attributes"].items()]) for r in conn.response if r["type"] == "searchResEntry"]
    sys.stdout.buffer.write(format_ldif(records))
    code = conn.result["result"]
    if code not in (0, 4):
        sys.stderr.write(f"grid-info-search: {conn.result['description']} ({code}): {conn.result['message']}\n")
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
