"""Rule files and the `triggers:` section: what is accepted, and what each bad input does.

Every refusal names the file, the line and the key.  In a rule file (triggers_dir) the file is
refused and every other rule keeps working (tests/triggers/test_service.py); in gris.yaml or
giis.yaml the daemon does not start, as for any other bad key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridinfo.config import GIISConfig, GRISConfig, load_config, validate
from gridinfo.errors import ConfigError
from gridinfo.triggers.rules import read_rule_file, rule_files

GOOD = """\
filter: (GlueCEStateFreeCPUs<=2)
for: 300
actions:
  - exec: [sh, -c, "mail -s full root"]
"""


def refusal(tmp_path: Path, text: str, name: str = "rule.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_rule_file(path)
    return str(e.value).replace(str(tmp_path) + "/", "")


def test_a_rule_file_is_one_rule_named_after_the_file_or_a_list(tmp_path: Path) -> None:
    """`almost-full.yaml` holding one mapping is the rule almost-full; a list holds several."""
    (tmp_path / "almost-full.yaml").write_text(GOOD)
    [loaded] = read_rule_file(tmp_path / "almost-full.yaml")
    assert (loaded.config.name, loaded.config.for_, loaded.config.actions[0].argv[0]) == ("almost-full", 300.0, "sh")
    assert loaded.source == f"{tmp_path}/almost-full.yaml:1"
    (tmp_path / "two.yaml").write_text("- name: a\n  actions: [{log: info}]\n- name: b\n  on: leave\n  actions: [{ldap: true}]\n")
    assert [(r.config.name, r.config.events) for r in read_rule_file(tmp_path / "two.yaml")] == [
        ("a", ("enter",)), ("b", ("leave",))]


def test_bad_rules_are_refused_with_file_line_and_key(tmp_path: Path) -> None:
    """A bad filter, an unknown key, a missing program, a bad event, a second action kind in one
    action, no action at all: each names the file, line and key."""
    assert refusal(tmp_path, "filter: (GlueCEStateFreeCPUs<=2\nactions: [{log: info}]\n").startswith(
        "rule.yaml:1: filter: expected an LDAP filter")
    assert refusal(tmp_path, "filter: (a=b)\nfour: 300\nactions: [{log: info}]\n").startswith(
        "rule.yaml:2: unknown key four (known keys: actions, attributes, base, enabled, filter, for, name, on,")
    assert refusal(tmp_path, "actions:\n  - exec: [/no/such/program, x]\n") == (
        "rule.yaml:2: actions[0].exec: expected an executable program, got '/no/such/program' (no such executable file)")
    assert refusal(tmp_path, "actions:\n  - exec: no-such-program-on-path\n").startswith(
        "rule.yaml:2: actions[0].exec: expected an absolute path or a program on PATH")
    assert refusal(tmp_path, "on: [enter, exit]\nactions: [{log: info}]\n") == (
        "rule.yaml:1: on: expected one or more of enter, leave, change, got 'exit'")
    assert refusal(tmp_path, "actions:\n  - log: info\n    http: http://x/\n") == (
        "rule.yaml:2: actions[0]: expected exactly one of exec, log, http, ldap in an action, got log, http")
    assert refusal(tmp_path, "filter: (a=b)\n") == "rule.yaml:1: a trigger rule needs at least one action (exec, log, http or ldap)"
    assert refusal(tmp_path, "for: -1\nactions: [{log: info}]\n") == "rule.yaml:1: for: expected a non-negative number, got '-1'"
    assert refusal(tmp_path, "repeat: 60\non: leave\nactions: [{log: info}]\n") == "rule.yaml:1: repeat re-fires enter: it needs on: enter"
    assert refusal(tmp_path, "actions: [{http: ftp://x/}]\n").startswith("rule.yaml:1: actions[0].http: expected an http:// or https:// URL")
    assert refusal(tmp_path, "- name: a\n  actions: [{log: info}]\n- name: a\n  actions: [{log: info}]\n") == (
        "rule.yaml:3: [1]name: expected each rule's name once, got 'a' again")
    assert refusal(tmp_path, "filter: [\n").startswith("rule.yaml:2: not valid YAML")


def test_the_triggers_section_of_gris_yaml_and_giis_yaml_is_checked_like_every_key(tmp_path: Path) -> None:
    """In the daemon's config a bad rule stops the daemon with file, line and key."""
    conf = tmp_path / "gris.yaml"
    conf.write_text("triggers:\n  - name: x\n    filter: (a=b\n    actions: [{log: info}]\n")
    with pytest.raises(ConfigError, match=r"gris.yaml:3: triggers\[0\].filter: expected an LDAP filter"):
        load_config(conf, GRISConfig)
    conf.write_text("triggers:\n  - name: x\n    actions: [{log: info}]\n  - name: x\n    actions: [{log: warn}]\n")
    with pytest.raises(ConfigError, match=r"triggers\[1\].name: expected each rule's name once"):
        validate(load_config(conf, GRISConfig))
    giis = tmp_path / "giis.yaml"
    giis.write_text(f"triggers_dir: {tmp_path / 'nope'}\n")
    with pytest.raises(ConfigError, match="triggers_dir: expected an existing folder"):
        validate(load_config(giis, GIISConfig))
    (tmp_path / "rules").mkdir()
    giis.write_text("triggers_dir: rules\ntrigger_journal: t.sqlite\n")
    config = validate(load_config(giis, GIISConfig))
    assert (config.triggers_dir, config.trigger_journal) == (str(tmp_path / "rules"), str(tmp_path / "t.sqlite"))


def test_leftovers_in_the_folder_are_not_rules(tmp_path: Path) -> None:
    """Editor backups, dotfiles and other suffixes are skipped, as in the providers folder."""
    for name in ("a.yaml", "b.yml", ".c.yaml", "d.yaml~", "e.yaml.rpmnew", "f.txt"):
        (tmp_path / name).write_text(GOOD)
    assert [p.name for p in rule_files(str(tmp_path))] == ["a.yaml", "b.yml"]
