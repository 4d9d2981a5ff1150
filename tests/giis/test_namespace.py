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
