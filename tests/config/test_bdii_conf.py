"""Reading an existing BDII's files: bdii.conf into the GRIS's config, site-urls.conf into the GIIS's.

What operators rely on: the bdii.conf their BDII ran with starts gridinfo on the same port and
folders with the same cycle, and every line gridinfo cannot read is named (file:line) instead of
being skipped in silence as BDII's readers do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gridinfo.bdii import (
    BDII_CHILD,
    BDIIFileError,
    gris_config_from_bdii,
    listen_endpoints,
    log_level,
    parse_bdii_conf,
    parse_bdii_urls,
    read_bdii_conf,
    static_children,
)
from gridinfo.cli import giis as giis_cli
from gridinfo.cli import gris as gris_cli
from gridinfo.config import GRISConfig, ProviderConfig, validate
from gridinfo.errors import ConfigError

#: Debian's bdii 6.0.0 /etc/bdii/bdii.conf, as shipped.
SHIPPED = """\
BDII_LOG_FILE=/var/log/bdii/bdii-update.log
BDII_PID_FILE=/run/bdii/bdii-update.pid
BDII_LOG_LEVEL=ERROR
BDII_LDIF_DIR=/var/lib/bdii/gip/ldif
BDII_PROVIDER_DIR=/var/lib/bdii/gip/provider
BDII_PLUGIN_DIR=/var/lib/bdii/gip/plugin
BDII_PORT=2170
BDII_BREATHE_TIME=120
BDII_READ_TIMEOUT=300
BDII_ARCHIVE_SIZE=0
BDII_DELETE_DELAY=0
BDII_USER=openldap
BDII_VAR_DIR=/var/lib/bdii
"""


def gip(tmp_path: Path) -> dict[str, Path]:
    folders = {name: tmp_path / "gip" / name for name in ("ldif", "provider", "plugin")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    return folders


def conf_for(tmp_path: Path, extra: str = "") -> str:
    f = gip(tmp_path)
    return (
        f"BDII_LDIF_DIR={f['ldif']}\nBDII_PROVIDER_DIR={f['provider']}\nBDII_PLUGIN_DIR={f['plugin']}\n"
        "BDII_PORT=2170\nBDII_BREATHE_TIME=120\nBDII_READ_TIMEOUT=300\nBDII_DELETE_DELAY=0\n" + extra
    )


def test_the_shipped_bdii_conf_parses_with_every_key_and_its_line() -> None:
    """Debian's bdii.conf reads as bdii-update reads it: every key, its value, its line."""
    conf = parse_bdii_conf(SHIPPED, "/etc/bdii/bdii.conf")
    assert conf.get("BDII_PORT") == "2170"
    assert conf.settings["BDII_PROVIDER_DIR"].line == 5
    assert log_level(conf) == "error"
    assert [s.key for s, _why in conf.ignored] == [
        "BDII_LOG_FILE", "BDII_PID_FILE", "BDII_ARCHIVE_SIZE", "BDII_USER", "BDII_VAR_DIR"]
    assert conf.unknown == []


def test_comments_quotes_export_and_references_read_as_the_shell_reads_them() -> None:
    """The file is also sourced by BDII's start scripts: what the shell and bdii-update read alike is accepted."""
    conf = parse_bdii_conf(
        "# a comment\n\n"
        "export BDII_VAR_DIR=/srv/bdii   # trailing comment\n"
        'BDII_LDIF_DIR="${BDII_VAR_DIR}/gip/ldif"\n'
        "BDII_PLUGIN_DIR=$BDII_VAR_DIR/gip/plugin\n"
        "BDII_PROVIDER_DIR='/literal/$x'\n"
        "BDII_PORT = 2171\n"
        "BDII_PORT=2172\n"  # a later line wins, as in both readers
        "MY_OWN_VARIABLE=1\n"
    )
    assert conf.get("BDII_LDIF_DIR") == "/srv/bdii/gip/ldif"
    assert conf.get("BDII_PLUGIN_DIR") == "/srv/bdii/gip/plugin"
    assert conf.get("BDII_PROVIDER_DIR") == "/literal/$x"  # single quotes: no expansion
    assert conf.get("BDII_PORT") == "2172" and conf.settings["BDII_PORT"].line == 8
    assert [s.key for s in conf.unknown] == ["MY_OWN_VARIABLE"]


