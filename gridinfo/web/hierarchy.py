"""The hierarchy page's tree: this node, then everything below it to the leaves, as ``giis-tree`` draws it.

This node's part comes through the backend, with the web view's identity: its children as its
own status entries list them (``GridinfoChildStatus`` under ``o=infosys``: registration status,
lease, cachettl, its view of their health).  Below that, ``giis-tree``'s walk
(:class:`gridinfo.cli.giis_tree.Walk`, the same code) goes over LDAP: each child's latency, the
status it publishes under ``o=infosys`` (entry count, failing providers, its web view), its own
registrants (``giisregistrationstatus``), to ``depth`` levels below this node, each node within
``timeout`` seconds; a node met twice (a registration cycle, this node itself included) is
marked and not followed.

Links: a node links to its own web view when its server status publishes one
(``GridinfoWebURL``), else to this node's browser page at the DN where its entries appear here
(``shown_at``: its mount point at its parent, moved level by level into this node's namespace).
The JSON shape is documented in docs/web.md (``/api/hierarchy``, ``tree``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from twisted.internet import defer

from gridinfo.cli.giis_tree import Node, Walk, registrant
from gridinfo.errors import LDAPError

Entry = tuple[str, dict[str, list[str]]]
#: mount(node suffix, parent suffix, where the parent's entries appear here) -> where the node's do
Mount = Callable[[str, str, str], str]


def registrants(children: Sequence[Entry], now: float) -> list[Node]:
    """The nodes this GIIS's ``GridinfoChildStatus`` entries name, as it reports them."""
    nodes = []
    for _, attrs in children:
        node = registrant({k.lower(): [v.encode("utf-8") for v in vs] for k, vs in attrs.items()}, now)
        if node is not None:
            nodes.append(node)
    return nodes


def walk_below(children: Sequence[Entry], reactor: Any, *, depth: int, timeout: float,
               own: Iterable[tuple[str, int, str]] = ()) -> defer.Deferred[list[Node]]:
    """This node's children, each visited over LDAP with its subtree to ``depth`` levels below
    this node; ``own``: the (host, port, suffix) this node registers as, so that a registration
    coming back to it is a cycle at once."""
    nodes = registrants(children, reactor.seconds())
    walk = Walk(reactor, depth=depth, timeout=timeout, count=False)
    for host, port, suffix in own:
        walk.already_seen(host, port, suffix)
    return walk.nodes(nodes, 1)


def _stale(node: Node) -> bool:
    """Its parent serves what it last had of it: the lease ran out, or the parent cannot reach it."""
    return (
        node.reg_status == "INVALID"
        or (node.lease_left is not None and node.lease_left < 0)
        or node.child_state in ("unreachable", "slow", "invalid")
    )


def node_json(node: Node, parent_suffix: str, parent_shown_at: str | None, mount: Mount | None) -> dict[str, Any]:
    """giis-tree's JSON of one node, with where it is shown here, its link, and its stale mark."""
    out = node.as_json(children=False)
    shown_at = None
    if mount is not None and parent_shown_at is not None:
        try:
            shown_at = mount(node.suffix, parent_suffix, parent_shown_at)
        except LDAPError:
            shown_at = None  # a suffix that is not a DN: nothing to browse
    out["suffix"] = node.suffix
    out["shown_at"] = shown_at
    out["stale"] = _stale(node)
    out["link"] = node.web_url or ("/browse?" + urlencode({"dn": shown_at}) if shown_at else None)
    out["children"] = [node_json(c, node.suffix, shown_at, mount) for c in node.children]
    return out


def count_unhealthy(tree: dict[str, Any]) -> int:
    return (0 if tree["healthy"] else 1) + sum(count_unhealthy(c) for c in tree["children"])


def tree_json(own: dict[str, Any], nodes: list[Node], web_urls: list[str], mount: Mount | None) -> dict[str, Any]:
    """The whole tree: this node (``own``: :func:`gridinfo.web.views.hierarchy`'s answer) at the root."""
    suffix = own["suffix"]
    return {
        "name": suffix.split(",", 1)[0].partition("=")[2] or suffix,
        "kind": own["kind"],
        "suffix": suffix,
        "url": None,
        "web_url": web_urls[0] if web_urls else None,
        "link": "/",
        "shown_at": suffix,
        "healthy": own["healthy"],
        "stale": False,
        "partial": own["partial"] or None,
        "published_entries": own["entries"],
        "children": [node_json(n, suffix, suffix, mount) for n in nodes],
    }
