"""`gridinfo-trigger-check`: a rule explained, its errors with file, line and key, and (offline,
from LDIF) the entries it matches now.  The live --url search is in tests/integration/test_triggers.py."""

from __future__ import annotations

import io
from pathlib import Path

from gridinfo.cli.trigger_check import build_parser, check

CONF = Path(__file__).resolve().parents[2] / "conf"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = check(build_parser().parse_args(list(argv)), out, err)
    return status, out.getvalue(), err.getvalue()


def test_a_rule_is_explained_with_the_entries_it_matches_now(tmp_path: Path) -> None:
    """What the admin reads before dropping a rule in: when it fires, what it does, whom it matches."""
    rule = tmp_path / "queue-backed-up.yaml"
    rule.write_text("filter: (&(objectClass=GlueCE)(GlueCEStateFreeCPUs<=10))\non: [enter, leave]\nfor: 120\n"
                    "repeat: 3600\nactions:\n  - exec: [sh, -c, 'virsh start worker-7']\n  - ldap: true\n")
    status, out, err = run(str(rule), "--ldif", str(CONF / "ldif"))
    assert (status, err) == (0, "")
    assert f"rule queue-backed-up ({rule}:1): accepted" in out
    assert "fires:      enter once it has held 120 s, again every 3600 s while it holds; leave once it has stopped for 120 s" in out
    assert "action 0:   exec sh -c 'virsh start worker-7' (timelimit 20 s, entry as LDIF on stdin); 3 retries" in out
    assert "matches now on LDIF" in out and ": 1 entries; enter fires for each after 120 s more" in out
    assert "    GlueCEUniqueID=ce.example.org:8443/cream-slurm-long,mds-vo-name=local,o=grid\n" in out


def test_a_bad_rule_is_reported_with_file_line_and_key_and_the_good_ones_still_explained(tmp_path: Path) -> None:
    """Exit status 2, one error line per bad file; the other files are still read."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("filter: (objectClass=GlueCE)\non: enter\nactions:\n  - exec: /no/such/notify\n")
    good = tmp_path / "good.yaml"
    good.write_text("actions: [{log: warn}]\n")
    status, out, err = run(str(bad), str(good), "-q")
    assert status == 2
    assert err == (f"{bad}:4: actions[0].exec: expected an executable program, got '/no/such/notify' "
                   "(no such executable file)\n")
    assert out == f"rule good ({good}:1): accepted\n"


def test_an_unreachable_server_is_exit_status_1(tmp_path: Path) -> None:
    """--url naming a port nobody listens on: the rule is fine, the search is not."""
    from tests.support.ports import free_port

    rule = tmp_path / "r.yaml"
    rule.write_text("base: o=grid\nactions: [{log: info}]\n")
    status, out, err = run(str(rule), "--url", f"ldap://127.0.0.1:{free_port()}", "-q")
    assert status == 1 and "cannot search server" in err
