"""One job, one entry, related to the VM it runs in: the batch provider feeding the VM events (real Slurm).

The GRIS runs the bundled batch provider with ``feeds: vm`` and ``ttl: 0`` (every search runs it
and waits for the run), against the session's single-node Slurm.  The cloud manager registers a
VM whose host name is the Slurm node's, so a job Slurm runs there is a job in that VM.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gridinfo.vm.events import Event
from tests.integration.test_vm_events import PASSWORDS, SOURCES, SUFFIX, T0, ldapadd, ldapsearch
from tests.support.gris import REPO, GrisProcess
from tests.support.slurm import Slurm, wait_for

VM = "vm-wn"


def write_config(folder: Path, slurm: Slurm) -> Path:
    providers = folder / "providers"
    providers.mkdir()
    wrapper = providers / "batch"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "providers" / "batch"}" "$@"\n')
    wrapper.chmod(0o755)
    (folder / "batch.yaml").write_text(f"slurm_conf: {slurm.conf}\nce_host: ce.example.org\ncluster_id: c.example.org\n")
    lines = ["credentials:"] + [f'  "{dn}": {pw}' for dn, pw in PASSWORDS.items()]
    lines += [f"providers: [{providers}]", "rescan_interval: 0", "provider:", "  batch:", "    feeds: vm",
              "    ttl: 0", "    timelimit: 30", f'    args: ["--config", "{folder / "batch.yaml"}"]',
              "vm:", "  enabled: true", "  journal: journal.sqlite", "  sources:"]
    lines += [f'    "{dn}": {source}' for dn, source in SOURCES.items()]
    path = folder / "gris.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_slurm_job_on_a_node_that_is_a_vm_has_one_entry_related_both_ways(slurm: Slurm, tmp_path: Path) -> None:
    """The job's one entry is under ou=jobs (not also under its CE), says which VM it runs in; the
    VM's entry lists the job; the relation record is active, and past once the job is cancelled."""
    slurm.clear()
    config = write_config(tmp_path, slurm)
    with GrisProcess(["--config", str(config)]) as gris:
        cloud = "cn=cloud,o=grid"
        for event in (Event.make("Register", "cloud", 1, T0, vm_id=VM, attributes={"owner": "alice"}),
                      Event.make("Running", "cloud", 2, T0 + 1, vm_id=VM,
                                 attributes={"hostname": f"{slurm.node}.example.org", "physical_host": "hv1"})):
            added = ldapadd(gris.url, cloud, event)
            assert added.returncode == 0, added.stderr
        job = slurm.run("sbatch", "--parsable", "-p", "debug", "-n", "1", "-o", "/dev/null", "--wrap", "sleep 120").strip()
        wait_for("job running", lambda: slurm.run("squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING")
        entries = ldapsearch(gris.url, SUFFIX, f"(&(objectClass=GridinfoJob)(GridinfoJobID={job}))")  # runs the provider
        assert [e["dn"] for e in entries] == [[f"GridinfoJobID={job},ou=jobs,{SUFFIX}"]]  # one entry per job
        [entry] = entries
        assert entry["gridinfojobstate"] == ["Running"] and entry["gridinfojobvm"] == [VM]
        assert entry["gridinfojobowner"] == ["root"] and entry["gridinfojobqueue"] == ["debug"]
        assert entry["gridinfovmsources"] == ["batch"]
        [vm] = ldapsearch(gris.url, SUFFIX, f"(&(objectClass=GridinfoVM)(GridinfoVMID={VM}))", "GridinfoVMJob")
        assert vm["gridinfovmjob"] == [job]
        [rel] = ldapsearch(gris.url, SUFFIX, f"(&(objectClass=GridinfoJobVMRelation)(GridinfoVMID={VM}))")
        assert rel["gridinfojobid"] == [job] and rel["gridinforelationactive"] == ["TRUE"]
        assert len(ldapsearch(gris.url, SUFFIX, "(objectClass=GlueCE)", "GlueCEUniqueID")) == 2  # the CEs stay
        slurm.run("scancel", job)
        wait_for("job gone or done", lambda: slurm.run("squeue", "-h", "-j", job, "-o", "%T").strip()
                 in ("", "CANCELLED", "COMPLETED"))
        [entry] = ldapsearch(gris.url, SUFFIX, f"(&(objectClass=GridinfoJob)(GridinfoJobID={job}))")
        assert entry["gridinfojobgenericstate"] in (["Done"], ["Aborted"])
        past = ldapsearch(gris.url, SUFFIX, f"(&(objectClass=GridinfoJobVMRelation)(GridinfoVMID={VM})"
                                            "(GridinfoRelationActive=FALSE))", "GridinfoJobID")
        assert [r["gridinfojobid"] for r in past] == [[job]]  # all jobs that ran in the VM, past ones too
