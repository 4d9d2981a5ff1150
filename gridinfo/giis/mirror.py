"""Mirror mode (BDII style): the GIIS pulls a child's whole subtree every period and answers locally.

A pull replaces the mirror tree with what the child sent, touching only entries that changed.
A failed pull keeps the mirrored entries until keepto, marked stale (``Mds-validto`` in the
past); past keepto they go.  Searches read the mirror tree with the route's base and scope.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from gridinfo.directory import filters as F
from gridinfo.directory.query import Scope, SearchRequest
from gridinfo.errors import LDAPError, NoSuchObject, ResultCode
from gridinfo.giis.children import Child
from gridinfo.giis.forwarder import ClassSpeller, Part, mark_stale
from gridinfo.giis.leases import format_generalized_time
from gridinfo.giis.namespace import Route
from gridinfo.ldap.client import ClientResult, decode_entry, entry_dn
from gridinfo.ldap.tree_backend import suffix_attributes


def answer_from_mirror(child: Child, route: Route, request: SearchRequest, now: float) -> Part:
    """Answer from the mirror tree (in the GIIS namespace), with the route's base and scope."""
    tree = child.mirror
    assert tree is not None
    if child.mirror_last_success is not None and now >= child.keeps_until(child.mirror_last_success):
        for key in list(tree.entries):
            tree.remove(key)
        child.mirror_last_success = None
    ns = child.namespace
    base = ns.to_giis(route.base) or request.base
    try:
        result = tree.search(replace(request, base=base, scope=route.scope))
    except NoSuchObject:
        return Part([], True, child=child.url)
    child.stats.cache_hits += 1
    entries = result.entries
    if ns.collapsed and route.scope in (Scope.BASE, Scope.SUB) and tree.key(base) == ns.mount_key:
        # the child's suffix entry is kept in the mirror as the subtree's root, but the GIIS's own wins
        entries = [op for op in entries if tree.key(entry_dn(op)) != ns.mount_key]
    return Part(entries, False, truncated=result.code == ResultCode.SIZE_LIMIT_EXCEEDED, child=child.url)


def pull_mirror(
    child: Child, reactor: IReactorTime, max_entries: int, speller: ClassSpeller | None = None
) -> defer.Deferred[int]:
    """Fetch the child's whole subtree; touch only entries that changed.  Returns changes."""
    assert child.mirror is not None
    started = reactor.seconds()
    d: defer.Deferred[ClientResult] = child.client.search(
        child.suffix, 2, F.Present("objectClass"), ("*",), timeout=child.timeout, max_entries=max_entries
    )

    def ok(result: ClientResult) -> int:
        now = reactor.seconds()
        if result.code not in (0, 4, 32):  # 32: the child has no such subtree, so nothing to mirror
            raise LDAPError(f"mirror pull answered {result.code}: {result.message}")
        tree = child.mirror
        assert tree is not None
        ns = child.namespace
        seen: set[str] = set()
        changes = 0
        for op in result.entries:
            dn, attrs = decode_entry(op)
            giis_dn = ns.to_giis(dn)
            if giis_dn is None:
                continue
            if child.drop_classes and any(
                n.lower() == "objectclass" and any(v.decode("utf-8", "replace").lower() in child.drop_classes for v in vs)
                for n, vs in attrs
            ):
                continue
            if speller is not None:
                attrs = speller.attributes(attrs) or attrs
            entry = tree.builder.build(giis_dn, attrs, source=f"child:{child.url}")
            seen.add(entry.key)
            old = tree.get(entry.key)
            if old is not None and old.encoded == entry.encoded:
                continue
            tree.add(entry)
            changes += 1
        if ns.collapsed and ns.mount_key not in seen:
            # the subtree's root, so searches based on the GIIS suffix find it (never returned)
            seen.add(ns.mount_key)
            if ns.mount_key not in tree.entries:
                tree.add(tree.builder.build(ns._mount_text, suffix_attributes(ns._mount_text), source="giis"))
        for k in [k for k in tree.entries if k not in seen]:
            tree.remove(k)
            changes += 1
        child.mirror_last_success = now
        child.stats.latency = now - started
        child.stats.last_contact = now
        child.stats.entries = len(tree)
        child.set_state("ok")
        return changes

    def failed(f: Failure) -> int:
        child.set_state("unreachable", f.getErrorMessage())
        mark_mirror_stale(child, reactor.seconds())
        return 0

    return d.addCallback(ok).addErrback(failed)


def mark_mirror_stale(child: Child, now: float) -> None:
    """A failed pull: the mirrored entries stay until keepto, with ``Mds-validto`` in the past."""
    tree = child.mirror
    last = child.mirror_last_success
    if tree is None or last is None:
        return
    expired_at = min(last + child.cachettl, now - 1)
    stamp = format_generalized_time(expired_at).encode()
    for entry in list(tree.entries.values()):
        if entry.get("mds-validto") == [stamp]:
            continue  # marked by an earlier failed pull
        _, attrs = decode_entry(mark_stale(entry.encoded, expired_at))
        tree.add(tree.builder.build(entry.dn, attrs, source=entry.source))
