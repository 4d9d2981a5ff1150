"""A real OpenLDAP slapd on loopback, for integration tests and benchmarks.

``Slapd`` writes an old-style ``slapd.conf`` into its own temporary directory (one ``mdb``
database per suffix, anonymous read access, no size or time limits, ``objectClass`` indexed
unless told otherwise), loads the LDIF with ``slapadd -q`` (timed: ``load_seconds``), starts
``slapd -d 0`` in the foreground on a free loopback port and waits, bounded, until it answers an
anonymous root DSE search.  Leaving the ``with`` block stops it and removes the directory.

slapd checks every entry against its schema during ``slapadd`` (we never pass ``-s``), so a
successful load is also a schema check of the data.

``Slapd.syncprov(...)`` is an RFC 4533 provider (the syncprov overlay), for the sync consumer's
tests and benchmark.

``Slapd.bdii(...)`` is configured as EGI's BDII configures its slapd for the GLUE 1.3 tree
(``loglevel 0``, ``idletimeout 120``, the equality, substring and presence indexes below): the
peer ``tools/bench`` measures gridinfo against.  Without ``loglevel`` slapd logs at its default
level (``stats``: a line per connection and operation), which costs it about half its rate.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from gridinfo_dev.loadgen import LoadGenError, process_cpu_seconds, process_rss_bytes, wait_for_ldap
from gridinfo_dev.ports import LOOPBACK, free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = Path("/etc/ldap/schema")
GRIDINFO_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"  # gridinfo's own schema files

#: Schema files for GLUE 1.3 data under ``mds-vo-name=...,o=grid``, in dependency order.
#: Debian's glue-schema package defines ``Mds-Vo-name`` and ``MdsVo`` in Glue-MDS.schema.
GLUE_SCHEMAS: tuple[Path, ...] = tuple(
    SCHEMA_DIR / name
    for name in (
        "core.schema",
        "cosine.schema",
        "Glue-CORE.schema",
        "Glue-CE.schema",
        "Glue-CESEBind.schema",
        "Glue-SE.schema",
        "Glue-MDS.schema",
    )
)

#: The indexes of a production BDII's GLUE 1.3 database (``o=grid``), as (attribute, index
#: types).  Facts from EGI's bdii ``etc/bdii-slapd.conf`` (the top-level configuration has the
#: same list): mostly equality indexes on the GLUE IDs, keys and access rules.
BDII_GLUE13_INDEXES: tuple[tuple[str, str], ...] = (
    ("objectClass", "eq,pres"),
    ("GlueCEAccessControlBaseRule", "eq"),
    ("GlueCESEBindCEUniqueID", "eq"),
    ("GlueCESEBindSEUniqueID", "eq"),
    ("GlueCEUniqueID", "eq"),
    ("GlueChunkKey", "eq"),
    ("GlueClusterUniqueID", "eq"),
    ("GlueSAAccessControlBaseRule", "eq"),
    ("GlueSALocalID", "eq"),
    ("GlueSEAccessProtocolType", "pres"),
    ("GlueSEUniqueID", "eq"),
    ("GlueServiceAccessControlBaseRule", "eq"),
    ("GlueServiceAccessControlRule", "eq"),
    ("GlueServiceDataKey", "eq"),
    ("GlueServiceEndpoint", "eq,sub"),
    ("GlueServiceType", "eq,sub"),
    ("GlueServiceURI", "eq,sub"),
    ("GlueSubClusterUniqueID", "eq"),
    ("GlueVOInfoAccessControlBaseRule", "eq"),
)

#: The indexes of a production BDII's GLUE 2.0 database (``o=glue``), from the same file: an
#: equality index on every GLUE 2 ID, on ``GLUE2EndpointInterfaceName`` and on ``GLUE2PolicyRule``.
BDII_GLUE2_INDEXES: tuple[tuple[str, str], ...] = (
    ("GLUE2GroupID", "eq"),
    ("GLUE2ExtensionLocalID", "eq"),
    ("GLUE2LocationID", "eq"),
    ("GLUE2ContactID", "eq"),
    ("GLUE2DomainID", "eq"),
    ("GLUE2ServiceID", "eq"),
    ("GLUE2EndpointID", "eq"),
    ("GLUE2ShareID", "eq"),
    ("GLUE2ManagerID", "eq"),
    ("GLUE2ResourceID", "eq"),
    ("GLUE2ActivityID", "eq"),
    ("GLUE2PolicyID", "eq"),
    ("GLUE2BenchmarkID", "eq"),
    ("GLUE2ApplicationEnvironmentID", "eq"),
    ("GLUE2ApplicationHandleID", "eq"),
    ("GLUE2ToStorageServiceID", "eq"),
    ("GLUE2StorageServiceCapacityID", "eq"),
    ("GLUE2StorageAccessProtocolID", "eq"),
    ("GLUE2StorageShareSharingID", "eq"),
    ("GLUE2StorageShareCapacityID", "eq"),
    ("GLUE2EndpointInterfaceName", "eq"),
    ("GLUE2PolicyRule", "eq"),
    ("objectClass", "eq,pres"),
)

#: Which index list BDII's slapd gives each of its databases.
BDII_INDEXES: dict[str, tuple[tuple[str, str], ...]] = {"o=grid": BDII_GLUE13_INDEXES, "o=glue": BDII_GLUE2_INDEXES}

#: Global settings of a production BDII's slapd: no logging at all, idle clients dropped after 120 s.
BDII_SETTINGS: tuple[str, ...] = ("loglevel 0", "idletimeout 120")


def bdii_equality_indexes(suffix: str = "o=grid") -> list[str]:
    """The attributes BDII's slapd has an equality index on in ``suffix``'s database, objectClass left out."""
    return [
        attribute
        for attribute, kinds in BDII_INDEXES[suffix]
        if "eq" in kinds.split(",") and attribute.lower() != "objectclass"
    ]


START_TIMEOUT = 60.0
#: who may write to a ``Slapd.syncprov`` provider
SYNCPROV_ROOT_DN = "cn=admin,o=grid"
SYNCPROV_PASSWORD = "secret"
SLAPADD_TIMEOUT = 1800.0


class SlapdError(Exception):
    """slapd or slapadd failed; the message carries the tail of its log."""


def slapd_available() -> bool:
    """True if slapd, slapadd, the mdb module and the GLUE schema files are installed."""
    return (
        os.access(SLAPD, os.X_OK)
        and os.access(SLAPADD, os.X_OK)
        and shutil.which("ldapsearch") is not None
        and (Path(MODULE_PATH) / "back_mdb.so").exists()
        and all(path.exists() for path in GLUE_SCHEMAS)
    )


def _normalise_dn(dn: str) -> str:
    """Lower-case a DN and drop spaces around separators; enough to route entries by suffix."""
    parts = []
    for rdn in dn.split(","):
        attr, _, value = rdn.partition("=")
        parts.append(f"{attr.strip().lower()}={value.strip().lower()}")
    return ",".join(parts)


def _records(ldif: bytes) -> list[tuple[str, bytes]]:
    """Split LDIF content into (normalised DN, record bytes) pairs."""
    import base64

    records = []
    for raw in ldif.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line for line in raw.split(b"\n") if not line.startswith(b"#")]
        text = b"\n".join(lines).replace(b"\n ", b"").strip(b"\n")
        if not text or text.startswith(b"version:"):
            continue
        first = text.split(b"\n", 1)[0]
        if first.lower().startswith(b"dn::"):
            dn = base64.b64decode(first[4:].strip()).decode("utf-8")
        elif first.lower().startswith(b"dn:"):
            dn = first[3:].strip().decode("utf-8")
        else:
            raise SlapdError(f"LDIF record without dn: {first[:80]!r}")
        records.append((_normalise_dn(dn), raw.strip(b"\n") + b"\n\n"))
    return records


class Slapd:
    """A throw-away slapd serving ``ldif`` under ``suffixes`` on 127.0.0.1.

    ``ldif`` is a path to an LDIF file, LDIF bytes, or None for empty databases.  With several
    suffixes each gets its own database and the entries are routed by DN.
    """

    def __init__(
        self,
        ldif: str | os.PathLike[str] | bytes | None = None,
        suffixes: Sequence[str] = ("o=grid",),
        schemas: Sequence[str | os.PathLike[str]] = GLUE_SCHEMAS,
        index_object_class: bool = True,
        extra_indexes: Sequence[str] = (),
        settings: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
        suffix_indexes: Mapping[str, Sequence[str]] | None = None,
        database_lines: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if isinstance(suffixes, str):
            suffixes = [suffixes]
        self.suffixes = list(suffixes)
        self.schemas = [Path(s) for s in schemas]
        self.ldif = ldif
        self.index_object_class = index_object_class
        self.extra_indexes = list(extra_indexes)
        #: index lines for one database only (suffix -> specs), after ``extra_indexes``
        self.suffix_indexes = {k.lower(): list(v) for k, v in (suffix_indexes or {}).items()}
        #: more lines for one database (suffix -> lines), e.g. a ``syncrepl`` consumer directive
        self.database_lines = {k.lower(): list(v) for k, v in (database_lines or {}).items()}
        self.settings = list(settings)
        self.start_timeout = start_timeout
        self.load_seconds = 0.0
        self.start_seconds = 0.0
        self.port = 0
        self.url = ""
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @classmethod
    def bdii(
        cls,
        ldif: str | os.PathLike[str] | bytes | None = None,
        suffixes: Sequence[str] = ("o=grid",),
        schemas: Sequence[str | os.PathLike[str]] = GLUE_SCHEMAS,
        start_timeout: float = START_TIMEOUT,
        stats_logging: bool = False,
    ) -> Slapd:
        """A slapd configured as a production BDII's: ``BDII_SETTINGS``, and ``BDII_INDEXES`` per database.

        ``stats_logging`` leaves out ``loglevel 0``, so slapd logs at its default level, as the
        bench used to run it (to measure what that costs).
        """
        settings = [line for line in BDII_SETTINGS if not (stats_logging and line.startswith("loglevel "))]
        return cls(
            ldif,
            suffixes,
            schemas,
            index_object_class=False,
            suffix_indexes={
                suffix: [f"{attribute} {kinds}" for attribute, kinds in BDII_INDEXES.get(suffix.lower(), (("objectClass", "eq,pres"),))]
                for suffix in suffixes
            },
            settings=settings,
            start_timeout=start_timeout,
        )

    @classmethod
    def replica_of(cls, provider_url: str, suffix: str = "o=grid", *, rid: str = "001") -> Slapd:
        """A slapd replicating ``suffix`` of a gridinfo server as a ``syncrepl`` refreshAndPersist
        consumer, configured as docs/change-streams.md says: gridinfo's schema files in place of
        Debian's Glue-MDS, the entryUUID/entryCSN index the consumer looks every entry up by, and
        ``dbnosync`` as BDII runs its slapd."""
        schemas = [*[p for p in GLUE_SCHEMAS if p.name != "Glue-MDS.schema"],
                   *(GRIDINFO_SCHEMA_DIR / name for name in ("mds.schema", "gridinfo.schema", "gridinfo-vm.schema"))]
        lines = [
            f'rootdn "cn=replicator,{suffix}"',
            "dbnosync",
            "index entryUUID,entryCSN eq",
            f'syncrepl rid={rid} provider={provider_url} type=refreshAndPersist searchbase="{suffix}" scope=sub '
            'retry="1 +" schemachecking=off',
        ]
        return cls(None, suffixes=[suffix], schemas=schemas, database_lines={suffix: lines})

    @classmethod
    def syncprov(
        cls,
        ldif: str | os.PathLike[str] | bytes | None = None,
        *,
        sessionlog: int = 0,
        suffix: str = "o=grid",
        schemas: Sequence[str | os.PathLike[str]] = GLUE_SCHEMAS,
    ) -> Slapd:
        """A slapd whose ``suffix`` database carries the syncprov overlay (an RFC 4533 provider).

        Writable by ``SYNCPROV_ROOT_DN`` / ``SYNCPROV_PASSWORD``.  With ``sessionlog`` slapd
        remembers that many recent deletes and answers a cookie with a delete phase; without, it
        answers with a present phase (syncIdSets of the unchanged entries).
        """
        lines = [
            f'rootdn "{SYNCPROV_ROOT_DN}"',
            f"rootpw {SYNCPROV_PASSWORD}",
            "index entryCSN,entryUUID eq",
            "overlay syncprov",
            "syncprov-checkpoint 1 1",
        ]
        if sessionlog:
            lines.append(f"syncprov-sessionlog {sessionlog}")
        return cls(ldif, suffixes=[suffix], schemas=schemas, settings=["moduleload syncprov"], database_lines={suffix: lines})

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Slapd:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the config, load the data, start slapd and wait until it answers."""
        self.dir = Path(tempfile.mkdtemp(prefix="gridinfo-slapd-"))
        try:
            self._write_config()
            self._load()
            self._launch()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop slapd (TERM, then KILL after 10 s) and remove the directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- figures ---------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise SlapdError("slapd is not running")
        return self._proc.pid

    def rss_bytes(self) -> int:
        """Resident memory of the slapd process (VmRSS)."""
        return process_rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds used by slapd so far."""
        return process_cpu_seconds(self.pid)

    # -- internals -------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "slapd.conf"

    def _db_dir(self, index: int) -> Path:
        assert self.dir is not None
        return self.dir / f"db{index}"

    def _write_config(self) -> None:
        assert self.dir is not None
        lines = [f"include {path}" for path in self.schemas]
        lines += [
            f"pidfile {self.dir / 'slapd.pid'}",
            f"modulepath {MODULE_PATH}",
            "moduleload back_mdb",
            "sizelimit unlimited",
            "timelimit unlimited",
            *self.settings,
            "",
        ]
        for index, suffix in enumerate(self.suffixes):
            self._db_dir(index).mkdir()
            lines += [
                "database mdb",
                "maxsize 2147483648",
                f'suffix "{suffix}"',
                f"directory {self._db_dir(index)}",
            ]
            if self.index_object_class:
                lines.append("index objectClass eq")
            lines += [f"index {spec}" for spec in self.extra_indexes + self.suffix_indexes.get(suffix.lower(), [])]
            lines += self.database_lines.get(suffix.lower(), [])
            lines += ["access to * by * read", ""]
        self.config_path.write_text("\n".join(lines))

    def _ldif_bytes(self) -> bytes:
        if self.ldif is None:
            return b""
        if isinstance(self.ldif, bytes):
            return self.ldif
        return Path(self.ldif).read_bytes()

    def _load(self) -> None:
        """Run slapadd once per database; ``load_seconds`` is the total wall time."""
        assert self.dir is not None
        if self.ldif is None:
            return
        if len(self.suffixes) == 1 and not isinstance(self.ldif, bytes):
            inputs = [(self.suffixes[0], Path(self.ldif))]
        else:
            buckets: dict[str, list[bytes]] = {s: [] for s in self.suffixes}
            normalised = [(_normalise_dn(s), s) for s in self.suffixes]
            for dn, record in _records(self._ldif_bytes()):
                for norm, suffix in normalised:
                    if dn == norm or dn.endswith("," + norm):
                        buckets[suffix].append(record)
                        break
                else:
                    raise SlapdError(f"entry {dn!r} is under none of the suffixes {self.suffixes}")
            inputs = []
            for index, suffix in enumerate(self.suffixes):
                path = self.dir / f"load{index}.ldif"
                path.write_bytes(b"".join(buckets[suffix]))
                inputs.append((suffix, path))
        total = 0.0
        for suffix, path in inputs:
            if path.stat().st_size == 0:
                continue
            started = time.monotonic()
            result = subprocess.run(
                [SLAPADD, "-q", "-f", str(self.config_path), "-b", suffix, "-l", str(path)],
                capture_output=True,
                timeout=SLAPADD_TIMEOUT,
            )
            total += time.monotonic() - started
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).decode(errors="replace")[-2000:]
                raise SlapdError(f"slapadd of {path} into {suffix!r} failed ({result.returncode}):\n{tail}")
        self.load_seconds = total

    def _launch(self, attempts: int = 3) -> None:
        assert self.dir is not None
        self._log = self.dir / "slapd.log"
        for _attempt in range(attempts):
            port = free_port()
            url = f"ldap://{LOOPBACK}:{port}/"
            started = time.monotonic()
            with open(self._log, "wb") as log:
                proc = subprocess.Popen(
                    [SLAPD, "-f", str(self.config_path), "-h", url, "-d", "0"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self._proc = proc
            try:
                wait_for_ldap(LOOPBACK, port, self.start_timeout, alive=lambda: proc.poll() is None)
            except (LoadGenError, TimeoutError) as exc:
                self._proc = None
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
                log_text = self._log.read_text(errors="replace")
                if "Address already in use" in log_text:
                    continue  # someone took the port between free_port() and bind: retry
                raise SlapdError(f"slapd did not start: {exc}\n{log_text[-2000:]}") from exc
            self.start_seconds = time.monotonic() - started
            self.port = port
            self.url = url
            return
        raise SlapdError(f"slapd could not bind a free port in {attempts} attempts")
