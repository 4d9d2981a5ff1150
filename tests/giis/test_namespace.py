"""DN rewriting between a GIIS and its children, both ways (MDS2's naming rules)."""

from __future__ import annotations

import pytest

from gridinfo.directory.dn import DNNormaliser
from gridinfo.directory.query import Scope
from gridinfo.giis.namespace import ChildNamespace, Route

N = DNNormaliser(None)
SITE = "mds-vo-name=site,o=grid"


def ns(child: str, giis: str = SITE) -> ChildNamespace:
    return ChildNamespace(child, giis, N)


def test_gris_child_names_collapse_into_the_giis_name() -> None:
    """A GRIS's ...,mds-vo-name=local,o=grid appears as ...,mds-vo-name=<giis>,o=grid."""
    gris = ns("Mds-Vo-name=local, o=Grid")
    assert gris.collapsed
    assert gris.to_giis("GlueCEUniqueID=ce1:2119/jobmanager-pbs-long,Mds-Vo-name=local,o=grid") == (
        "GlueCEUniqueID=ce1:2119/jobmanager-pbs-long,mds-vo-name=site,o=grid"
    )
    assert gris.to_giis("mds-vo-name=local,o=grid") == SITE
    assert gris.to_child("GlueClusterUniqueID=c1,Mds-Vo-Name=SITE,o=grid") == "GlueClusterUniqueID=c1,Mds-Vo-name=local,o=Grid"


def test_giis_child_names_are_appended() -> None:
    """A GIIS child's ...,mds-vo-name=<child>,o=grid appears as ...,mds-vo-name=<child>,mds-vo-name=<giis>,o=grid."""
    grads = ns("Mds-Vo-name=GRADS,o=grid", "Mds-Vo-name=DTF,o=grid")
    assert not grads.collapsed
    assert grads.to_giis("cn=x,Mds-Vo-name=GRADS,o=grid") == "cn=x,Mds-Vo-name=GRADS,Mds-Vo-name=DTF,o=grid"
    # and the names of a grandchild, already appended once, are appended again
    assert grads.to_giis("cn=x,Mds-Vo-name=a,Mds-Vo-name=GRADS,o=grid") == (
        "cn=x,Mds-Vo-name=a,Mds-Vo-name=GRADS,Mds-Vo-name=DTF,o=grid"
    )
    assert grads.to_child("cn=x,mds-vo-name=grads,mds-vo-name=dtf,o=grid") == "cn=x,Mds-Vo-name=GRADS,o=grid"


def test_foreign_suffixes_are_mounted_whole() -> None:
    """A slapd or BDII child outside o=grid appears below the GIIS with its whole suffix."""
    glue = ns("o=glue")
    assert glue.to_giis("GlueSiteUniqueID=s1,o=glue") == "GlueSiteUniqueID=s1,o=glue,mds-vo-name=site,o=grid"
    whole = ns("o=grid")
    assert whole.to_giis("mds-vo-name=resource,o=grid") == "mds-vo-name=resource,mds-vo-name=site,o=grid"


def test_entries_outside_the_child_suffix_are_dropped() -> None:
    """A child cannot inject entries outside its registered suffix."""
    gris = ns("mds-vo-name=local,o=grid")
    assert gris.to_giis("cn=evil,mds-vo-name=site,o=grid") is None
    assert gris.to_giis("o=grid") is None
    assert gris.to_child("mds-vo-name=other,o=grid") is None


def test_escaped_values_survive_the_round_trip() -> None:
    """Values with commas and plus signs keep their escaping."""
    gris = ns("mds-vo-name=local,o=grid")
    giis_dn = gris.to_giis(r"cn=a\,b+uid=c,mds-vo-name=local,o=grid")
    assert giis_dn == r"cn=a\,b+uid=c,mds-vo-name=site,o=grid"
    assert N.key(gris.to_child(giis_dn)) == N.key(r"cn=a\,b+uid=c,mds-vo-name=local,o=grid")


@pytest.mark.parametrize(
    ("child", "base", "scope", "route"),
    [
        # GRIS child (collapsed onto the GIIS entry)
        ("mds-vo-name=local,o=grid", SITE, Scope.SUB, Route("mds-vo-name=local,o=grid", Scope.SUB)),
        ("mds-vo-name=local,o=grid", SITE, Scope.ONE, Route("mds-vo-name=local,o=grid", Scope.ONE)),
        ("mds-vo-name=local,o=grid", SITE, Scope.BASE, None),
        ("mds-vo-name=local,o=grid", "o=grid", Scope.SUB, Route("mds-vo-name=local,o=grid", Scope.SUB)),
        ("mds-vo-name=local,o=grid", "o=grid", Scope.ONE, None),
        ("mds-vo-name=local,o=grid", "", Scope.SUB, Route("mds-vo-name=local,o=grid", Scope.SUB)),
        ("mds-vo-name=local,o=grid", "cn=x,mds-vo-name=site,o=grid", Scope.BASE, Route("cn=x,mds-vo-name=local,o=grid", Scope.BASE)),
        ("mds-vo-name=local,o=grid", "mds-vo-name=other,o=grid", Scope.SUB, None),
        # GIIS child (appended)
        ("mds-vo-name=c,o=grid", SITE, Scope.SUB, Route("mds-vo-name=c,o=grid", Scope.SUB)),
        ("mds-vo-name=c,o=grid", SITE, Scope.ONE, Route("mds-vo-name=c,o=grid", Scope.BASE)),
        ("mds-vo-name=c,o=grid", SITE, Scope.BASE, None),
        ("mds-vo-name=c,o=grid", "o=grid", Scope.ONE, None),
        ("mds-vo-name=c,o=grid", "mds-vo-name=c,mds-vo-name=site,o=grid", Scope.BASE, Route("mds-vo-name=c,o=grid", Scope.BASE)),
        ("mds-vo-name=c,o=grid", "mds-vo-name=c,mds-vo-name=site,o=grid", Scope.ONE, Route("mds-vo-name=c,o=grid", Scope.ONE)),
        ("mds-vo-name=c,o=grid", "mds-vo-name=d,mds-vo-name=site,o=grid", Scope.SUB, None),
    ],
)
def test_which_children_a_search_touches(child: str, base: str, scope: Scope, route: Route | None) -> None:
    """A search reaches a child only when its base and scope overlap the child's mount point."""
    assert ns(child).route(base, scope) == route


