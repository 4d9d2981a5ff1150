"""``giis-tree``: walk a GIIS hierarchy through its registrations and draw it.

    giis-tree ldap://host:2135/mds-vo-name=site,o=grid [--depth N] [--timeout S] [--count] [--json]

For each node, within ``--timeout`` seconds for all its requests: a base search of its suffix
(round-trip latency), its status under ``o=infosys`` (failing providers, the entry count it
publishes, the web view it advertises in ``GridinfoWebURL``), then MDS2's
``-s base giisregistrationstatus`` (its registrants, with status, lease and cachettl), then each
registrant in turn (in parallel), down to ``--depth``; a node met twice (a registration
cycle) is marked and not followed.  The walk (:class:`Walk`) is shared with the web view's
hierarchy page (:mod:`gridinfo.web.hierarchy`).  A GRIS answers the status search with
nothing and is a leaf.  Nodes that do not answer, whose lease is INVALID, or that their parent
reports unreachable or stale are unhealthy: marked (red on a terminal) and the exit status is 1,
so the command serves as a monitoring check.  A node whose status under ``o=infosys`` shows
information providers whose last run failed (``GridinfoProviderLastError``) is degraded: it
answers, perhaps with stale data, but is counted unhealthy too.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from gridinfo.directory.gtime import parse_generalized_time

UNHEALTHY_CHILD_STATES = {"unreachable", "slow", "invalid"}


@dataclass
class Node:
    url: str
    name: str
    host: str
    port: int
    suffix: str
    reg_status: str = ""  # as the parent reports it: VALID, INVALID, STATIC ("" for the root)
    child_state: str = ""  # the parent's view of its health
    lease_left: float | None = None
    cachettl: str = ""
    latency_ms: float | None = None
    entries: int | None = None
    error: str = ""
    note: str = ""
    failing_providers: dict[str, str] = field(default_factory=dict)  # name -> last error (o=infosys)
    web_url: str = ""  # its own web view, as its server status publishes it (GridinfoWebURL)
    published_entries: int | None = None  # the entry count its o=infosys status publishes
    depth_limited: bool = False  # visited at the depth bound: its registrants were not asked for
    partial: str = ""  # the message of a base search answered in part (a GIIS some children failed)
    children: list[Node] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return (
            not self.error
            and not self.failing_providers
            and self.reg_status != "INVALID"
            and self.child_state not in UNHEALTHY_CHILD_STATES
        )

    def as_json(self, *, children: bool = True) -> dict[str, Any]:
        """The node as JSON (``--json``, the web view's /api/hierarchy); its children's too unless not ``children``."""
        out = {
            "name": self.name,
            "url": self.url,
            "healthy": self.healthy,
            "registration_status": self.reg_status or None,
            "state_at_parent": self.child_state or None,
            "lease_seconds_left": None if self.lease_left is None else round(self.lease_left, 1),
            "cachettl": int(self.cachettl) if self.cachettl.isdigit() else None,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "entries": self.entries,
            "error": self.error or None,
            "degraded": bool(self.failing_providers),
            "failing_providers": dict(self.failing_providers),
            "note": self.note or None,
            "web_url": self.web_url or None,
            "published_entries": self.published_entries,
            "depth_limited": self.depth_limited,
            "partial": self.partial or None,
        }
        if children:
            out["children"] = [c.as_json() for c in self.children]
        return out


def _name(suffix: str) -> str:
    first = suffix.split(",", 1)[0]
    return first.partition("=")[2].strip() or suffix


def _first(attrs: dict[str, list[bytes]], name: str) -> str:
    vals = attrs.get(name.lower())
    return vals[0].decode("utf-8", "replace") if vals else ""


#: what the walk reads from each node's ``o=infosys``: its server status (web URL, entry count),
#: BDII's UpdateStats (entry count) and its providers whose last run failed
INFOSYS_FILTER = (
    "(|(objectClass=GridinfoServerStatus)(objectClass=UpdateStats)"
    "(&(objectClass=GridinfoProviderStatus)(GridinfoProviderLastError=*)))"
)
INFOSYS_ATTRIBUTES = ["objectClass", "GridinfoProviderName", "GridinfoProviderLastError", "GridinfoWebURL",
                      "GridinfoTotalEntries", "TotalEntries"]


def _attributes(pairs: list[tuple[str, list[bytes]]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for n, v in pairs:
        out.setdefault(n.lower(), []).extend(v)
    return out


def registrant(attrs: dict[str, list[bytes]], now: float) -> Node | None:
    """The node a registration entry names (``giisregistrationstatus`` or a GIIS's
    ``GridinfoChildStatus`` entry: both carry MDS2's ``Mds-Service-*`` attributes), as its parent
    reports it; None when the entry names no registrant.  ``attrs``: lower-cased names."""
    from gridinfo.ldap.client import LDAPURL

    host = _first(attrs, "Mds-Service-hn")
    port = _first(attrs, "Mds-Service-port")
    suffix = _first(attrs, "Mds-Service-Ldap-suffix")
    if not host or not port.isdigit() or not suffix:
        return None  # not a registrant entry (e.g. a plain server answering with its own entry)
    child = Node(
        url=str(LDAPURL(host, int(port), suffix)),
        name=_name(suffix),
        host=host,
        port=int(port),
        suffix=suffix,
        reg_status=_first(attrs, "Mds-Reg-status"),
        child_state=_first(attrs, "GridinfoChildState"),
        cachettl=_first(attrs, "Mds-Service-Ldap-cachettl"),
    )
    validto = _first(attrs, "Mds-validto")
    if validto:
        try:
            child.lease_left = parse_generalized_time(validto) - now
        except Exception:
            pass
    return child


class Walk:
    """One walk of a hierarchy over LDAP: the nodes met so far (cycles) and the clients to close.

    For each node, within ``timeout`` seconds for all its requests: a base search of its suffix
    (the latency), its ``o=infosys`` status, a subtree count (``count``), then, unless ``level``
    reached ``depth``, its registrants, visited in parallel.  A node met a second time (same
    host, port and suffix) is marked and not followed.  Shared by ``giis-tree`` and the web
    view's hierarchy page, which starts it at the children its own status lists.
    """

    def __init__(self, reactor: Any, *, depth: int, timeout: float, count: bool):
        from gridinfo.directory.dn import DNNormaliser

        self.reactor = reactor
        self.depth = depth
        self.timeout = timeout
        self.count = count
        self._normalise = DNNormaliser(None).key
        self._clients: list[Any] = []
        self._seen: set[tuple[str, int, str]] = set()

    def already_seen(self, host: str, port: int, suffix: str) -> None:
        """Count a node as met (the walker's own node, when the walk starts below it)."""
        self._seen.add((host.lower(), port, self._normalise(suffix)))

    def nodes(self, nodes: list[Node], level: int) -> Any:
        """A Deferred firing with ``nodes`` once each is visited (and its subtree, to ``depth``);
        every connection the walk opened is closed by then."""
        from twisted.internet import defer

        d = defer.gatherResults([self.visit(n, level) for n in nodes], consumeErrors=True)

        def close(result: Any) -> Any:
            for c in self._clients:
                c.close()
            self._clients.clear()
            return result

        return d.addBoth(close).addCallback(lambda _: nodes)

    def visit(self, node: Node, level: int) -> Any:
        from twisted.internet import defer

        return defer.ensureDeferred(self._visit(node, level))

    async def _visit(self, node: Node, level: int) -> Node:
        from twisted.internet import defer

        from gridinfo.ldap.client import LDAPClient, decode_entry

        key = (node.host.lower(), node.port, self._normalise(node.suffix))
        if key in self._seen:
            node.note = "already shown (registration cycle?)"
            return node
        self._seen.add(key)
        reactor = self.reactor
        started = reactor.seconds()
        deadline = started + self.timeout

        def left() -> float:
            return max(0.001, deadline - reactor.seconds())

        client = LDAPClient(reactor, node.host, node.port, connect_timeout=self.timeout)
        self._clients.append(client)
        try:
            r = await client.search(node.suffix, 0, "(objectClass=*)", ["1.1"], timeout=left())
        except Exception as e:  # ClientError, LDAPError: the node is unreachable
            node.error = str(e) or type(e).__name__
            return node
        node.latency_ms = (reactor.seconds() - started) * 1000
        if r.code != 0:
            node.error = f"base search answered {r.code}: {r.message}"
            return node
        node.partial = r.message
        try:
            infosys = await client.search("o=infosys", 2, INFOSYS_FILTER, INFOSYS_ATTRIBUTES, timeout=left())
        except Exception:
            infosys = None  # not a gridinfo server, or no status: nothing to judge
        if infosys is not None and infosys.code == 0:
            for op in infosys.entries:
                status_attrs = _attributes(decode_entry(op)[1])
                classes = {v.lower() for v in status_attrs.get("objectclass", [])}
                if b"gridinfoserverstatus" in classes:
                    node.web_url = node.web_url or _first(status_attrs, "GridinfoWebURL")
                    total = _first(status_attrs, "GridinfoTotalEntries")
                    if total.isdigit() and node.published_entries is None:
                        node.published_entries = int(total)
                elif b"updatestats" in classes:
                    total = _first(status_attrs, "TotalEntries")
                    if total.isdigit():
                        node.published_entries = int(total)  # BDII's figure: own entries and children's
                name = _first(status_attrs, "GridinfoProviderName")
                if name and b"gridinfoproviderstatus" in classes:
                    node.failing_providers[name] = _first(status_attrs, "GridinfoProviderLastError")
        if self.count:
            try:
                c = await client.search(node.suffix, 2, "(objectClass=*)", ["1.1"], timeout=left())
                node.entries = len(c.entries)
            except Exception as e:
                node.error = f"count failed: {e}"
        if level >= self.depth:
            node.depth_limited = True
            return node
        try:
            status = await client.search(node.suffix, 0, "(objectClass=*)", ["giisregistrationstatus"], timeout=left())
        except Exception as e:
            node.error = f"registration status failed: {e}"
            return node
        now = reactor.seconds()
        kids = []
        for op in status.entries:
            child = registrant(_attributes(decode_entry(op)[1]), now)
            if child is not None:
                kids.append(child)
        node.children = kids
        await defer.gatherResults([self.visit(k, level + 1) for k in kids], consumeErrors=True)
        return node


def walk(reactor: Any, url: str, *, depth: int, timeout: float, count: bool) -> Any:
    """A Deferred firing with the root :class:`Node` of the hierarchy under ``url``."""
    from gridinfo.ldap.client import LDAPURL

    u = LDAPURL.parse(url, default_port=2135)
    root = Node(url=str(u), name=_name(u.base), host=u.host, port=u.port, suffix=u.base)
    return Walk(reactor, depth=depth, timeout=timeout, count=count).nodes([root], 0).addCallback(lambda _: root)


class Painter:
    COLOURS = {"red": "\033[31m", "green": "\033[32m", "yellow": "\033[33m", "dim": "\033[2m"}
    RESET = "\033[0m"

    def __init__(self, colour: bool):
        self.colour = colour

    def __call__(self, text: str, colour: str) -> str:
        return f"{self.COLOURS[colour]}{text}{self.RESET}" if self.colour else text


def _describe(node: Node, paint: Painter) -> str:
    parts = [node.name, paint(node.url, "dim")]
    if node.reg_status:
        parts.append(node.reg_status)
    if node.lease_left is not None:
        left = node.lease_left
        parts.append(f"lease {left:.0f}s left" if left >= 0 else f"lease expired {-left:.0f}s ago")
    if node.cachettl:
        parts.append(f"cachettl {node.cachettl}s")
    if node.latency_ms is not None:
        parts.append(f"{node.latency_ms:.1f} ms")
    if node.entries is not None:
        parts.append(f"{node.entries} entries")
    if node.child_state and node.child_state not in ("ok", "new"):
        parts.append(f"parent says {node.child_state}")
    if node.error:
        parts.append(f"UNREACHABLE: {node.error}")
    if node.failing_providers:
        failing = ", ".join(f"{name} ({error})" for name, error in sorted(node.failing_providers.items()))
        parts.append(f"DEGRADED: providers failing: {failing}")
    if node.partial:
        parts.append(f"PARTIAL: {node.partial}")
    if node.web_url:
        parts.append(paint(f"web {node.web_url}", "dim"))
    if node.note:
        parts.append(f"({node.note})")
    if node.depth_limited and not node.error:
        parts.append("(depth limit: not descended)")
    text = "  ".join(parts)
    if not node.healthy:
        return paint("✗ " + text, "red")
    if node.reg_status == "INVALID" or node.child_state == "slow":
        return paint("! " + text, "yellow")
    return paint("✓ ", "green") + text


def render(root: Node, colour: bool = False) -> str:
    paint = Painter(colour)
    lines = [_describe(root, paint)]

    def draw(node: Node, prefix: str) -> None:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + _describe(child, paint))
            draw(child, prefix + ("    " if last else "│   "))

    draw(root, "")
    return "\n".join(lines) + "\n"


def all_healthy(node: Node) -> bool:
    return node.healthy and all(all_healthy(c) for c in node.children)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="giis-tree", description="Draw a GIIS hierarchy with each node's health.")
    p.add_argument("url", help="ldap://host:port/mds-vo-name=NAME,o=grid (port defaults to 2135)")
    p.add_argument("--depth", type=int, default=10, help="levels to descend (default 10)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds for each node, all its requests together (default 10)")
    p.add_argument("--count", action="store_true", help="count each node's entries (a subtree search)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    p.add_argument("--colour", "--color", choices=["auto", "always", "never"], default="auto")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gridinfo.ldap.client import LDAPURL

    try:
        u = LDAPURL.parse(args.url, default_port=2135)
    except ValueError as e:
        sys.stderr.write(f"giis-tree: {e}\n")
        return 2
    if not u.base:
        sys.stderr.write("giis-tree: the URL must name the GIIS suffix: ldap://host:port/mds-vo-name=NAME,o=grid\n")
        return 2
    from twisted.internet import reactor

    outcome: dict[str, Any] = {}

    def run() -> None:
        d = walk(reactor, args.url, depth=args.depth, timeout=args.timeout, count=args.count)

        def done(result: Any) -> None:
            outcome["result"] = result
            reactor.stop()

        d.addBoth(done)

    reactor.callWhenRunning(run)
    reactor.run()
    root = outcome.get("result")
    if not isinstance(root, Node):
        sys.stderr.write(f"giis-tree: {getattr(root, 'getErrorMessage', lambda: root)()}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(root.as_json(), indent=2) + "\n")
    else:
        colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
        sys.stdout.write(render(root, colour))
    return 0 if all_healthy(root) else 1


if __name__ == "__main__":
    sys.exit(main())
