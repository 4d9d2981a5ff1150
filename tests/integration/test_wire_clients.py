"""Real clients against the real server over loopback: OpenLDAP's ldapsearch and ldap3.

The server runs in a subprocess (tests/support/serve_fixture.py) serving the DictBackend on
127.0.0.1 with a port chosen by the kernel, and a server-side size limit of 6.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_ldapsearch = pytest.mark.slapd  # make test installs ldap-utils; without it these fail, never skip


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.serve_fixture", "6"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), line
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=30)


def ldapsearch(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldap://127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@needs_ldapsearch
def test_ldapsearch_of_the_root_dse_shows_what_the_server_supports(port: int) -> None:
    """`ldapsearch -b "" -s base +` shows what the server supports."""
    result = ldapsearch(port, "-b", "", "-s", "base", "+")
    assert result.returncode == 0, result.stderr
    assert "namingContexts: o=grid" in result.stdout
    assert "supportedControl: 1.2.840.113556.1.4.319" in result.stdout
    assert "vendorName: gridinfo" in result.stdout


@needs_ldapsearch
def test_ldapsearch_of_the_subschema_entry_lists_the_schema(port: int) -> None:
    """`ldapsearch -b cn=subschema -s base +` lists the schema."""
    result = ldapsearch(port, "-b", "cn=subschema", "-s", "base", "+")
    assert result.returncode == 0, result.stderr
    assert "attributeTypes: ( 1.3.6.1.4.1.8005.100.2.2.2 NAME 'GlueCEStateFreeCPUs'" in result.stdout
    assert "objectClasses: ( 1.3.6.1.4.1.8005.100.2.1.1 NAME 'GlueCE'" in result.stdout


@needs_ldapsearch
def test_ldapsearch_subtree_search_with_filter_and_attributes_returns_the_entries(port: int) -> None:
    """A plain subtree search with a filter and an attribute list."""
    result = ldapsearch(port, "-b", "mds-vo-name=local,o=grid", "(objectClass=GlueCE)", "GlueCEName")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("dn: GlueCEUniqueID=") == 5
    assert "GlueCEName: q3" in result.stdout
    assert "objectClass" not in result.stdout


@needs_ldapsearch
def test_ldapsearch_paged_results_come_two_at_a_time(port: int) -> None:
    """`-E pr=2/noprompt` pages through the results, two at a time."""
    result = ldapsearch(port, "-b", "mds-vo-name=local,o=grid", "-E", "pr=2/noprompt", "(objectClass=GlueCE)", "1.1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("dn: ") == 5
    assert result.stdout.count("# pagedresults:") == 3


@needs_ldapsearch
def test_client_and_server_size_limits_stop_with_size_limit_exceeded(port: int) -> None:
    """`-z 2` stops at two entries with sizeLimitExceeded; the server's own cap (6) also holds."""
    result = ldapsearch(port, "-b", "o=grid", "-z", "2")
    assert result.returncode == 4
    assert result.stdout.count("dn: ") == 2
    assert "Size limit exceeded" in result.stderr
    capped = ldapsearch(port, "-b", "o=grid", "(objectClass=*)", "1.1")
    assert capped.returncode == 4
    assert capped.stdout.count("dn: ") == 6


@needs_ldapsearch
def test_ldapsearch_bind_and_refused_write(port: int) -> None:
    """A simple bind with configured credentials works; a wrong password gives code 49."""
    ok = subprocess.run(
        ["ldapwhoami", "-x", "-H", f"ldap://127.0.0.1:{port}", "-D", "cn=admin,o=grid", "-w", "secret"],
        capture_output=True, text=True, timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "dn:cn=admin,o=grid"
    bad = ldapsearch(port, "-D", "cn=admin,o=grid", "-w", "nope", "-b", "o=grid")
    assert bad.returncode == 49


def test_ldap3_reads_schema_searches_and_compares(port: int) -> None:
    """ldap3 with get_info=ALL reads the root DSE and schema, then searches and compares."""
    server = ldap3.Server("127.0.0.1", port=port, get_info=ldap3.ALL, connect_timeout=10)
    with ldap3.Connection(server, auto_bind=True, receive_timeout=10) as connection:
        assert server.info is not None and "o=grid" in server.info.naming_contexts
        assert server.schema is not None
        assert "GlueCEStateFreeCPUs" in server.schema.attribute_types
        assert "GlueCE" in server.schema.object_classes
        assert connection.search(
            "mds-vo-name=local,o=grid", "(&(objectClass=GlueCE)(GlueCEName=q2))", attributes=["GlueCEStateFreeCPUs"]
        )
        (entry,) = connection.entries
        assert entry.GlueCEStateFreeCPUs.value == 20  # integer syntax from our schema
        assert connection.compare("o=grid", "o", "grid") is True
        assert connection.compare("o=grid", "o", "other") is False
        assert connection.extend.standard.who_am_i() in ("", None)


def test_garbage_on_one_connection_does_not_hurt_another(port: int) -> None:
    """A client sending junk is disconnected; another client is still served."""
    server = ldap3.Server("127.0.0.1", port=port, connect_timeout=10)
    with ldap3.Connection(server, auto_bind=True, receive_timeout=10) as good:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as bad:
            bad.sendall(b"GET / HTTP/1.0\r\n\r\n")
            notice = b""
            while chunk := bad.recv(4096):
                notice += chunk
        assert b"1.3.6.1.4.1.1466.20036" in notice
        assert good.search("o=grid", "(objectClass=organization)")
        assert len(good.entries) == 1
