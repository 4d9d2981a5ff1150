"""The JSON API and /metrics over real HTTP, against a real giis with a real gris under it."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode

from tests.web.conftest import get, get_json, metric, until
from tests.web.hierarchy import CE_DN, SUFFIX, Hierarchy

GIIS_CE_DN = CE_DN.replace(SUFFIX, "mds-vo-name=site,o=grid")  # the GIIS serves its children in its namespace


def test_giis_hierarchy_lists_the_registered_gris(hierarchy: Hierarchy) -> None:
    def child() -> object:
        status, node = get_json(hierarchy.giis_url + "/api/hierarchy")
        assert status == 200
        return node["children"] and node
    node = until(child, "the GRIS registered under the GIIS")
    assert node["kind"] == "giis" and node["suffix"] == "mds-vo-name=site,o=grid"
    (c,) = node["children"]
    assert c["suffix"] == SUFFIX and c["lease"] == "VALID" and c["port"] == hierarchy.gris.port
    assert 0 < c["lease_left"] <= 60 and not c["stale"]
    assert c["mount"] == "mds-vo-name=site,o=grid"  # a GRIS's entries appear in place of the GIIS's suffix
    assert get_json(hierarchy.giis_url + "/api/entry?dn=" + quote(c["mount"]))[0] == 200  # the click-through


def test_top_giis_hierarchy_walks_to_the_leaves(hierarchy: Hierarchy) -> None:
    """The top GIIS's /api/hierarchy holds the whole tree, as giis-tree walks it: the site GIIS
    (from the top's own registrations) and the GRIS under it (asked of the site over LDAP),
    each with its status, lease, latency, entry count and a link to its own web view."""
    def three_levels() -> object:
        status, node = get_json(hierarchy.top_url + "/api/hierarchy")
        assert status == 200
        tree = node["tree"]
        sites = tree["children"]
        return sites and sites[0]["children"] and sites[0]["children"][0]["web_url"] and node
    node = until(three_levels, "the GRIS under the site under the top", deadline=60)
    tree = node["tree"]
    assert tree["kind"] == "giis" and tree["suffix"] == "mds-vo-name=top,o=grid" and tree["link"] == "/"
    assert tree["web_url"] == hierarchy.top_url + "/"  # what the top's own status entry publishes
    (site,) = tree["children"]
    assert site["suffix"] == "mds-vo-name=site,o=grid" and site["url"].endswith(f":{hierarchy.giis.port}/mds-vo-name=site,o=grid")
    assert site["registration_status"] == "VALID" and 0 < site["lease_seconds_left"] <= 60
    assert site["latency_ms"] > 0 and site["healthy"] and not site["stale"] and not site["depth_limited"]
    assert site["web_url"] == site["link"] == hierarchy.giis_url + "/"  # a node links to its own web view
    assert site["shown_at"] == "mds-vo-name=site,mds-vo-name=top,o=grid"
    (gris,) = site["children"]
    assert gris["url"].endswith(f":{hierarchy.gris.port}/{SUFFIX}") and gris["registration_status"] == "VALID"
    assert gris["web_url"] == hierarchy.gris_url + "/" and gris["published_entries"] > 10
    assert gris["shown_at"] == "mds-vo-name=site,mds-vo-name=top,o=grid"  # a GRIS appears in place of its parent's suffix
    assert gris["children"] == [] and node["unhealthy"] == 0 and node["depth"] == 5
    # the site's own page: its part of the same tree
    site_tree = get_json(hierarchy.giis_url + "/api/hierarchy")[1]["tree"]
    assert [c["web_url"] for c in site_tree["children"]] == [hierarchy.gris_url + "/"]


def test_hierarchy_walk_is_depth_bounded_and_marks_unreachable_nodes(hierarchy: Hierarchy) -> None:
    """The shared walk stops at the depth bound (the node is marked, its registrants not asked
    for) and a node that does not answer within its timeout is unhealthy, its error named."""
    import json
    import sys

    until(lambda: get_json(hierarchy.top_url + "/api/hierarchy")[1]["tree"]["children"], "the site registered")
    out = subprocess.run([sys.executable, "-m", "gridinfo.cli.giis_tree", "--json", "--depth", "1", "--timeout", "5",
                          f"{hierarchy.top.url}/mds-vo-name=top,o=grid"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    tree = json.loads(out.stdout)
    (site,) = tree["children"]
    assert site["depth_limited"] and site["children"] == [] and site["web_url"] == hierarchy.giis_url + "/"
    # a registrant address where nothing listens: unreachable, named, within the node's timeout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    out = subprocess.run([sys.executable, "-m", "gridinfo.cli.giis_tree", "--json", "--timeout", "5",
                          f"ldap://127.0.0.1:{dead}/mds-vo-name=gone,o=grid"], capture_output=True, text=True)
    assert out.returncode == 1
    gone = json.loads(out.stdout)
    assert not gone["healthy"] and gone["error"]


def test_gris_hierarchy_lists_its_provider(hierarchy: Hierarchy) -> None:
    def ran() -> object:
        node = get_json(hierarchy.gris_url + "/api/hierarchy")[1]
        return [p for p in node["providers"] if p["name"] == "queue" and p["runs"]]
    (p,) = until(ran, "the queue provider ran")
    assert p["failures"] == 0 and p["last_error"] == ""


def test_queues_through_the_giis(hierarchy: Hierarchy) -> None:
    def live_queue() -> object:
        data = get_json(hierarchy.giis_url + "/api/queues")[1]
        return [q for q in data["queues"] if q["dn"] == GIIS_CE_DN] and data
    data = until(live_queue, "the provider's CE through the GIIS")
    names = {q["name"] for q in data["queues"]}
    assert {"short", "long", "live"} <= names
    (site,) = [s for s in data["sites"] if s["id"] == "EXAMPLE-SITE"]
    assert site["queues"] == 3  # the two static CEs and the provider's, all under the site's container
    (live,) = [q for q in data["queues"] if q["dn"] == GIIS_CE_DN]
    assert live["total"] == 64 and live["waiting"] == 7 and live["site"] == "EXAMPLE-SITE"


def test_vms_jobs_and_paths(hierarchy: Hierarchy) -> None:
    data = until(lambda: get_json(hierarchy.giis_url + "/api/vms")[1]["vms"], "the VM through the GIIS")
    (vm,) = data
    assert (vm["state"], vm["owner"], vm["physical_host"], vm["uptime"], vm["jobs"]) == (
        "Running", "alice", "node07.test.org", 3600, ["job-77"])
    assert [s["state"] for s in vm["history"]] == ["Pending", "Running"]
    status, one = get_json(hierarchy.giis_url + "/api/vm?dn=" + quote(vm["dn"]))
    assert status == 200 and one["entry"]["id"] == "vm-test-1" and one["events"] == []
    (path,) = get_json(hierarchy.giis_url + "/api/paths")[1]["paths"]
    assert path["rtt_avg"] == 200 and path["hops"] == 1


def test_entry_children_and_foreign_key_links(hierarchy: Hierarchy) -> None:
    until(lambda: get_json(hierarchy.gris_url + "/api/entry?dn=" + quote(CE_DN))[0] == 200, "the CE")
    status, entry = get_json(hierarchy.gris_url + "/api/entry?dn=" + quote(CE_DN))
    fk = [a for a in entry["attributes"] if a["name"] == "GlueForeignKey"][0]["values"][0]
    assert fk == {"value": "GlueClusterUniqueID=ce.example.org", "link": "(GlueClusterUniqueID=ce.example.org)"}
    assert "GlueCEStateFreeCPUs" in entry["history"]
    status, top = get_json(hierarchy.gris_url + "/api/entry?dn=" + quote(SUFFIX))
    assert status == 200 and CE_DN in top["children"]
    status, found = get_json(hierarchy.gris_url + "/api/search?" + urlencode(
        {"base": SUFFIX, "filter": fk["link"], "scope": "sub"}))
    assert status == 200 and [e["dn"] for e in found["entries"]] == [f"GlueClusterUniqueID=ce.example.org,{SUFFIX}"]


def test_bad_parameters_get_400_with_a_message_and_unknown_dns_404(hierarchy: Hierarchy) -> None:
    url = hierarchy.giis_url
    cases = {
        # what each bad input does: the status and the start of the message
        "/api/search?scope=deep": (400, "scope: expected one of base, one, sub"),
        "/api/search?limit=0": (400, "limit: expected an integer from 1 to 10000"),
        "/api/search?limit=ten": (400, "limit: expected an integer"),
        "/api/search?filter=(cn=x": (400, "PROTOCOL_ERROR (2): bad search filter"),
        "/api/entry?dn=not-a-dn": (400, "INVALID_DN_SYNTAX (34)"),
        "/api/entry?dn=o=nowhere": (404, "no entry 'o=nowhere'"),
        "/api/entry?dn=" + quote("GlueCEUniqueID=gone," + SUFFIX): (404, "no entry"),
        "/api/vm": (400, "dn: a value is required"),
        "/api/vm?dn=" + quote(GIIS_CE_DN): (404, "'" + GIIS_CE_DN + "' is neither"),
        "/api/history?dn=o=grid": (400, "attribute: a value is required"),
        "/api/history?dn=o=grid&attribute=GlueCEName": (400, "attribute: 'GlueCEName' is not sampled"),
        "/api/history?dn=o=grid&attribute=GlueCEStateFreeCPUs&range=decade": (400, "range: expected one of hour"),
        "/api/nothing": (404, "no such API path"),
        "/nothing": (404, "no such page"),
    }
    for path, (code, message) in cases.items():
        status, body = get_json(url + path)
        assert (path, status) == (path, code)
        assert body["error"].startswith(message), (path, body)


def test_read_only_and_self_contained(hierarchy: Hierarchy) -> None:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                          hierarchy.giis_url + "/api/search"], capture_output=True, text=True, check=True)
    assert out.stdout == "405"
    status, headers, body = get(hierarchy.giis_url + "/queues")
    assert status == 200 and "default-src 'self'" in headers["Content-Security-Policy"]
    assert b"http://" not in body and b"https://" not in body  # nothing loaded from elsewhere
    for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        assert get(hierarchy.giis_url + asset)[0] == 200


def test_listens_on_loopback_only(hierarchy: Hierarchy) -> None:
    assert hierarchy.giis_url.startswith("http://127.0.0.1:")
    assert hierarchy.gris_url.startswith("http://127.0.0.1:")


def test_metrics_parse_and_counters_move_with_ldap_traffic(hierarchy: Hierarchy) -> None:
    url = hierarchy.gris_url
    before = metric(url, "gridinfo_ldap_operations_total", operation="search", result="success")
    binds_before = metric(url, "gridinfo_ldap_operations_total", operation="bind", result="success")
    hist_before = metric(url, "gridinfo_ldap_operation_seconds_count", operation="search")
    for _ in range(3):
        subprocess.run(["ldapsearch", "-x", "-LLL", "-H", hierarchy.gris.url, "-b", SUFFIX, "-s", "base", "1.1"],
                       check=True, capture_output=True)
    subprocess.run(["ldapsearch", "-x", "-LLL", "-H", hierarchy.gris.url, "-b", "o=nowhere", "1.1"],
                   capture_output=True)
    after = metric(url, "gridinfo_ldap_operations_total", operation="search", result="success")
    assert after - before >= 3  # the GIIS may forward searches too: at least ours
    assert metric(url, "gridinfo_ldap_operation_seconds_count", operation="search") - hist_before >= 4
    assert metric(url, "gridinfo_ldap_operations_total", operation="search", result="no_such_object") >= 1
    # every operation the server answers counts, not only what reaches the backend: ldapsearch binds
    assert metric(url, "gridinfo_ldap_operations_total", operation="bind", result="success") - binds_before >= 4
    assert metric(url, "gridinfo_provider_runs_total", provider="queue") >= 1
    # each run's duration, as it ends: the histogram moves with the runs
    runs = until(lambda: metric(url, "gridinfo_provider_run_seconds_count", provider="queue"), "a run observed")
    until(lambda: metric(url, "gridinfo_provider_run_seconds_count", provider="queue") > runs, "another run observed")
    assert metric(url, "gridinfo_provider_run_seconds_sum", provider="queue") > 0
    assert sum(metric(url, "gridinfo_softstate_entries", state=s) for s in ("fresh", "stale")) == 4  # CE, VM, job, path
    assert metric(url, "gridinfo_entries") > 10
    assert sum(metric(url, "gridinfo_softstate_providers", state=s) for s in ("never", "fresh", "stale", "gone")) == 1
    giis = hierarchy.giis_url
    until(lambda: metric(giis, "gridinfo_giis_registrations", status="VALID") == 1, "one VALID registration")
    child = f"ldap://127.0.0.1:{hierarchy.gris.port}/{SUFFIX}"
    until(lambda: metric(giis, "gridinfo_giis_child_up", child=child) == 1, "the child answered")
    assert metric(giis, "gridinfo_giis_child_latency_seconds", child=child) > 0


def test_history_records_a_provider_change(hierarchy: Hierarchy) -> None:
    hierarchy.set_free_cpus(23)
    url = hierarchy.gris_url
    q = urlencode({"dn": CE_DN, "attribute": "GlueCEStateFreeCPUs", "range": "hour"})

    def has_23() -> object:
        status, data = get_json(url + "/api/history?" + q)
        assert status == 200
        return [v for _, v in data["points"]].count(23.0) and data
    data = until(has_23, "the new value in the history")
    assert data["points"] and all(isinstance(t, float) for t, _ in data["points"])
    series = get_json(url + "/api/history/series")[1]["series"]
    assert any(s["dn"] == CE_DN and s["attribute"] == "GlueCEStateFreeCPUs" for s in series)


def test_metrics_count_change_streams_and_live_pages_while_they_are_open(hierarchy: Hierarchy) -> None:
    """Subscribers: an LDAP change stream (ldapsearch's RFC 4533 refreshAndPersist) and an open
    page's live-update stream each count while open, and stop counting when closed."""
    import urllib.request

    url = hierarchy.gris_url
    assert metric(url, "gridinfo_ldap_change_streams") == 0
    stream = subprocess.Popen(["ldapsearch", "-x", "-LLL", "-H", hierarchy.gris.url, "-b", SUFFIX,
                               "-E", "!sync=rp", "(objectClass=GlueCE)", "1.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: metric(url, "gridinfo_ldap_change_streams") == 1, "the change stream counted")
    finally:
        stream.terminate()
        stream.wait()
    until(lambda: metric(url, "gridinfo_ldap_change_streams") == 0, "the change stream gone")
    assert metric(url, "gridinfo_web_live_subscribers") == 0
    with urllib.request.urlopen(url + "/api/events", timeout=30) as events:
        assert events.readline().startswith(b"retry:")
        until(lambda: metric(url, "gridinfo_web_live_subscribers") == 1, "the open page counted")
    until(lambda: metric(url, "gridinfo_web_live_subscribers") == 0, "the closed page gone")


def test_a_registration_cycle_is_marked_and_not_followed(tmp_path: Path) -> None:
    """GIIS a has b registered under it, and b lists a as a static child (a cycle): a's
    hierarchy page shows a -> b -> a, the second a marked "already shown" and not walked again,
    and the page still answers."""
    from tests.support.gris import GrisProcess
    from tests.web.hierarchy import http_url

    (tmp_path / "a.yaml").write_text("name: a\nweb:\n  live_interval: 0.5\n")
    with GrisProcess(["--config", str(tmp_path / "a.yaml"), "--http", "tcp:0"], module="gridinfo.cli.giis") as a:
        a_web = http_url(a)
        (tmp_path / "b.yaml").write_text(f"""\
name: b
register:
  - url: "ldap://127.0.0.1:{a.port}/mds-vo-name=a,o=grid"
    regperiod: 30
    ttl: 60
    hostname: 127.0.0.1
children:
  - url: "ldap://127.0.0.1:{a.port}/mds-vo-name=a,o=grid"
    timeout: 5
""")
        with GrisProcess(["--config", str(tmp_path / "b.yaml")], module="gridinfo.cli.giis") as b:
            def walked() -> object:
                status, node = get_json(a_web + "/api/hierarchy")
                assert status == 200
                kids = node["tree"]["children"]
                return kids and kids[0]["children"] and node
            node = until(walked, "a -> b -> a on a's hierarchy page")
            (b_node,) = node["tree"]["children"]
            assert b_node["url"].endswith(f":{b.port}/mds-vo-name=b,o=grid")
            (again,) = b_node["children"]
            assert again["url"].endswith(f":{a.port}/mds-vo-name=a,o=grid") and again["registration_status"] == "STATIC"
            assert again["note"] == "already shown (registration cycle?)" and again["children"] == []
            assert again["latency_ms"] is None  # not asked again
