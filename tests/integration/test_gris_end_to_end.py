"""The bundled providers in a running GRIS, read back with OpenLDAP's ldapsearch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.slurm import Slurm, wait_for
from tests.providers.support import DATA, PROVIDERS, SUFFIX
from tests.support.ports import free_port


def _ldapsearch(port: int, base: str, filter_: str, *attrs: str) -> dict[str, dict[str, list[str]]]:
    out = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldap://127.0.0.1:{port}", "-b", base, filter_, *attrs],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    entries: dict[str, dict[str, list[str]]] = {}
    for block in out.strip().split("\n\n"):
        lines = [line for line in block.splitlines() if ": " in line]
        if not lines:
            continue
        dn = lines[0].split(": ", 1)[1]
        attrs_: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, value = line.split(": ", 1)
            attrs_.setdefault(name.lower(), []).append(value)
        entries[dn] = attrs_
    return entries


def test_ldapsearch_shows_every_bundled_provider(tmp_path: Path, slurm: Slurm) -> None:
    """host, hypervisor (libvirt test driver), network and batch (real Slurm) entries, as each source says."""
    __import__("libvirt")
    port = free_port()
    (tmp_path / "hv.yaml").write_text(f"uri: 'test://{DATA / 'node.xml'}'\n")
    (tmp_path / "net.yaml").write_text(f"targets:\n  - {{host: 127.0.0.1, port: {port}, name: self}}\n")
    (tmp_path / "batch.yaml").write_text(f"slurm_conf: {slurm.conf}\n")
    (tmp_path / "gris.yaml").write_text(
        f"listen: ['tcp:{port}:interface=127.0.0.1']\n"
        f"providers: [{PROVIDERS}]\n"
        "provider:\n"
        f"  host: {{args: ['--state-dir', '{tmp_path / 'state'}']}}\n"
        f"  hypervisor: {{args: ['--config', '{tmp_path / 'hv.yaml'}']}}\n"
        f"  network: {{args: ['--config', '{tmp_path / 'net.yaml'}']}}\n"
        f"  batch: {{args: ['--config', '{tmp_path / 'batch.yaml'}']}}\n"
    )
    held = slurm.run("sbatch", "--parsable", "--hold", "-p", "long", "-o", "/dev/null", "--wrap", "true").strip()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    gris = subprocess.Popen(
        [str(Path(sys.executable).parent / "gris"), "--config", str(tmp_path / "gris.yaml")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("GRIS answers", lambda: bool(_ldapsearch(port, "o=grid", "(objectClass=*)", "1.1")))
        found = _ldapsearch(port, SUFFIX, "(objectClass=*)")
        squeue_ids = set(slurm.run("squeue", "-h", "-o", "%i").split())
    finally:
        gris.terminate()
        gris.wait(10)

    def of(cls: str) -> dict[str, dict[str, list[str]]]:
        return {dn: a for dn, a in found.items() if cls.lower() in {c.lower() for c in a.get("objectclass", [])}}

    [sub] = of("GlueSubCluster").values()
    assert sub["gluesubclusterlogicalcpus"] == [str(psutil.cpu_count())]
    states = {a["gridinfovmname"][0]: a["gridinfovmstate"][0] for a in of("GridinfoVM").values()}
    assert states == {"web01": "Running", "batch02": "Paused", "spare03": "ShutDown", "broken04": "Crashed"}
    [path] = of("GridinfoNetworkPath").values()
    assert path["gridinfopathloss"] == ["0"]  # the GRIS's own port answered
    assert {a["gluecename"][0] for a in of("GlueCE").values()} == {"debug", "long"}
    jobs = {a["gridinfojobid"][0] for a in of("GridinfoJob").values()}
    assert held in jobs and jobs == squeue_ids
