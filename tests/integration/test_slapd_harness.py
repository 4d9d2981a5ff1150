"""The slapd harness, the GLUE DIT generator and the load generator, against a real slapd.

These are the instruments ``tools/bench`` measures gridinfo with; if they are wrong, every
published figure is wrong.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from ldaptor import ldapfilter
from ldaptor.protocols import pureldap

from gridinfo_dev import gendit, loadgen
from gridinfo_dev.slapd import Slapd

needs_slapd = pytest.mark.slapd  # make test installs slapd; without it these fail, never skip


def _count_dns(url: str, base: str) -> int:
    out = subprocess.run(
        ["ldapsearch", "-x", "-H", url, "-b", base, "-LLL", "dn"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line.startswith(b"dn:"))


# -- generator, no server needed -------------------------------------------------------------


def test_generate_yields_exactly_n_entries() -> None:
    """Asking for n entries gives exactly n, for tiny and odd sizes too."""
    for n in (0, 1, 2, 3, 10, 249, 251, 1000, 1234):
        assert sum(1 for _ in gendit.generate(n)) == n


def test_the_same_size_and_seed_generate_identical_ldif(tmp_path: Path) -> None:
    """The same size and seed give byte-identical LDIF; another seed gives other values."""
    a = gendit.write_ldif(tmp_path / "a.ldif", 600, seed=3)
    b = gendit.write_ldif(tmp_path / "b.ldif", 600, seed=3)
    c = gendit.write_ldif(tmp_path / "c.ldif", 600, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert gendit.dns(600, seed=3) == gendit.dns(600, seed=4)  # the shape depends on n only


def test_the_generated_tree_has_parents_first_unique_dns_and_the_promised_mix() -> None:
    """Parents come before children, DNs are unique, ~10% of entries are GlueCE, ~250 per site."""
    n = 10_000
    seen: set[str] = set()
    structural: Counter[bytes] = Counter()
    for dn, attributes in gendit.generate(n):
        key = dn.lower()
        assert key not in seen
        if "," in dn:
            assert key.split(",", 1)[1] in seen, dn
        seen.add(key)
        classes = dict(attributes)["objectClass"]
        structural[classes[1] if len(classes) > 1 else classes[0]] += 1
    assert structural[b"GlueSite"] == gendit.site_count(n) == 40
    assert structural[b"GlueCE"] == 1000
    assert structural[b"organization"] == structural[b"MdsVo"] == 1


def test_search_request_matches_ldaptor_encoding() -> None:
    """Pre-encoded requests are the same bytes ldaptor puts on the wire for the same search."""
    text = "(&(objectClass=GlueCE)(GlueCEStateFreeCPUs>=1200)(!(a<=3))(|(b=*)(c=d)))"
    base = gendit.site_dn(7)
    ours = loadgen.search_request(9, base, loadgen.SCOPE_SUB, text, ["GlueCEUniqueID"])
    theirs = pureldap.LDAPMessage(
        pureldap.LDAPSearchRequest(
            baseObject=base.encode(), scope=2, derefAliases=0, sizeLimit=0, timeLimit=0, typesOnly=0,
            filter=ldapfilter.parseFilter(text), attributes=[b"GlueCEUniqueID"],
        ),
        id=9,
    ).toWire()
    assert ours == theirs


# -- against slapd -----------------------------------------------------------------------------


@needs_slapd
@pytest.mark.slapd
def test_generated_dit_loads_into_slapd(tmp_path: Path) -> None:
    """A generated 1,000-entry DIT passes slapd's schema checks and is served whole."""
    ldif = gendit.write_ldif(tmp_path / "dit.ldif", 1000)
    with Slapd(ldif) as slapd:
        assert slapd.load_seconds > 0
        assert slapd.url == f"ldap://127.0.0.1:{slapd.port}/"
        assert _count_dns(slapd.url, "o=grid") == 1000
        assert slapd.rss_bytes() > 1_000_000
        pid, directory = slapd.pid, slapd.dir
    assert directory is not None and not directory.exists()
    assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()


@needs_slapd
@pytest.mark.slapd
def test_slapd_serves_several_suffixes() -> None:
    """Entries are routed to one database per suffix, as BDII's o=grid and o=infosys."""
    ldif = b"".join(gendit.format_entry(dn, attrs) for dn, attrs in gendit.generate(30)) + (
        b"dn: o=infosys\nobjectClass: organization\no: infosys\n\n"
    )
    with Slapd(ldif, suffixes=["o=grid", "o=infosys"]) as slapd:
        assert _count_dns(slapd.url, "o=grid") == 30
        assert _count_dns(slapd.url, "o=infosys") == 1


@needs_slapd
@pytest.mark.slapd
def test_loadgen_counts_operations_and_entries(tmp_path: Path) -> None:
    """The load generator completes searches and counts exactly the entries slapd returns."""
    n = 1000
    ldif = gendit.write_ldif(tmp_path / "dit.ldif", n)
    threshold = 1200
    site = gendit.site_dn(2)
    expected = 0
    for dn, attributes in gendit.generate(n):
        values = dict(attributes)
        if dn.endswith(site) and b"GlueCE" in values["objectClass"]:
            expected += int(values["GlueCEStateFreeCPUs"][0]) >= threshold
    with Slapd(ldif) as slapd:
        assert loadgen.ldap_ping("127.0.0.1", slapd.port)
        lookups = [
            loadgen.search_request(i + 1, dn, loadgen.SCOPE_BASE)
            for i, dn in enumerate(gendit.dns(n)[:50])
        ]
        result = loadgen.run_load(
            "127.0.0.1", slapd.port, lookups, name="base", duration=0.5, connections=2, processes=1,
            server_pid=slapd.pid,
        )
        assert result.ops > 0 and result.errors == 0
        assert result.mean_entries_per_op == 1.0
        assert result.server_cpu_s is not None and result.server_cpu_s >= 0
        subtree = [
            loadgen.search_request(
                1, site, loadgen.SCOPE_SUB, f"(&(objectClass=GlueCE)(GlueCEStateFreeCPUs>={threshold}))"
            )
        ]
        result = loadgen.run_load("127.0.0.1", slapd.port, subtree, duration=0.3, connections=2, processes=2)
        assert result.ops > 0 and result.errors == 0
        assert result.entries == expected * result.ops


def test_ldap_ping_is_false_when_nothing_listens() -> None:
    """Readiness polling reports a closed port as not ready instead of raising."""
    from gridinfo_dev.ports import free_port

    assert not loadgen.ldap_ping("127.0.0.1", free_port(), timeout=1)


def test_process_figures_of_this_process() -> None:
    """CPU seconds and RSS come from /proc for any pid."""
    assert loadgen.process_rss_bytes(os.getpid()) > 1_000_000
    assert loadgen.process_cpu_seconds(os.getpid()) > 0