def test_every_bad_line_is_named_with_its_file_and_line() -> None:
    """Bad lines are errors, each with file:line and what was expected; BDII would skip or crash on them.

    Nothing is started on a file with a bad line, so nothing is half-applied."""
    text = (
        "BDII_PORT=2170\n"
        "this line has no equals sign\n"  # bdii-update skips it in silence; the shell runs it
        "BDII-PORT=2170\n"  # not a variable name
        "BDII_PORT=http\n"  # bdii-update crashes on int()
        "BDII_BREATHE_TIME=-5\n"
        "BDII_READ_TIMEOUT=soon\n"
        "BDII_LOG_LEVEL=VERBOSE\n"
        "BDII_LDIF_DIR=${NOT_SET}/ldif\n"
        "BDII_IPV6_SUPPORT=maybe\n"
        "BDII_PORT=70000\n"
    )
    with pytest.raises(BDIIFileError) as e:
        parse_bdii_conf(text, "/etc/bdii/bdii.conf")
    lines = str(e.value).splitlines()
    assert [p.line for p in e.value.problems] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert lines[0] == "/etc/bdii/bdii.conf:2: expected KEY=value, got 'this line has no equals sign'"
    assert lines[1] == "/etc/bdii/bdii.conf:3: expected a variable name before '=', got 'BDII-PORT'"
    assert lines[2] == "/etc/bdii/bdii.conf:4: BDII_PORT: expected a TCP port (1-65535), got 'http'"
    assert "BDII_BREATHE_TIME: expected a non-negative number of seconds, got '-5'" in lines[3]
    assert "BDII_READ_TIMEOUT: expected a non-negative number of seconds, got 'soon'" in lines[4]
    assert "BDII_LOG_LEVEL: expected one of CRITICAL, ERROR, WARNING, INFO, DEBUG, got 'VERBOSE'" in lines[5]
    assert "BDII_LDIF_DIR: $NOT_SET is not set above this line" in lines[6]
    assert "BDII_IPV6_SUPPORT: expected yes or no" in lines[7]
    assert "expected a TCP port (1-65535), got '70000'" in lines[8]
    assert isinstance(e.value, ConfigError) and e.value.line == 2


def test_bdii_conf_maps_onto_the_gris_config(tmp_path: Path) -> None:
    """Port, folders and cycle: ldif -> static LDIF, provider -> providers, plugin -> plugins,
    breathe time -> ttl with background refresh, read timeout -> timelimit, delete delay -> keepto."""
    conf = parse_bdii_conf(conf_for(tmp_path), str(tmp_path / "bdii.conf"))
    config = validate(gris_config_from_bdii(conf))
    assert config.listen == ("tcp:2170",)
    assert config.suffix == "mds-vo-name=resource,o=grid"
    assert config.ldif == (str(tmp_path / "gip" / "ldif"),)
    assert config.providers == (str(tmp_path / "gip" / "provider"),)
    assert config.plugins == (str(tmp_path / "gip" / "plugin"),)
    assert config.provider_defaults == ProviderConfig(ttl=120.0, timelimit=300.0, keepto=0.0, refresh="background")
    assert config.soft_state_stamps is False  # entries as the providers printed them, as BDII serves them
    assert config.source == str(tmp_path / "bdii.conf")


def test_the_yaml_config_keeps_what_bdii_conf_does_not_say(tmp_path: Path) -> None:
    """A GRIS YAML under --bdii-config keeps its limits, TLS, registration, and provider defaults it set."""
    conf = parse_bdii_conf(conf_for(tmp_path, "SLAPD_HOST=127.0.0.1\nBDII_IPV6_SUPPORT=yes\n"))
    yaml_config = GRISConfig(provider_defaults=ProviderConfig(keepto=900.0), max_concurrent_providers=9)
    config = gris_config_from_bdii(conf, yaml_config)
    assert config.max_concurrent_providers == 9
    assert config.provider_defaults.keepto == 900.0  # the YAML's own value wins over BDII_DELETE_DELAY
    assert config.provider_defaults.ttl == 120.0
    assert listen_endpoints(conf) == ("tcp:2170:interface=127.0.0.1", "tcp6:2170:interface=\\:\\:")
    validate(config)


def test_missing_folders_are_errors_on_the_line_that_names_them(tmp_path: Path) -> None:
    """bdii-update refuses to start without its folders; so do we, naming the line (or BDII's default)."""
    conf = parse_bdii_conf(f"BDII_LDIF_DIR={tmp_path}/nowhere\n", "bdii.conf")
    with pytest.raises(BDIIFileError) as e:
        gris_config_from_bdii(conf)
    first = e.value.problems[0]
    assert (first.source, first.line) == ("bdii.conf", 1)
    assert f"BDII_LDIF_DIR={tmp_path}/nowhere: expected an existing folder" in first.message


def test_gris_command_line_builds_the_bdii_profile(tmp_path: Path) -> None:
    """``gris --bdii-config FILE`` is the one command: later flags still win (here --listen)."""
    path = tmp_path / "bdii.conf"
    path.write_text(conf_for(tmp_path, "BDII_LOG_LEVEL=INFO\n"))
    args = gris_cli.build_parser().parse_args(["--bdii-config", str(path), "--listen", "tcp:0"])
    config = gris_cli.make_config(args)
    assert config.listen == ("tcp:0",)
    assert config.suffix == "mds-vo-name=resource,o=grid"
    assert gris_cli.log_level(args) == "info"
    assert read_bdii_conf(path).get("BDII_LOG_LEVEL") == "INFO"


