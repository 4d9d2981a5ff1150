"""Configuration: every mistake a site can make in conf/*.yaml is refused at start with the file,
the line where it can be, the key and what was expected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from twisted.internet import task

from gridinfo.cli import giis as giis_cli
from gridinfo.config import GIISConfig, GRISConfig, VMConfig, check_endpoint, load_config, validate
from gridinfo.errors import ConfigError
from gridinfo.service import make_giis_service, make_gris_service

CONF = Path(__file__).resolve().parents[2] / "conf"


def write(tmp_path: Path, text: str, name: str = "gris.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_bundled_configs_load_and_validate() -> None:
    """conf/gris.yaml and conf/giis.yaml, as shipped, are accepted."""
    validate(load_config(CONF / "gris.yaml", GRISConfig))
    validate(load_config(CONF / "giis.yaml", GIISConfig))


def test_the_documented_ipv6_listen_example_is_valid_yaml_and_a_valid_endpoint() -> None:
    """The IPv6 example in conf/gris.yaml can be pasted as it is."""
    text = (CONF / "gris.yaml").read_text()
    (example,) = re.findall(r"IPv6: ('[^']*')", text)
    endpoint = yaml.safe_load(f"listen: [{example}]")["listen"][0]
    assert endpoint == "tcp6:2135:interface=\\:\\:1"
    assert check_endpoint(endpoint) is None


def test_a_missing_ldif_folder_is_a_config_error(tmp_path: Path) -> None:
    """A typo in ldif: stops the GRIS with the path named, instead of serving without the data."""
    path = write(tmp_path, "ldif:\n  - no-such-folder\n")
    config = load_config(path, GRISConfig)
    with pytest.raises(ConfigError) as e:
        make_gris_service(config, task.Clock())
    assert str(path) in str(e.value) and "ldif[0]" in str(e.value) and "no-such-folder" in str(e.value)


def test_an_index_on_an_unknown_attribute_is_a_config_error(tmp_path: Path) -> None:
    """``index: [GlueCEUniqeID]`` (a typo) is refused, naming the key and the attribute."""
    path = write(tmp_path, "index: [GlueCEUniqueID, GlueCEUniqeID]\n")
    with pytest.raises(ConfigError, match=r"index\[1\]: expected an attribute type the schema defines, got 'GlueCEUniqeID'"):
        validate(load_config(path, GRISConfig))
    validate(load_config(write(tmp_path, "index: [GlueCEUniqueID]\n"), GRISConfig))


def test_a_giis_name_with_an_underscore_is_refused_with_its_line(tmp_path: Path) -> None:
    """MDS names are printable strings: ``name: my_site`` is an error at its line, as is --name my_site."""
    path = write(tmp_path, "# a GIIS\nname: my_site\n", "giis.yaml")
    with pytest.raises(ConfigError) as e:
        load_config(path, GIISConfig)
    assert e.value.line == 2 and "name: expected a GIIS name" in str(e.value) and str(path) in str(e.value)
    with pytest.raises(ConfigError, match="--name: expected a GIIS name"):
        giis_cli.make_config(giis_cli.build_parser().parse_args(["--name", "my_site"]))


def test_a_scalar_where_a_list_is_expected_is_refused(tmp_path: Path) -> None:
    """``listen: tcp:2135`` (not a list) is an error naming the key and the line."""
    path = write(tmp_path, "suffix: mds-vo-name=local,o=grid\nldif: conf/ldif\n")
    with pytest.raises(ConfigError, match=r"ldif: expected a list of a string, got 'conf/ldif'") as e:
        load_config(path, GRISConfig)
    assert e.value.line == 2


def test_a_bad_endpoint_string_says_file_key_and_expected_form(tmp_path: Path) -> None:
    """``tcp:21x5`` gives the key, the line and an example, not a bare int() message."""
    path = write(tmp_path, "listen:\n  - tcp:2135\n  - tcp:21x5\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, GRISConfig)
    text = str(e.value)
    assert str(path) in text and e.value.line == 2
    assert "listen[1]: expected a Twisted endpoint string such as tcp:2135:interface=127.0.0.1" in text
    assert "'tcp:21x5'" in text


def test_a_bad_register_url_is_refused(tmp_path: Path) -> None:
    """A register URL without a suffix is refused at start, with an example of the right form."""
    path = write(tmp_path, "register:\n  - url: ldap://giis.example.org:2135\n")
    with pytest.raises(ConfigError, match=r"register\[0\]\.url: expected an LDAP URL with a suffix"):
        load_config(path, GRISConfig)


def test_the_vm_config_error_names_the_config_file(tmp_path: Path) -> None:
    """vm.enabled without a journal names the file, not ``<config>``."""
    path = write(tmp_path, "vm:\n  enabled: true\n")
    with pytest.raises(ConfigError) as e:
        make_gris_service(load_config(path, GRISConfig), task.Clock())
    assert str(path) in str(e.value) and "<config>" not in str(e.value)
    assert "vm.journal: a file path is needed" in str(e.value)


def test_a_vm_source_of_an_unknown_kind_is_refused_with_its_line(tmp_path: Path) -> None:
    """``vm.sources`` values are one of cloud, hypervisor, vm, batch."""
    path = write(tmp_path, "vm:\n  sources:\n    cn=x,o=grid: clown\n")
    with pytest.raises(ConfigError, match=r"vm.sources.cn=x,o=grid: expected one of cloud, hypervisor, vm, batch") as e:
        load_config(path, GRISConfig)
    assert str(path) in str(e.value)


def test_configs_built_in_code_are_validated_too() -> None:
    """The wiring refuses a bad config however it was made (flags, code), not only from YAML."""
    with pytest.raises(ConfigError, match="name: expected a GIIS name"):
        make_giis_service(GIISConfig(name="a_b"), task.Clock())
    with pytest.raises(ConfigError, match="vm.journal"):
        validate(GRISConfig(vm=VMConfig(enabled=True)))


def test_the_documented_provider_defaults_are_the_built_in_ones() -> None:
    """conf/gris.yaml's provider_defaults section says what a GRIS does without it."""
    from gridinfo.config import BUILTIN_PROVIDER_DEFAULTS

    documented = load_config(CONF / "gris.yaml", GRISConfig).provider_defaults
    for name in ("ttl", "keepto", "timelimit", "sizelimit", "max_output_bytes", "retry", "args", "env", "refresh"):
        assert getattr(documented, name) == getattr(BUILTIN_PROVIDER_DEFAULTS, name), name


