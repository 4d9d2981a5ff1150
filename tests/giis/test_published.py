"""The published tree: one holder per DN among a GIIS's own entries and its held children (each row of
gridinfo/giis/published.py's table), and what its change log tells a subscriber."""

from __future__ import annotations

from gridinfo.directory.changes import ChangeKind, Subscription
from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.giis.published import ChildStore, Publisher

DN = "GlueCEUniqueID=ce,mds-vo-name=site,o=grid"


def setup() -> tuple[DirectoryTree, Publisher, ChildStore, ChildStore]:
    tree = DirectoryTree(default_schema())
    publisher = Publisher(tree)
    first = publisher.store("ldap://a:1/mds-vo-name=local,o=grid", (-1, 0.0))  # a static child
    second = publisher.store("ldap://b:1/mds-vo-name=local,o=grid", (0, 100.0))  # a lease
    return tree, publisher, first, second


def ce(store: ChildStore, free: str, dn: str = DN):
    return store.builder.build(dn, [("objectClass", [b"GlueCE"]), ("GlueCEUniqueID", [b"ce"]),
                                    ("GlueCEStateFreeCPUs", [free.encode()])], source=store.source)


def free(tree: DirectoryTree) -> bytes | None:
    entry = tree.lookup(DN)
    return None if entry is None else entry.get("gluecestatefreecpus")[0]


def test_a_dn_nobody_has_is_published_and_its_holder_replaces_it() -> None:
    tree, _, first, _ = setup()
    first.add(ce(first, "1"))
    assert free(tree) == b"1"
    first.add(ce(first, "2"))
    assert free(tree) == b"2"


def test_a_lower_ranked_store_is_a_shadow_until_the_holder_lets_go() -> None:
    tree, publisher, first, second = setup()
    first.add(ce(first, "1"))
    second.add(ce(second, "9"))
    assert free(tree) == b"1"
    assert publisher.shadows[tree.key(DN)] == [second]
    first.remove(tree.key(DN))
    assert free(tree) == b"9"  # the shadow's entry takes its place
    assert tree.key(DN) not in publisher.shadows
    second.remove(tree.key(DN))
    assert tree.lookup(DN) is None


def test_a_higher_ranked_store_takes_a_dn_over() -> None:
    tree, publisher, first, second = setup()
    second.add(ce(second, "9"))
    first.add(ce(first, "1"))
    assert free(tree) == b"1"
    first.remove(tree.key(DN))
    assert free(tree) == b"9"


def test_a_shadow_letting_go_changes_nothing() -> None:
    tree, publisher, first, second = setup()
    first.add(ce(first, "1"))
    second.add(ce(second, "9"))
    second.remove(tree.key(DN))
    assert free(tree) == b"1" and not publisher.shadows


def test_the_giis_own_entry_always_wins() -> None:
    tree, publisher, first, _ = setup()
    tree.add(tree.build(DN, [("objectClass", [b"GlueCE"]), ("GlueCEUniqueID", [b"ce"]),
                             ("GlueCEStateFreeCPUs", [b"own"])], source="gridinfo"))
    first.add(ce(first, "1"))
    assert free(tree) == b"own"
    first.remove(tree.key(DN))
    assert free(tree) == b"own"


def test_forgetting_a_store_removes_its_entries_and_promotes_shadows() -> None:
    tree, publisher, first, second = setup()
    first.add(ce(first, "1"))
    first.add(ce(first, "1", dn="GlueCEUniqueID=only,mds-vo-name=site,o=grid"))
    second.add(ce(second, "9"))
    publisher.forget(first)
    assert free(tree) == b"9"
    assert tree.lookup("GlueCEUniqueID=only,mds-vo-name=site,o=grid") is None
    assert first.source not in publisher.stores


def test_stale_marks_are_undone_by_unmark_unless_the_entry_changed_since() -> None:
    """A resumed stream sends only what changed: what it left alone gets its fresh version back."""
    tree, _, first, _ = setup()
    other = "GlueCEUniqueID=other,mds-vo-name=site,o=grid"
    first.add(ce(first, "1"))
    first.add(ce(first, "5", dn=other))
    first.mark(ce(first, "stale"))
    first.mark(ce(first, "stale", dn=other))
    assert free(tree) == b"stale"
    first.add(ce(first, "6", dn=other))  # changed while we were away: sent again
    assert first.unmark() == 1
    assert free(tree) == b"1"
    assert tree.lookup(other).get("gluecestatefreecpus") == [b"6"]
    assert not first.fresh


def test_subscribers_of_the_giis_tree_hear_held_children_changes_once() -> None:
    """The GIIS's change stream is its tree's change log: a child's add, modify and remove each
    reach a subscriber once; a shadow's updates reach nobody."""
    tree, _, first, second = setup()
    sub = tree.changelog.subscribe(Subscription(lambda e: True))
    first.add(ce(first, "1"))
    second.add(ce(second, "9"))  # a shadow: no change
    first.add(ce(first, "2"))
    first.add(ce(first, "2"))  # the same content: no change
    kinds = [n.kind for n in sub.drain(10)]
    assert kinds == [ChangeKind.ADD]  # coalesced: an add of the newest entry
    first.remove(tree.key(DN))  # the shadow takes over: a modify
    (notice,) = sub.drain(10)
    assert notice.kind is ChangeKind.MODIFY and notice.entry.get("gluecestatefreecpus") == [b"9"]
    second.remove(tree.key(DN))
    (notice,) = sub.drain(10)
    assert notice.kind is ChangeKind.DELETE


def test_a_withheld_store_publishes_nothing_until_its_refresh_is_in() -> None:
    """A pushed child's first refresh: what arrives is kept in its store, not in the tree (the child
    is still asked per search, so a half-copied child would be served twice), and is published at
    once, as it stands then, when the refresh is in."""
    tree, _, first, _ = setup()
    heard = Subscription(lambda e: True)
    tree.changelog.subscribe(heard)
    first.withheld = True
    other = "GlueCEUniqueID=gone,mds-vo-name=site,o=grid"
    first.add(ce(first, "1"))
    first.add(ce(first, "5", dn=other))
    first.add(ce(first, "2"))
    first.remove(tree.key(other))  # the refresh's present phase dropped it
    assert tree.lookup(DN) is None and len(first) == 1
    assert not heard.pending
    first.publish()
    assert free(tree) == b"2" and tree.lookup(other) is None
    assert [(n.kind, n.dn) for n in heard.pending.values()] == [(ChangeKind.ADD, DN)]
    first.add(ce(first, "3"))  # published from now on
    assert free(tree) == b"3"
