"""``gridinfo-trigger-check``: read trigger rules the way the daemon would, and explain them.

    gridinfo-trigger-check RULE.yaml... [--url ldap://host:port] [--ldif FILE]...
                           [--bind-dn DN --password PW] [--quiet]

For each rule file: the errors (file, line, key; exit status 2), or each rule in words (where
it looks, the condition, what fires it and when, its actions).  With ``--url`` the live server
is searched for the entries the rule matches now; with ``--ldif`` the entries of LDIF files are
(offline).  For those entries it says when the rule would fire: ``enter`` after ``for`` seconds
more, if they still match then.  Exits 0 when every rule is accepted, 1 when a server could not
be searched, 2 when a rule is refused.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TextIO

from gridinfo.config import TriggerConfig
from gridinfo.errors import ConfigError, GridinfoError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridinfo-trigger-check",
        description="Read trigger rule files as gris/giis would, explain each rule, and show what it matches now.",
    )
    p.add_argument("rules", metavar="RULE.yaml", nargs="+", help="rule files (as dropped into triggers_dir)")
    p.add_argument("--url", help="search this live server for the entries each rule matches now (ldap://host:port)")
    p.add_argument("--ldif", action="append", default=[], help="match against the entries of this LDIF file (repeatable)")
    p.add_argument("--bind-dn", default="", help="bind as this DN for --url (default: anonymous)")
    p.add_argument("--password", default="", help="password for --bind-dn")
    p.add_argument("--max-entries", type=int, default=20, help="matching entries listed per rule (default 20)")
    p.add_argument("--quiet", "-q", action="store_true", help="only errors and one line per rule")
    return p


def _seconds(value: float) -> str:
    return f"{value:g} s"


def explain(rule: TriggerConfig) -> list[str]:
    """A rule in words, one line a point."""
    events = rule.events
    where = f"{rule.scope} search of {rule.base!r}" if rule.base else f"{rule.scope} search of every naming context"
    lines = [f"watches:    {where}, entries matching {rule.filter}"]
    when = []
    hold = f" once it has held {_seconds(rule.for_)}" if rule.for_ else " as soon as it holds"
    if "enter" in events:
        when.append(f"enter{hold}" + (f", again every {_seconds(rule.repeat)} while it holds" if rule.repeat else ""))
    if "leave" in events:
        when.append("leave " + (f"once it has stopped for {_seconds(rule.for_)}" if rule.for_ else "as soon as it stops")
                    + " (or the entry goes)")
    if "change" in events:
        what = ", ".join(rule.attributes) if rule.attributes else "any attribute"
        when.append(f"change when {what} changes on an entry it holds for")
    lines.append("fires:      " + "; ".join(when))
    if rule.for_:
        lines.append(f"hysteresis: a value flapping faster than {_seconds(rule.for_)} fires nothing")
    if rule.rate_limit:
        lines.append(f"rate limit: at most {rule.rate_limit.firings} firings in any {_seconds(rule.rate_limit.per)}; "
                     "more are dropped and logged")
    for i, a in enumerate(rule.actions):
        kind = a.kind
        if kind == "exec":
            what = f"exec {shlex.join(a.argv)} (timelimit {_seconds(a.timelimit)}, entry as LDIF on stdin)"
        elif kind == "http":
            what = f"http POST JSON to {a.http} (timeout {_seconds(a.timelimit)})"
        elif kind == "log":
            what = f"log a {a.log} line"
        else:
            what = "ldap: publish GridinfoAlertID=<firing id>,ou=alerts,o=infosys"
        retries = f"; {a.retries} retries, first after {_seconds(a.retry_delay)}" if kind in ("exec", "http") else ""
        lines.append(f"action {i}:   {what}{retries}")
    if not rule.enabled:
        lines.append("enabled:    false (the rule is read but not evaluated)")
    return lines


def _search_url(url: str, rule: TriggerConfig, bind_dn: str, password: str) -> list[str]:
    """DNs of the entries the rule matches now on a live server."""
    import ldap3

    from gridinfo.ldap.client import LDAPURL

    parsed = LDAPURL.parse(url)
    server = ldap3.Server(parsed.host, port=parsed.port, get_info=ldap3.DSA if not rule.base else ldap3.NONE, connect_timeout=10)
    conn = ldap3.Connection(server, user=bind_dn or None, password=password or None, auto_bind=True, receive_timeout=30)
    try:
        scope = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}[rule.scope]
        bases = [rule.base] if rule.base else list(server.info.naming_contexts or []) if server.info else []
        dns: list[str] = []
        for base in bases:
            conn.search(base, rule.filter, scope, attributes=["1.1"])
            dns += [e["dn"] for e in conn.response if e.get("type") == "searchResEntry"]
        return dns
    finally:
        conn.unbind()


def _search_ldif(paths: list[str], rule: TriggerConfig) -> list[str]:
    from gridinfo.directory.schema import default_schema
    from gridinfo.directory.tree import DirectoryTree
    from gridinfo.gris.backend import load_static_ldif
    from gridinfo.ldap.tree_backend import TreeBackend
    from gridinfo.triggers.rules import compile_rule

    tree = DirectoryTree(default_schema())
    for error in load_static_ldif(tree, paths):
        print(f"warning: {error}", file=sys.stderr)
    _, (entries, _) = compile_rule(rule, TreeBackend(tree), tree.schema, tree.key)
    return [e.dn for e in entries]


def check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridinfo.triggers.rules import read_rule_file

    status = 0
    for path in args.rules:
        try:
            loaded = read_rule_file(path)
        except ConfigError as e:
            err.write(f"{e}\n")
            status = 2
            continue
        if not loaded:
            out.write(f"{path}: no rules\n")
        for r in loaded:
            rule = r.config
            out.write(f"rule {rule.name} ({r.source}): accepted\n")
            if not args.quiet:
                for line in explain(rule):
                    out.write(f"  {line}\n")
            sources = [("server " + args.url, lambda: _search_url(args.url, rule, args.bind_dn, args.password))] if args.url else []
            if args.ldif:
                sources.append(("LDIF " + ", ".join(args.ldif), lambda: _search_ldif(args.ldif, rule)))
            for what, search in sources:
                try:
                    dns = search()
                except Exception as e:  # unreachable server, refused search: reported, not raised
                    err.write(f"{path}: rule {rule.name}: cannot search {what}: {type(e).__name__}: {e}\n")
                    status = max(status, 1)
                    continue
                if "enter" in rule.events:
                    when = f"enter fires for each after {_seconds(rule.for_)} more, if it still matches then" if rule.for_ \
                        else "enter fires for each as soon as the rule is loaded"
                else:
                    when = "nothing fires for them until they change"
                out.write(f"  matches now on {what}: {len(dns)} entries" + (f"; {when}" if dns else "") + "\n")
                for dn in dns[: args.max_entries]:
                    out.write(f"    {dn}\n")
                if len(dns) > args.max_entries:
                    out.write(f"    ... and {len(dns) - args.max_entries} more\n")
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return check(args, sys.stdout, sys.stderr)
    except GridinfoError as e:
        print(f"gridinfo-trigger-check: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "check", "explain", "main"]
