"""The bundled providers work however ``gris`` is started: from a plain login shell, and installed.

Each test starts the real ``gris`` executable with a clean environment (``env -i``: a HOME and
the system PATH, no virtualenv on it), so a provider's ``#!/usr/bin/env python3`` would find the
system Python, which has neither gridinfo nor psutil.  The entries are read with ``ldapsearch``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.gris import REPO, wait_for_listening

SUFFIX = "mds-vo-name=local,o=grid"
LOGIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _ldapsearch(port: int, base: str, filter_: str, *attrs: str) -> dict[str, dict[str, list[str]]]:
    out = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldap://127.0.0.1:{port}", "-b", base, filter_, *attrs],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    entries: dict[str, dict[str, list[str]]] = {}
    for block in out.strip().split("\n\n"):
        lines = [line for line in block.splitlines() if ": " in line]
        if lines:
            attrs_: dict[str, list[str]] = {}
            for line in lines[1:]:
                name, value = line.split(": ", 1)
                attrs_.setdefault(name.lower(), []).append(value)
            entries[lines[0].split(": ", 1)[1]] = attrs_
    return entries


def _of(found: dict[str, dict[str, list[str]]], cls: str) -> list[dict[str, list[str]]]:
    return [a for a in found.values() if cls.lower() in {c.lower() for c in a.get("objectclass", [])}]


def _serve(argv: list[str], tmp_path: Path, cwd: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int, Path]:
    log = tmp_path / "gris.log"
    env = {"HOME": str(tmp_path), "PATH": LOGIN_PATH, **(extra_env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        port = wait_for_listening(log, proc, 60)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, port, log


def _network_config(tmp_path: Path) -> Path:
    """A gris.yaml giving the network provider one target: TCP to a port nobody listens on is enough."""
    (tmp_path / "net.yaml").write_text("targets:\n  - {host: 127.0.0.1, port: 9, name: discard, methods: [tcp]}\n")
    config = tmp_path / "gris.yaml"
    config.write_text(
        "provider:\n"
        f"  host: {{args: ['--state-dir', '{tmp_path / 'state'}']}}\n"
        f"  network: {{args: ['--config', '{tmp_path / 'net.yaml'}']}}\n"
    )
    return config


def test_readme_command_serves_host_and_network_from_a_login_shell(tmp_path: Path) -> None:
    """`.venv/bin/gris --listen ... --providers providers` from a fresh clone with no venv on PATH
    publishes the host and network providers' entries (they run with gridinfo's Python)."""
    gris = Path(sys.executable).parent / "gris"
    proc, port, log = _serve(
        [str(gris), "--config", str(_network_config(tmp_path)), "--listen", "tcp:0:interface=127.0.0.1",
         "--providers", "providers"],
        tmp_path, REPO,
    )
    try:
        found = _ldapsearch(port, SUFFIX, "(objectClass=*)")
        status = _ldapsearch(port, "o=infosys", "(objectClass=GridinfoProviderStatus)")
    finally:
        proc.terminate()
        proc.wait(10)
    text = log.read_text(errors="replace")
    assert "ModuleNotFoundError" not in text, text
    [sub] = _of(found, "GlueSubCluster")
    assert int(sub["gluesubclusterlogicalcpus"][0]) >= 1
    [path] = _of(found, "GridinfoNetworkPath")
    assert path["gridinfopathmethod"] == ["tcp"]
    states = {a["gridinfoprovidername"][0]: a["gridinfoproviderstate"][0] for a in status.values()}
    assert states["host"] == "fresh" and states["network"] == "fresh", states


def test_installed_gridinfo_finds_and_runs_its_bundled_providers(tmp_path: Path) -> None:
    """A non-editable install (a built wheel, away from the source tree) runs its own bundled
    providers with `bundled_providers: true`, from a login shell's environment."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        check=True, timeout=300, capture_output=True,
    )
    [wheel] = wheels.glob("gridinfo-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True, timeout=300, capture_output=True,
    )
    installed = site / "gridinfo" / "providers_lib" / "bundled" / "host"
    assert installed.is_file() and installed.stat().st_mode & 0o111, "bundled providers not installed executable"
    config = _network_config(tmp_path)
    config.write_text(config.read_text() + "bundled_providers: true\n")
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    # the installed copy comes first on the path: the source tree's gridinfo is not used (a
    # --target install puts the data files, the schemas, in <target>/share: say where)
    proc, port, log = _serve(
        [sys.executable, "-c", "import sys; from gridinfo.cli.gris import main; sys.exit(main())",
         "--config", str(config), "--listen", "tcp:0:interface=127.0.0.1"],
        tmp_path, elsewhere, {"PYTHONPATH": str(site), "GRIDINFO_SCHEMA_DIR": str(site / "share" / "gridinfo" / "schemas")},
    )
    try:
        found = _ldapsearch(port, SUFFIX, "(objectClass=*)")
        status = _ldapsearch(port, "o=infosys", "(GridinfoProviderName=host)")
    finally:
        proc.terminate()
        proc.wait(10)
    assert "ModuleNotFoundError" not in log.read_text(errors="replace")
    assert len(_of(found, "GlueSubCluster")) == 1
    assert len(_of(found, "GridinfoNetworkPath")) == 1
    [host] = status.values()
    assert host["gridinfoproviderpath"] == [str(installed)]
