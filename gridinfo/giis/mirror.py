"""Mirror mode (BDII style): the GIIS pulls a child's whole subtree every period and answers locally.

A pull replaces the child's store (:mod:`gridinfo.giis.published`) with what the child sent,
touching only entries that changed; the store publishes into the GIIS's tree, where searches
find them.  A failed pull keeps the held entries until keepto, marked stale (``Mds-validto`` in
the past, state attributes ``Unknown``); past keepto they go.  Pushed children
(:mod:`gridinfo.giis.push`) are held the same way and share the stale marking and expiry.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from gridinfo.directory import filters as F
from gridinfo.directory.entry import Entry
from gridinfo.errors import LDAPError
from gridinfo.giis.children import Child
from gridinfo.giis.forwarder import ClassSpeller, mark_stale
from gridinfo.giis.leases import format_generalized_time
from gridinfo.ldap.client import ClientResult, decode_entry


def expire_held(child: Child, now: float) -> None:
    """Past keepto, a held child's entries go (they were served, marked stale, until then)."""
    store = child.mirror
    if store is None or child.mirror_last_success is None:
        return
    if child.push is not None and child.push.live:
        return  # a live stream: the data is current
    if now >= child.keeps_until(child.mirror_last_success):
        store.clear()
        child.mirror_last_success = None
        child.stats.entries = 0


def hold_entry(child: Child, dn: str, attrs: list[tuple[str, list[bytes]]], speller: ClassSpeller | None) -> Entry | None:
    """The child's entry as the GIIS holds it (renamed, filtered, spelled); None: not taken."""
    giis_dn = child.namespace.to_giis(dn)
    if giis_dn is None:
        return None
    if child.drop_classes and any(
        n.lower() == "objectclass" and any(v.decode("utf-8", "replace").lower() in child.drop_classes for v in vs)
        for n, vs in attrs
    ):
        return None
    if speller is not None:
        attrs = speller.attributes(attrs) or attrs
    store = child.mirror
    assert store is not None
    return store.builder.build(giis_dn, attrs, source=store.source)


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
        seen: set[str] = set()
        changes = 0
        for op in result.entries:
            dn, attrs = decode_entry(op)
            entry = hold_entry(child, dn, attrs, speller)
            if entry is None:
                continue
            seen.add(entry.key)
            old = tree.get(entry.key)
            if old is not None and old.encoded == entry.encoded:
                continue
            tree.add(entry)
            changes += 1
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
        tree.mark(tree.builder.build(entry.dn, attrs, source=entry.source))
