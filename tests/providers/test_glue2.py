"""GLUE 2.0 from the bundled providers: the entry builders, and what the real providers print
(site from conf/providers/site.yaml, host from this machine) checked
entry by entry against gridinfo's schema and against the EGI GLUE 2 profile's rules (all three
together, batch from a real Slurm: tests/integration/test_glue2_providers.py)."""

from __future__ import annotations

from pathlib import Path

from gridinfo.directory.ldif import parse_ldif
from gridinfo.directory.schema import default_schema
from gridinfo.providers_lib.batch import BatchConfig, Job, Partition, Queues, glue2_batch_entries
from gridinfo.providers_lib.glue2 import computing_manager_id
from gridinfo.providers_lib.host import HostConfig, cpu_multiplicity, fqdn, glue2_host_entries, Processor
from gridinfo.providers_lib.output import format_entries
from gridinfo.providers_lib.site import ContactConfig, SiteConfig, site_entries
from tests.providers import egi_glue2_profile as profile
from tests.providers.support import GLUE2_SUFFIX, run_provider

G2 = GLUE2_SUFFIX


def _checked(entries: list) -> dict[str, dict[str, list[str]]]:
    """Format, parse back and schema-check each entry; DN -> lower-cased attributes."""
    schema = default_schema()
    out: dict[str, dict[str, list[str]]] = {}
    for record in parse_ldif(format_entries(entries), "<builders>"):
        attrs: dict[str, list[bytes]] = {}
        for name, values in record.attributes:
            attrs.setdefault(name, []).extend(values)
        assert schema.check_entry(attrs) == [], record.dn
        out[record.dn] = {k.lower(): [v.decode() for v in vs] for k, vs in attrs.items()}
    return out


def _queues() -> Queues:
    return Queues(
        "23.02.6",
        {
            "debug": Partition("debug", "UP", total_cpus=4, idle_cpus=1, max_time_minutes=60, running=2, waiting=1),
            "long": Partition("long", "DRAIN", total_cpus=4, idle_cpus=4, preempt=True),
        },
        [
            Job("1", ["debug"], "alice", "RUNNING", "Running", 1, 2, 2, ""),
            Job("2", ["debug"], "bob", "RUNNING", "Running", 1, 2, 1, ""),
            Job("3", ["debug"], "bob", "PENDING", "Waiting", 1, None, 1, "Resources"),
        ],
    )


def test_batch_builds_service_endpoint_manager_and_a_share_per_partition() -> None:
    """From the Queues model alone: counts, serving states, mapping rules and every foreign key."""
    config = BatchConfig(ce_host="ce.example.org", site_id="EXAMPLE-SITE", vos=("VO:ops",), partition_vos={"long": ("VO:atlas",)})
    found = _checked(glue2_batch_entries(_queues(), config, G2))
    service_id = "ce.example.org_ComputingElement"
    service_dn = f"GLUE2ServiceID={service_id},{G2}"
    service = found[service_dn]
    assert service["glue2serviceadmindomainforeignkey"] == ["EXAMPLE-SITE"]
    assert (service["glue2computingservicerunningjobs"], service["glue2computingservicewaitingjobs"]) == (["2"], ["1"])
    endpoint = found[f"GLUE2EndpointID={service_id}_slurm,{service_dn}"]
    assert endpoint["glue2endpointservingstate"] == ["production"]  # one partition still takes jobs
    assert endpoint["glue2endpointimplementationversion"] == ["23.02.6"]
    manager = found[f"GLUE2ManagerID={service_id}_Manager,{service_dn}"]
    assert manager["glue2managerid"] == [computing_manager_id("ce.example.org")]  # the host provider's key
    assert manager["glue2computingmanagerslotsusedbylocaljobs"] == ["3"]
    debug = found[f"GLUE2ShareID=debug_{service_id},{service_dn}"]
    assert debug["glue2computingsharerunningjobs"] == ["2"] and debug["glue2computingsharewaitingjobs"] == ["1"]
    assert debug["glue2computingsharefreeslots"] == ["1"] and debug["glue2computingshareusedslots"] == ["3"]
    assert debug["glue2computingsharemaxwalltime"] == ["3600"]  # minutes -> seconds
    assert debug["glue2shareserviceforeignkey"] == [service_id]
    assert debug["glue2computingsharecomputingserviceforeignkey"] == [service_id]
    long = found[f"GLUE2ShareID=long_{service_id},{service_dn}"]
    assert long["glue2computingshareservingstate"] == ["draining"]
    assert long["glue2computingsharepreemption"] == ["TRUE"]
    assert "glue2computingsharemaxwalltime" not in long  # UNLIMITED: not published
    rules = {a["glue2mappingpolicyshareforeignkey"][0]: a["glue2policyrule"] for a in found.values() if "glue2mappingpolicyshareforeignkey" in a}
    assert rules == {f"debug_{service_id}": ["VO:ops"], f"long_{service_id}": ["VO:atlas"]}
    # the execution environment is the host provider's: alone, the batch output lacks it
    assert profile.problems(found) == ["<tree>: objectClass: GLUE2ComputingManager is published but no GLUE2ExecutionEnvironment is"]
    assert glue2_batch_entries(_queues(), config, "") == []  # GLUE 2 off