def _full_way(namespace: ChildNamespace, child_dn: str):
    namespace._seen_tail = None  # forget the child's spelling: the DN is parsed every time
    return namespace.to_giis_keyed(child_dn)


def test_plain_names_are_placed_as_the_full_parse_places_them() -> None:
    """After one plain DN on a child's suffix, the next are placed from their text: for every
    DN here (plain values, spaces, escapes, quotes, +, #, =, non-ASCII, other spellings of the
    suffix, the recursion guard and our own RDN), the GIIS name and key equal the full parse's."""
    import random

    rng = random.Random(7)
    alphabet = "abcXYZ019 .:/-_é,+\"\\<>;=#*()'"
    values = ["ce1.example.org:2119/jobmanager-pbs-q", "a", "x y", " lead", "trail ", "#hex", "a=b", "é"]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(400)]
    suffixes = ["Mds-Vo-name=local,o=grid", "mds-vo-name=local,o=grid", "Mds-Vo-name=local, o=grid",
                "mds-vo-name=LOCAL,o=Grid"]
    cases = [
        (ns("Mds-Vo-name=local,o=grid"), suffixes),
        (ns("Mds-Vo-name=GRADS,o=grid", "Mds-Vo-name=DTF,o=grid"), ["Mds-Vo-name=GRADS,o=grid", "mds-vo-name=grads,o=grid"]),
        (ChildNamespace("mds-vo-name=resource,o=grid", "mds-vo-name=site,o=grid", N,
                        guard=N.rdn_key((("mds-vo-name", "site"),))), ["mds-vo-name=resource,o=grid"]),
        # registered in one spelling, written in others: placed as the full parse places them
        (ns("Mds-Vo-name=local, o=grid"), suffixes),
        # the guard inside the registered suffix: the full way refuses every DN, the plain way too
        (ChildNamespace("mds-vo-name=site,mds-vo-name=resource,o=grid", "mds-vo-name=site,o=grid", N,
                        guard=N.rdn_key((("mds-vo-name", "site"),))), ["mds-vo-name=site,mds-vo-name=resource,o=grid"]),
    ]
    fast_seen = 0
    for namespace, tails in cases:
        for value in values:
            for attr in ("GlueCEUniqueID", "cn", "Mds-Vo-name"):
                for tail in tails:
                    escaped = value.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+").replace('"', '\\"')
                    escaped = escaped.replace("<", "\\<").replace(">", "\\>").replace(";", "\\;").replace("=", "\\=")
                    if escaped.startswith((" ", "#")):
                        escaped = "\\" + escaped
                    if escaped.endswith(" ") and not escaped.endswith("\\ "):
                        escaped = escaped[:-1] + "\\ "
                    child_dn = f"{attr}={escaped},{tail}"
                    before = namespace._seen_tail
                    got = namespace.to_giis_keyed(child_dn)
                    fast_seen += before is not None and child_dn.endswith(before)
                    tail_kept = namespace._seen_tail
                    assert got == _full_way(namespace, child_dn), child_dn
                    namespace._seen_tail = tail_kept
        for guarded in ("cn=x,mds-vo-name=site,mds-vo-name=resource,o=grid", "Mds-Vo-name=site,mds-vo-name=resource,o=grid",
                        "Mds-Vo-name=DTF,Mds-Vo-name=GRADS,o=grid", "mds-vo-name=dtf,Mds-Vo-name=GRADS,o=grid"):
            kept = namespace._seen_tail
            assert namespace.to_giis_keyed(guarded) == _full_way(namespace, guarded), guarded
            namespace._seen_tail = kept
    assert cases[1][0].to_giis_keyed("Mds-Vo-name=DTF,Mds-Vo-name=GRADS,o=grid") is None  # our own RDN
    assert cases[2][0].to_giis_keyed("Mds-Vo-name=site,mds-vo-name=resource,o=grid") is None  # the guard
    assert fast_seen > 1000  # the plain way was tried, not only the full one
    assert cases[4][0].to_giis_keyed("GlueCEUniqueID=a,mds-vo-name=site,mds-vo-name=resource,o=grid") is None
    fresh = ns("Mds-Vo-name=local,o=grid")  # its first entry already takes the plain way
    assert fresh._seen_tail == ",Mds-Vo-name=local,o=grid"
    assert fresh.to_giis_keyed("GlueCEUniqueID=a,Mds-Vo-name=local,o=grid") == _full_way(fresh, "GlueCEUniqueID=a,Mds-Vo-name=local,o=grid")