def test_gris_command_line_reports_a_bad_bdii_conf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad bdii.conf exits 2 and prints each bad line; nothing listens."""
    path = tmp_path / "bdii.conf"
    path.write_text("BDII_PORT=x\n")
    assert gris_cli.main(["--bdii-config", str(path)]) == 2
    assert f"{path}:1: BDII_PORT: expected a TCP port (1-65535), got 'x'" in capsys.readouterr().err


# -- site-urls.conf / top-urls.conf ------------------------------------------------------------


def test_url_lines_become_static_children_pulled_as_bdii_pulls_them() -> None:
    """Each NAME ldap://host:port/base line is one mirrored child; comments and blank lines are skipped."""
    sources = parse_bdii_urls(
        "# site-urls.conf\n"
        "\n"
        "CE1  ldap://ce1.example.org:2170/mds-vo-name=resource,o=grid\n"
        "SE_1\tldap://[2001:db8::5]:2170/GLUE2GroupID=resource,o=glue   # GLUE 2 base\n"
        "site.B ldap://bdii.b.example.org:2170/mds-vo-name=SITE-B,o=grid\n"
    )
    assert [(s.name, s.host, s.port, s.base, s.line) for s in sources] == [
        ("CE1", "ce1.example.org", 2170, "mds-vo-name=resource,o=grid", 3),
        ("SE_1", "2001:db8::5", 2170, "GLUE2GroupID=resource,o=glue", 4),
        ("site.B", "bdii.b.example.org", 2170, "mds-vo-name=SITE-B,o=grid", 5),
    ]
    children = static_children(sources)
    assert children[0].url == "ldap://ce1.example.org:2170/mds-vo-name=resource,o=grid"
    assert (children[0].mode, children[0].timeout, children[0].keep, children[0].period) == (
        BDII_CHILD.mode, 30.0, 600.0, 120.0)


def test_bad_url_lines_are_named_with_file_and_line() -> None:
    """BDII skips these in silence (or with a log line no one reads); here each is an error with its line."""
    text = (
        "ldap://nohost.example.org:2170/mds-vo-name=resource,o=grid\n"  # no NAME
        "CE1 ldap://ce1.example.org/mds-vo-name=resource,o=grid\n"  # no port
        "CE2 ldaps://ce2.example.org:2170/mds-vo-name=resource,o=grid\n"  # not ldap://
        "CE3 ldap://ce3.example.org:2170/\n"  # no base
        "CE4 ldap://ce4.example.org:2170/o=grid extra\n"  # two URLs?
        "CE5 ldap://ce5.example.org:2170/mds-vo-name=resource,o=grid\n"
        "CE5 ldap://ce6.example.org:2170/mds-vo-name=resource,o=grid\n"  # NAME used twice
        "CE7 ldap://ce7.example.org:99999/o=grid\n"
    )
    with pytest.raises(BDIIFileError) as e:
        parse_bdii_urls(text, "site-urls.conf")
    assert [p.line for p in e.value.problems] == [1, 2, 3, 4, 5, 7, 8]
    lines = str(e.value).splitlines()
    assert lines[0].startswith("site-urls.conf:1: expected NAME ldap://host:port/base, got 'ldap://nohost")
    assert lines[1].startswith("site-urls.conf:2: CE1: expected an URL ldap://host:port/base")
    assert lines[2].startswith("site-urls.conf:3: CE2: expected an URL")
    assert lines[3].startswith("site-urls.conf:4: CE3: expected an URL")
    assert lines[4].startswith("site-urls.conf:5: expected NAME ldap://host:port/base")
    assert lines[5] == "site-urls.conf:7: CE5: this NAME is already used on line 6 (each source needs its own name)"
    assert lines[6] == "site-urls.conf:8: CE7: expected a TCP port (1-65535), got 99999"


def test_giis_command_line_adds_the_url_file_as_children(tmp_path: Path) -> None:
    """``giis --bdii-urls site-urls.conf`` adds one static child per line, after --child ones; the result validates."""
    path = tmp_path / "site-urls.conf"
    path.write_text("CE1 ldap://127.0.0.1:2170/mds-vo-name=resource,o=grid\n")
    args = giis_cli.build_parser().parse_args(
        ["--child", "ldap://127.0.0.1:2171/mds-vo-name=resource,o=grid", "--bdii-urls", str(path)])
    config = validate(giis_cli.make_config(args))
    assert [c.url for c in config.children] == [
        "ldap://127.0.0.1:2171/mds-vo-name=resource,o=grid", "ldap://127.0.0.1:2170/mds-vo-name=resource,o=grid"]
    assert config.children[1].mode == "mirror"
    bad = tmp_path / "bad-urls.conf"
    bad.write_text("CE1 nonsense\n")
    with pytest.raises(ConfigError, match=r"bad-urls.conf:1: CE1: expected an URL"):
        giis_cli.make_config(argparse.Namespace(**{**vars(args), "bdii_urls": [str(bad)]}))