def test_site_builds_domain_location_and_contacts() -> None:
    """The AdminDomain, its Location and Contacts below it (so their DNs name the domain)."""
    config = SiteConfig(
        site_id="EXAMPLE-SITE", place="Geneva", country="Switzerland", latitude=46.23, longitude=-6.05,
        contacts=(ContactConfig("sysadmin", "mailto:a@example.org"), ContactConfig("sysadmin", "mailto:b@example.org"),
                  ContactConfig("security", "")),
    )
    found = _checked(site_entries(config, G2))
    domain = f"GLUE2DomainID=EXAMPLE-SITE,{G2}"
    assert found[domain]["glue2admindomaindistributed"] == ["FALSE"]
    location = found[f"GLUE2LocationID=EXAMPLE-SITE-location,{domain}"]
    assert location["glue2locationlongitude"] == ["-6.05"] and location["glue2locationdomainforeignkey"] == ["EXAMPLE-SITE"]
    contacts = sorted(dn for dn, a in found.items() if "GLUE2Contact" in a["objectclass"])
    assert contacts == [f"GLUE2ContactID=EXAMPLE-SITE-sysadmin-{n},{domain}" for n in (1, 2)]  # no detail: skipped
    assert profile.problems(found) == []
    assert site_entries(SiteConfig(), G2) == [] and site_entries(config, "") == []


def test_host_builds_an_execution_environment_with_benchmarks() -> None:
    """This machine as a GLUE2ExecutionEnvironment tied to the batch manager; configured benchmarks below it."""
    found = _checked(glue2_host_entries(HostConfig(resource_id="wn1", benchmarks={"hep-spec06": 10.5}), G2))
    ee = found[f"GLUE2ResourceID=wn1,{G2}"]
    assert ee["glue2executionenvironmentcomputingmanagerforeignkey"] == [computing_manager_id(fqdn())]
    assert ee["glue2resourcemanagerforeignkey"] == [computing_manager_id(fqdn())]
    assert int(ee["glue2executionenvironmentmainmemorysize"][0]) > 0
    assert ee["glue2executionenvironmentosfamily"] == ["linux"]
    bench = found[f"GLUE2BenchmarkID=wn1_hep-spec06,GLUE2ResourceID=wn1,{G2}"]
    assert bench["glue2benchmarkvalue"] == ["10.5"] and bench["glue2benchmarkexecutionenvironmentforeignkey"] == ["wn1"]
    assert profile.problems(found) == []
    one = Processor(None, None, None, sockets=1, cores=1, logical=1)
    assert cpu_multiplicity(one) == "singlecpu-singlecore"
    assert cpu_multiplicity(Processor(None, None, None, sockets=2, cores=16, logical=32)) == "multicpu-multicore"


def test_an_unknown_benchmark_type_is_refused_and_logged(tmp_path: Path) -> None:
    """A benchmark type the profile does not know: no GLUE2Benchmark, an error naming the file; the rest is published."""
    config = tmp_path / "host.yaml"
    config.write_text("benchmarks: {hepspec: 10}\n")
    run = run_provider("host", ["--config", str(config), "--state-dir", str(tmp_path)])
    assert run.returncode == 0 and run.by_class("GLUE2ExecutionEnvironment") and not run.by_class("GLUE2Benchmark")
    assert f"{config}: benchmarks: unknown GLUE2BenchmarkType hepspec" in run.stderr


def test_the_profile_check_catches_what_it_is_for() -> None:
    """The facts table is not vacuous: each kind of breach is reported with DN, attribute and rule."""
    bad = {
        f"GLUE2LocationID=l,GLUE2DomainID=A,{G2}": {
            "objectclass": ["GLUE2Location", "GridinfoSoftState"],
            "glue2locationlatitude": ["95"], "glue2locationdomainforeignkey": ["B"],
        },
        f"GLUE2ShareID=s,{G2}": {
            "objectclass": ["GLUE2Share", "GLUE2ComputingShare"],
            "glue2computingshareservingstate": ["Production"], "glue2computingsharewaitingjobs": ["444444"],
            "glue2computingsharefreeslots": ["-1"], "glue2computingsharepreemption": ["yes"],
        },
    }
    assert profile.problems(bad) == [
        "<tree>: objectClass: GLUE2Share is published but no GLUE2MappingPolicy is",
        f"GLUE2LocationID=l,GLUE2DomainID=A,{G2}: objectClass: GridinfoSoftState is not a GLUE 2 class",
        f"GLUE2LocationID=l,GLUE2DomainID=A,{G2}: GLUE2LocationLatitude: 95 is outside (-90, 90)",
        f"GLUE2LocationID=l,GLUE2DomainID=A,{G2}: GLUE2LocationDomainForeignKey: 'B' does not name the GLUE2DomainID in the DN",
        f"GLUE2ShareID=s,{G2}: GLUE2ComputingShareServingState: 'Production' is not one of closed, draining, production, queueing",
        f"GLUE2ShareID=s,{G2}: GLUE2ComputingSharePreemption: 'yes' is not an ExtendedBoolean",
        f"GLUE2ShareID=s,{G2}: GLUE2ComputingShareWaitingJobs: the placeholder 444444 is published",
        f"GLUE2ShareID=s,{G2}: glue2computingsharefreeslots: '-1' is not a non-negative integer",
    ]