def test_a_bad_policy_filter_and_a_bad_provider_base_are_refused_at_start(tmp_path: Path) -> None:
    """Filters and DNs in the config are checked before anything starts, naming the key."""
    giis = write(tmp_path, 'policy:\n  - filter: "(Mds-Service-hn=*"\n', "giis.yaml")
    with pytest.raises(ConfigError, match=r"policy\[0\]\.filter: expected an LDAP filter") as e:
        validate(load_config(giis, GIISConfig))
    assert str(giis) in str(e.value)
    gris = write(tmp_path, "provider:\n  host: {base: 'not a dn'}\n")
    with pytest.raises(ConfigError, match=r"provider\.host\.base: expected a DN"):
        validate(load_config(gris, GRISConfig))


def test_feeds_vm_without_the_vm_section_is_refused_for_site_defaults_and_for_one_provider() -> None:
    """``feeds: vm`` needs vm.enabled, whether a provider entry or provider_defaults sets it; the key is named."""
    from gridinfo.config import ProviderConfig

    with pytest.raises(ConfigError, match=r"provider_defaults\.feeds: vm needs the vm section enabled"):
        validate(GRISConfig(provider_defaults=ProviderConfig(feeds="vm")))
    with pytest.raises(ConfigError, match=r"provider\.hv\.feeds: vm needs the vm section enabled"):
        validate(GRISConfig(provider={"hv": ProviderConfig(feeds="vm")}))


def test_registration_policy_keys_and_the_journal_are_checked(tmp_path: Path) -> None:
    """The shipped policy is the safe one; a journal that is a folder, or a non-boolean flag, is refused with file and line."""
    from gridinfo.config import DEFAULT_POLICY

    assert load_config(CONF / "giis.yaml", GIISConfig).policy == DEFAULT_POLICY == GIISConfig().policy
    assert load_config(CONF / "giis.yaml", GIISConfig).journal == "/var/lib/gridinfo/giis-registrations.sqlite"
    giis = write(tmp_path, f"name: site\njournal: {tmp_path}\n", "giis.yaml")
    with pytest.raises(ConfigError, match=r"journal: expected the path of an SQLite file") as e:
        load_config(giis, GIISConfig)
    assert str(e.value).startswith(f"{giis}:2: journal:")
    flag = write(tmp_path, 'policy:\n  - filter: "(Mds-Service-hn=*)"\n    third_party: maybe\n', "g2.yaml")
    with pytest.raises(ConfigError, match=r"policy\[0\]\.third_party: expected true or false"):
        load_config(flag, GIISConfig)
    relative = write(tmp_path, "journal: state/giis.sqlite\n", "g3.yaml")
    assert load_config(relative, GIISConfig).journal == str(tmp_path / "state" / "giis.sqlite")
