"""A GRIS serving static LDIF, seen through the clients users run: ldapsearch and ldap3."""

from __future__ import annotations

import subprocess
import sys

import ldap3
import pytest

from tests.support.gris import REPO, GrisProcess

EXAMPLE = REPO / "conf" / "ldif" / "example-site.ldif"


@pytest.fixture(scope="module")
def gris(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ldif")
    (folder / "site.ldif").write_bytes(EXAMPLE.read_bytes())
    (folder / "broken.ldif").write_text(
        "dn: GlueCEUniqueID=good,mds-vo-name=local,o=grid\n"
        "objectClass: GlueCETop\nobjectClass: GlueCE\nGlueCEUniqueID: good\n\n"
        "dn: GlueCEUniqueID=bad,mds-vo-name=local,o=grid\n"
        "this line is garbage\n\n"
        "dn: GlueCEUniqueID=after,mds-vo-name=local,o=grid\n"
        "objectClass: GlueCETop\nobjectClass: GlueCE\nGlueCEUniqueID: after\n\n"
        "dn: GlueCEUniqueID=noschema,mds-vo-name=local,o=grid\n"
        "objectClass: GlueCETop\nobjectClass: GlueCE\nGlueCEUniqueID: noschema\nGlueCEStateFreeCPUs: many\n"
    )
    with GrisProcess(["--ldif", str(folder)]) as g:
        yield g


def ldapsearch(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ldapsearch", "-x", "-LLL", "-H", url, *args], capture_output=True, text=True, timeout=30)


def test_ldapsearch_of_the_suffix_lists_the_sites_entries(gris):
    """`ldapsearch -x -H ldap://... -b mds-vo-name=local,o=grid` lists the site's entries."""
    out = ldapsearch(gris.url, "-b", "mds-vo-name=local,o=grid")
    assert out.returncode == 0, out.stderr
    assert "dn: GlueSiteUniqueID=EXAMPLE-SITE,mds-vo-name=local,o=grid" in out.stdout
    assert out.stdout.count("\ndn: ") + out.stdout.startswith("dn: ") == 8  # suffix + 5 site + 2 from broken.ldif


def test_an_ordering_filter_on_an_integer_attribute_compares_as_integers(gris):
    """`(GlueCEStateFreeCPUs>=10)` compares as integers: 12 matches, 9 does not."""
    out = ldapsearch(gris.url, "-b", "o=grid", "(GlueCEStateFreeCPUs>=10)", "GlueCEUniqueID")
    assert out.returncode == 0, out.stderr
    assert "GlueCEUniqueID: ce.example.org:8443/cream-slurm-short" in out.stdout
    assert "cream-slurm-long" not in out.stdout


def test_bad_ldif_record_refused_rest_served(gris):
    """A bad record is refused with its file and line in the log; the records around it are served."""
    out = ldapsearch(gris.url, "-b", "o=grid", "(objectClass=GlueCE)", "GlueCEUniqueID")
    assert "GlueCEUniqueID: good" in out.stdout and "GlueCEUniqueID: after" in out.stdout
    assert "GlueCEUniqueID: bad" not in out.stdout
    assert "GlueCEUniqueID: noschema" not in out.stdout
    assert "broken.ldif:14: entry 'GlueCEUniqueID=noschema,mds-vo-name=local,o=grid' breaks the schema" in gris.log
    assert "broken.ldif:7: expected \"attribute: value\", got \"this line is garbage\"" in gris.log


def test_ldap3_reads_schema_and_searches(gris):
    """ldap3 with get_info=ALL reads the root DSE and our schema, then searches with it."""
    server = ldap3.Server("127.0.0.1", port=gris.port, get_info=ldap3.ALL)
    conn = ldap3.Connection(server, auto_bind=True)
    assert "o=grid" in [str(x).lower() for x in server.info.naming_contexts]
    assert "GlueCEStateFreeCPUs" in server.schema.attribute_types
    assert "GlueCE" in server.schema.object_classes
    conn.search("o=grid", "(&(objectClass=GlueCE)(GlueCEStateWaitingJobs>=10))", attributes=["GlueCEStateWaitingJobs"])
    assert [e.GlueCEStateWaitingJobs.value for e in conn.entries] == [41]  # ldap3 applied INTEGER syntax


def test_writes_refused_with_reason(gris):
    """Writes get unwillingToPerform with a message saying why."""
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=gris.port, get_info=ldap3.NONE), auto_bind=True)
    conn.delete("GlueSiteUniqueID=EXAMPLE-SITE,mds-vo-name=local,o=grid")
    assert conn.result["result"] == 53
    assert "read-only" in conn.result["message"]


def test_bad_config_fails_at_start_naming_file_line_key(tmp_path):
    """A bad config file stops gris at start with the file, line, key and what was expected."""
    conf = tmp_path / "gris.yaml"
    conf.write_text("listen: ['tcp:0']\nlimits:\n  max_pdu_bytes: lots\n")
    out = subprocess.run([sys.executable, "-m", "gridinfo.cli.gris", "--config", str(conf)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2
    assert f"{conf}:3: limits.max_pdu_bytes: expected an integer, got 'lots'" in out.stderr
    conf.write_text("listen: ['tcp:0']\nlimitz: {}\n")
    out = subprocess.run([sys.executable, "-m", "gridinfo.cli.gris", "--config", str(conf)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2 and f"{conf}:2: unknown key limitz" in out.stderr


def test_port_in_use_is_a_clear_fatal_error():
    """A listener that cannot bind stops gris at once, exit status 1, saying which endpoint and
    why; with two such listeners, each is named, and the second's failure (the reactor already
    stopping) is no traceback."""
    import socket

    taken = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken.append(sock)
    ports = [sock.getsockname()[1] for sock in taken]
    try:
        out = subprocess.run(
            [sys.executable, "-m", "gridinfo.cli.gris", "--listen", f"tcp:{ports[0]}:interface=127.0.0.1",
             "--listen", f"tcp:{ports[1]}:interface=127.0.0.1"],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )
    finally:
        for sock in taken:
            sock.close()
    assert out.returncode == 1
    for port in ports:
        assert f"error: cannot listen on tcp:{port}:interface=127.0.0.1: Couldn't listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr and "Unhandled error" not in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("base", "flt", "found"),
    [
        # RFC 4512 gives supportedLDAPVersion no matching rule: equality and ordering are
        # Undefined (slapd 2.5 answers both with no entry); before, >= compared strings.
        ("", "(supportedLDAPVersion>=10)", False),
        ("", "(supportedLDAPVersion=3)", False),
        ("", "(supportedLDAPVersion=*)", True),
        ("", "(&(objectClass=*)(!(vendorName=nobody)))", True),
        ("cn=Subschema", "(objectClass=subschema)", True),
        ("cn=Subschema", "(cn=subschema)", True),
        ("cn=Subschema", "(cn>=zzz)", False),
    ],
)
def test_root_dse_and_subschema_filters_follow_the_schema(gris, base, flt, found):
    """Filters on the root DSE and cn=Subschema are judged by the schema's matching rules, as
    every other search is (not by string comparison)."""
    out = ldapsearch(gris.url, "-b", base, "-s", "base", flt, "1.1")
    assert out.returncode == 0, out.stderr
    assert ("dn:" in out.stdout) is found, out.stdout
