"""The benchmark tools run end to end, at a tiny size, so they cannot rot between measurements.

Nothing here is timed: the figures of a smoke run mean nothing.  What is checked is that each
tool completes, both servers answer every workload without errors, and they answer alike.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gridinfo_dev import gendit, glue2

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
WORKLOADS = ("base", "onelevel", "equality", "subtree", "or1000")


def _run(tool: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a tools/ script with this interpreter, as a user would (its own folder on sys.path)."""
    return subprocess.run(
        [sys.executable, str(TOOLS / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slapd
def test_bench_quick_measures_both_servers_on_every_workload(tmp_path: Path) -> None:
    """`tools/bench --quick` runs slapd (as BDII configures it) and gris on the same tree, and they agree."""
    out = tmp_path / "bench.json"
    done = _run("bench", "--quick", "--json", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    [(size, result)] = report["sizes"].items()
    n = int(size)
    ces = sum(1 for dn in gendit.dns(n) if dn.startswith("GlueCEUniqueID="))
    assert ces > 0
    assert result["disagreements"] == []
    assert "loglevel 0" in result["slapd"]["config"]
    assert "index GlueCEUniqueID eq" in result["slapd"]["config"]
    assert "GlueCEUniqueID" in result["gridinfo"]["config"]
    for server in ("slapd", "gridinfo"):
        figures = result[server]
        assert figures["dump_entries"] == n
        assert figures["ready_s"] > 0 and figures["rss_after_runs_bytes"] > 0
        for name in WORKLOADS:
            run = figures[name]
            assert run["ops"] > 0 and run["errors"] == 0, (server, name, run)
            assert run["server_cpu_s"] is not None
        # workloads whose answer size does not depend on which request was drawn
        assert figures["base"]["mean_entries_per_op"] == 1
        assert figures["onelevel"]["mean_entries_per_op"] == 12  # the GlueSA under a GlueSE
        assert figures["equality"]["mean_entries_per_op"] == 1
        assert figures["or1000"]["mean_entries_per_op"] == ces  # every CE of the tiny tree is named
    assert "| 1,000-term OR, ops/s |" in done.stdout
    assert "### Summary" in done.stdout


@pytest.mark.slapd
def test_bench_quick_on_a_glue2_tree_answers_diracs_or_like_slapd(tmp_path: Path) -> None:
    """`tools/bench --quick --tree glue2 --rounds 2`: BDII's GLUE 2 indexes, same answers, each round kept."""
    out = tmp_path / "bench.json"
    done = _run("bench", "--quick", "--tree", "glue2", "--rounds", "2", "--json", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["settings"]["tree"] == "glue2"
    [(size, result)] = report["sizes"].items()
    dns = [dn for dn, _ in glue2.generate(int(size))]
    ees = sum(1 for dn in dns if dn.startswith("GLUE2ResourceID="))
    assert result["disagreements"] == []
    assert len(result["slapd_rounds"]) == len(result["gridinfo_rounds"]) == 2
    assert "index GLUE2ResourceID eq" in result["slapd"]["config"]
    assert "GLUE2ResourceID" in result["gridinfo"]["config"]
    for server in ("slapd", "gridinfo"):
        figures = result[server]
        assert figures["dump_entries"] == len(dns)
        for name in WORKLOADS:
            assert figures[name]["ops"] > 0 and figures[name]["errors"] == 0, (server, name, figures[name])
        assert figures["onelevel"]["mean_entries_per_op"] == glue2.EES_PER_SITE
        assert figures["equality"]["mean_entries_per_op"] == 1
        assert figures["or1000"]["mean_entries_per_op"] == ees  # every execution environment is named
    # the summary gives each ratio with the lowest and highest of one round's ratio
    row = re.search(r"^\| RSS after load and queries, MiB \| [\d.]+ \| [\d.]+ \| ([\d.]+) \(([\d.]+)-([\d.]+)\) \|$",
                    done.stdout, re.M)
    assert row is not None, done.stdout[-3000:]
    _, low, high = (float(x) for x in row.groups())
    rounds = [b["rss_after_runs_bytes"] / a["rss_after_runs_bytes"]
              for a, b in zip(result["slapd_rounds"], result["gridinfo_rounds"])]
    assert (low, high) == (round(min(rounds), 2), round(max(rounds), 2))


def test_bench_giis_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """`tools/bench-giis` registers a few children with a real giis and searches across them."""
    out = tmp_path / "giis.json"
    done = _run(
        "bench-giis", "--children", "3", "--entries-per-child", "2", "--child-processes", "1",
        "--warm-runs", "2", "--refetch-runs", "0", "--port-base", "0",
        "--json", str(out), "--log-dir", str(tmp_path / "logs"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run] = json.loads(out.read_text())["runs"]
    assert run["registration"]["valid_in_status"] == 3
    assert run["cold"]["entries"] == 6 and run["cold"]["child_searches"] == 3
    assert run["warm"]["child_searches"] == 0  # answered from the GIIS's cache


def test_gendit_writes_the_tree_the_bench_loads(tmp_path: Path) -> None:
    """`tools/gendit N -o FILE` writes the same LDIF as the generator the bench and tests import."""
    done = _run("gendit", "40", "-o", str(tmp_path / "a.ldif"))
    assert done.returncode == 0, done.stderr
    expected = gendit.write_ldif(tmp_path / "b.ldif", 40)
    assert (tmp_path / "a.ldif").read_bytes() == expected.read_bytes()


def test_bench_events_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """`tools/bench-events` journals events through a real gris and reads their effect back."""
    out = tmp_path / "events.json"
    done = _run("bench-events", "--events", "20", "--clients", "1,2", "--latency-samples", "3",
                "--dir", str(tmp_path / "journal"), "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["events"] for row in report["throughput"]] == [20, 20]
    assert report["latency"]["samples"] > 0


def test_bench_push_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """`tools/bench-push --quick`: a change pushed up GRIS -> GIIS -> GIIS, subscribers fed, a slapd replica."""
    out = tmp_path / "push.json"
    done = _run("bench-push", "--quick", "--json", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["latency"]["changes"] == 3 and figures["latency"]["push_p99_ms"] > 0
    assert figures["fanout"]["every_subscriber_converged"] is True
    assert figures["replica"]["entries"] >= 301 and figures["replica"]["changes"] == 2


def test_bench_triggers_quick_evaluates_rules_and_fires_through_a_real_gris(tmp_path: Path) -> None:
    """`tools/bench-triggers --quick`: rules over a gendit tree in process, then firings through a
    real gris to a local HTTP server; every firing arrives and the index evaluated few rules."""
    out = tmp_path / "triggers.json"
    done = _run("bench-triggers", "--quick", "--dir", str(tmp_path / "run"), "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    ev = report["evaluation"]
    assert (ev["entries"], ev["rules"], ev["changes"]) == (2000, 50, 200)
    assert ev["rules_evaluated_per_change"] < ev["rules"] / 10  # the index, not every rule
    assert report["latency"]["samples"] == 10
    assert "| VM event sent -> JSON POST received (ms) |" in done.stdout


@pytest.mark.slapd
def test_bench_sync_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """`tools/bench-sync` refreshes a sync consumer in memory, from slapd with syncprov and from a gris."""
    out = tmp_path / "sync.json"
    done = _run("bench-sync", "--entries", "50", "--rounds", "1", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["slapd_syncprov"]["entries"] == report["gris"]["entries"] > 0
    assert all(report[server]["sync_refresh_entries_per_s"] > 0 for server in ("slapd_syncprov", "gris"))


def test_bench_hotpath_answers_every_workload_in_process(tmp_path: Path) -> None:
    """`tools/bench-hotpath` loads a generated tree and answers each workload's requests (its
    figure is printed, not checked: only that every request was answered)."""
    for workload in ("base", "equality", "subtree"):
        done = _run("bench-hotpath", "--entries", "300", "--requests", "200", "--workload", workload,
                    "--cache-dir", str(tmp_path / "cache"))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"{workload}, 300 entries: " in done.stdout and "us of CPU per request" in done.stdout
