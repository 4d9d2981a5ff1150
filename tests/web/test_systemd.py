"""The systemd units in conf/systemd: systemd's own checker accepts them, and what they run exists."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "conf" / "systemd"
HARDENING = ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
             "RestrictAddressFamilies", "SystemCallFilter", "CapabilityBoundingSet")


def read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("daemon", ["gris", "giis"])
def test_unit_restarts_on_failure_hardens_and_runs_the_daemon(daemon: str, tmp_path: Path) -> None:
    path = UNITS / f"gridinfo-{daemon}.service"
    unit = read(path)
    svc = unit["Service"]
    assert svc["Type"] == "simple" and svc["Restart"] == "on-failure"
    assert svc["RestartPreventExitStatus"] == "2"  # a config error: restarting cannot fix it
    assert all(key in svc for key in HARDENING)
    assert svc["ExecStart"] == f"/opt/gridinfo/bin/{daemon} --config /etc/gridinfo/{daemon}.yaml"
    # the flags it passes are the daemon's
    module = __import__(f"gridinfo.cli.{daemon}", fromlist=["build_parser"])
    module.build_parser().parse_args(svc["ExecStart"].split()[1:])
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze")
    # systemd's checker, with ExecStart pointed at this virtualenv's daemon (which exists)
    copy = tmp_path / path.name
    copy.write_text(path.read_text().replace(f"/opt/gridinfo/bin/{daemon}", str(Path(sys.executable).parent / daemon)))
    out = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
