"""The ``tls:`` section of gris.yaml / giis.yaml: mistakes refused at start with the file, the
line where it can be, the key and what was expected; relative paths follow the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridinfo.config import GIISConfig, GRISConfig, load_config, validate
from gridinfo.errors import ConfigError
from tests.support.tls import make_test_pki


def write(tmp_path: Path, text: str, name: str = "gris.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_tls_section_with_relative_paths_loads(tmp_path: Path) -> None:
    """Certificate, key and CA paths are relative to the config file's folder, as ldif: is."""
    make_test_pki(tmp_path / "pki")
    text = "tls:\n  certificate: pki/server.pem\n  key: pki/server-key.pem\n  ca: pki/ca.pem\n" \
           "  client_certificates: required\n"
    for kind, name in ((GRISConfig, "gris.yaml"), (GIISConfig, "giis.yaml")):
        config = validate(load_config(write(tmp_path, text, name), kind))
        assert config.tls.certificate == str(tmp_path / "pki" / "server.pem")
        assert config.tls.client_certificates == "required"
        assert config.tls.allow_plain_passwords is False


def test_a_bad_client_certificate_policy_names_its_line_and_the_choices(tmp_path: Path) -> None:
    """client_certificates takes none, optional or required: anything else is refused with its line."""
    path = write(tmp_path, "tls:\n  client_certificates: sometimes\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, GRISConfig)
    assert e.value.line == 2
    assert "tls.client_certificates: expected one of 'none', 'optional', 'required'" in str(e.value)


def test_an_unknown_tls_key_is_refused_with_its_line(tmp_path: Path) -> None:
    """A typo such as `cert:` is an unknown key, listed with the known ones."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "tls:\n  cert: server.pem\n"), GRISConfig)
    assert e.value.line == 2
    assert "unknown key tls.cert" in str(e.value) and "certificate" in str(e.value)


def test_missing_and_unusable_tls_files_are_refused_at_start(tmp_path: Path) -> None:
    """A missing file, a certificate without its key, client certificates without a CA, and a
    key that is not PEM are all refused before the daemon listens, naming the key."""
    pki = make_test_pki(tmp_path / "pki")
    cases = {
        "tls:\n  certificate: nowhere.pem\n  key: pki/server-key.pem\n": "tls.certificate: expected an existing PEM file",
        "tls:\n  certificate: pki/server.pem\n": "tls: certificate and key go together",
        "tls:\n  certificate: pki/server.pem\n  key: pki/server-key.pem\n  client_certificates: optional\n":
            "tls.client_certificates: optional needs tls.ca",
        "tls:\n  certificate: pki/server.pem\n  key: pki/ca.pem\n": "tls: cannot load the certificate or key",
        "tls:\n  ca: pki/server-key.pem\n": "holds no PEM certificate",
    }
    for text, expected in cases.items():
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as e:
            validate(load_config(path, GRISConfig))
        assert expected in str(e.value), (text, str(e.value))
        assert str(path) in str(e.value)
    assert pki.ca


def test_passwords_from_files_and_ssha_hashes(tmp_path: Path) -> None:
    """credentials may be {SSHA} hashes or file:PATH (relative to the config's folder), and
    register passwords file:PATH; the daemon reads the file's first line at start."""
    from twisted.internet import task

    from gridinfo.config import read_secret
    from gridinfo.ldap.passwords import matches, ssha
    from gridinfo.service import make_gris_service

    (tmp_path / "registrar.pw").write_text("upward\n")
    (tmp_path / "admin.pw").write_text("adminpw\n")
    hashed = ssha("hashed pw")
    text = (
        "credentials:\n"
        f'  "cn=hashed,o=grid": "{hashed}"\n'
        '  "cn=admin,o=grid": "file:admin.pw"\n'
        "register:\n"
        "  - url: ldap://127.0.0.1:1/mds-vo-name=site,o=grid\n"
        "    password: file:registrar.pw\n"
    )
    config = validate(load_config(write(tmp_path, text), GRISConfig))
    assert config.credentials["cn=admin,o=grid"] == f"file:{tmp_path / 'admin.pw'}"
    assert read_secret(config.register[0].password) == "upward"
    top = make_gris_service(config, task.Clock())
    stored = top.factory.credentials
    assert stored["cn=admin,o=grid"] == "adminpw" and matches(stored["cn=hashed,o=grid"], b"hashed pw")
    assert top.registrar.parents[0].client.password == "upward"


def test_bad_secrets_and_external_without_a_certificate_are_refused(tmp_path: Path) -> None:
    """A file: password that cannot be read, a malformed {SSHA}, a hash where a password
    must be sent, and bind_method: external without a certificate are refused at start,
    naming the key."""
    cases = {
        'credentials:\n  "cn=a,o=grid": "file:missing.pw"\n': "credentials.cn=a,o=grid: expected a readable file",
        'credentials:\n  "cn=a,o=grid": "{SSHA}not base64!"\n': "credentials.cn=a,o=grid: expected {SSHA}",
        "register:\n  - url: ldap://h:2135/mds-vo-name=site,o=grid\n    password: '{SSHA}AAAA'\n":
            "register[0].password: expected the password itself",
        "register:\n  - url: ldap://h:2135/mds-vo-name=site,o=grid\n    bind_method: external\n":
            "register[0].bind_method: external needs tls.certificate",
    }
    for text, expected in cases.items():
        with pytest.raises(ConfigError) as e:
            validate(load_config(write(tmp_path, text), GRISConfig))
        assert expected in str(e.value), (text, str(e.value))
