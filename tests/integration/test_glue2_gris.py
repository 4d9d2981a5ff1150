"""GLUE 2.0 in a running GRIS: the bundled site, host and batch providers (real Slurm) and the
GRIS's own service, searched under o=glue with OpenLDAP's ldapsearch the way ginfo and
glue-validator search it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.providers import egi_glue2_profile as profile
from tests.support.slurm import Slurm, wait_for
from tests.providers.support import GLUE2_SUFFIX, PROVIDERS, ROOT
from tests.integration.test_gris_end_to_end import _ldapsearch
from tests.support.ports import free_port


def test_ginfo_style_queries_under_o_glue_find_what_the_providers_published(tmp_path: Path, slurm: Slurm) -> None:
    """namingContexts lists o=grid, o=glue, o=infosys; objectClass and mapping-rule queries under
    o=glue find the shares, policies, service, manager, execution environment, site and the
    GRIS's own endpoint; the counts are Slurm's; the whole tree meets the profile's rules."""
    port = free_port()
    (tmp_path / "batch.yaml").write_text(
        f"slurm_conf: {slurm.conf}\nsite_id: EXAMPLE-SITE\nvos: ['VO:ops', 'VO:dteam']\n"
        "partition_vos: {long: ['vo:dteam']}\n"
    )
    (tmp_path / "gris.yaml").write_text(
        f"listen: ['tcp:{port}:interface=127.0.0.1']\n"
        f"providers: [{PROVIDERS}]\n"
        "glue2_site_id: EXAMPLE-SITE\n"
        "provider:\n"
        f"  host: {{args: ['--state-dir', '{tmp_path / 'state'}']}}\n"
        f"  batch: {{args: ['--config', '{tmp_path / 'batch.yaml'}']}}\n"
        f"  site: {{args: ['--config', '{ROOT / 'conf' / 'providers' / 'site.yaml'}']}}\n"
        "  hypervisor: {enabled: false}\n"
        "  network: {enabled: false}\n"
    )
    held = slurm.run("sbatch", "--parsable", "--hold", "-p", "long", "-o", "/dev/null", "--wrap", "true").strip()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    gris = subprocess.Popen(
        [str(Path(sys.executable).parent / "gris"), "--config", str(tmp_path / "gris.yaml")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("GRIS answers", lambda: bool(_ldapsearch(port, "", "(objectClass=*)", "namingContexts")), 60)
        rootdse = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", f"ldap://127.0.0.1:{port}", "-s", "base", "-b", "", "namingContexts"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        shares = _ldapsearch(port, "o=glue", "(objectClass=GLUE2ComputingShare)")
        dteam = _ldapsearch(port, "o=glue", "(&(objectClass=GLUE2MappingPolicy)(GLUE2PolicyRule=vo:dteam))")
        upper = _ldapsearch(port, "o=glue", "(&(objectClass=GLUE2MappingPolicy)(GLUE2PolicyRule=VO:dteam))")
        everything = _ldapsearch(port, "o=glue", "(objectClass=*)")
        ours = _ldapsearch(port, "o=glue", "(&(objectClass=GLUE2Endpoint)(GLUE2EndpointImplementationName=gridinfo))")
        pending = slurm.run("squeue", "-h", "-p", "long", "-t", "PD", "-o", "%i").split()
    finally:
        gris.terminate()
        gris.wait(10)
    assert [line.split(": ", 1)[1] for line in rootdse.splitlines() if line.startswith("namingContexts")] == [
        "o=grid", "o=glue", "o=infosys",
    ]
    queues = {a["glue2computingsharemappingqueue"][0]: a for a in shares.values()}
    assert set(queues) == {"debug", "long"}
    assert held in pending and queues["long"]["glue2computingsharewaitingjobs"] == [str(len(pending))]
    assert all(dn.endswith(f",{GLUE2_SUFFIX}") for dn in shares)
    # GLUE 2 strings are caseExact: "vo:dteam" (the long partition's rule) is not "VO:dteam" (debug's)
    assert [a["glue2mappingpolicyshareforeignkey"] for a in dteam.values()] == [["long_" + next(iter(shares.values()))["glue2shareserviceforeignkey"][0]]]
    assert [a["glue2mappingpolicyshareforeignkey"][0].split("_")[0] for a in upper.values()] == ["debug"]
    [endpoint] = ours.values()
    assert endpoint["glue2endpointurl"] == [f"ldap://127.0.0.1:{port}/"]
    assert endpoint["glue2endpointhealthstate"] == ["ok"]
    classes = {c for a in everything.values() for c in a["objectclass"]}
    assert {"GLUE2AdminDomain", "GLUE2Location", "GLUE2Contact", "GLUE2ComputingService", "GLUE2ComputingEndpoint",
            "GLUE2ComputingManager", "GLUE2ExecutionEnvironment", "GLUE2AccessPolicy", "GLUE2Service"} <= classes
    assert profile.problems(profile.as_entries(everything.items())) == []
