"""A real BDII (Debian's ``bdii`` package: its slapd configuration plus ``bdii-update``) on loopback.

``RealBDII`` runs what a BDII host runs, in a temporary folder, as a resource, site or top BDII:

* slapd with BDII's own slapd configuration and schema (``/usr/share/bdii/bdii-slapd.conf``, or
  ``bdii-top-slapd.conf`` for a top BDII), its pid, args and database paths rewritten into the
  temporary folder, listening on a free loopback port;
* ``bdii-update -d`` with a temporary ``bdii.conf`` naming that port, the GIP folders and a short
  breathe time.

Debian's ``bdii-update`` calls ``ldapadd``, ``ldapmodify``, ``ldapdelete`` and ``ldapsearch`` with
``-h HOST -p PORT`` (and ``-h HOST:PORT`` for the sources it reads), options OpenLDAP 2.5 removed;
the fixture puts small wrappers first on its ``PATH`` that turn them into ``-H ldap://HOST:PORT``
and run the real tools.

A site or top BDII reads its sources (``site-urls.conf`` / ``top-urls.conf`` lines) through an
information provider.  EGI's LDAP provider is not packaged by Debian, so the fixture installs its
own small provider that follows that provider's rules for names: GLUE 1.3 entries are searched
with the ``*Top``/``MDS`` objectClass filter and ``...,mds-vo-name=(local|resource),o=grid``
becomes ``...,mds-vo-name=SITE,o=grid`` at a site (``...,mds-vo-name=SITE,mds-vo-name=local,o=grid``
at the top: the name is ``local`` there); GLUE 2 entries are searched below the source's o=glue base
(``GLUE2GroupID=resource,o=glue`` for a ``resource`` source, ``GLUE2DomainID=SITE,o=glue`` for a
site source) and ``o=glue`` becomes ``GLUE2DomainID=SITE,o=glue`` (``GLUE2GroupID=grid,o=glue`` at the
top); an entry already under the BDII's own name is skipped (the recursion guard).

Waiting is for a real process only: :meth:`RealBDII.wait_for_update` polls slapd (bounded) until
bdii-update has written its ``UpdateStats`` entry, which it does at the end of each cycle.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

from gridinfo_dev.loadgen import LoadGenError, wait_for_ldap
from gridinfo_dev.ports import LOOPBACK, free_port
from gridinfo_dev.slapd import SLAPD

BDII_UPDATE = Path("/usr/sbin/bdii-update")
BDII_SHARE = Path("/usr/share/bdii")
BDII_SCHEMA = Path("/etc/bdii/BDII.schema")
LDAP_TOOLS = ("ldapsearch", "ldapadd", "ldapmodify", "ldapdelete")
START_TIMEOUT = 60.0
UPDATE_TIMEOUT = 120.0

Level = Literal["resource", "site", "top"]


class BDIIError(Exception):
    """The BDII did not start or did not update; the message carries the tail of its logs."""


def bdii_available() -> bool:
    """True if Debian's bdii package (and slapd, ldap-utils) are installed."""
    return (
        os.access(BDII_UPDATE, os.X_OK)
        and (BDII_SHARE / "bdii-slapd.conf").exists()
        and BDII_SCHEMA.exists()
        and os.access(SLAPD, os.X_OK)
        and all(shutil.which(tool) for tool in LDAP_TOOLS)
    )


#: The wrapper put in place of each OpenLDAP tool: ``-h HOST -p PORT`` -> ``-H ldap://HOST:PORT``.
WRAPPER = '''#!{python}
import os, sys
real = {real!r}
args, host, port, i = [], None, None, 1
while i < len(sys.argv):
    a = sys.argv[i]
    if a in ("-h", "-p") and i + 1 < len(sys.argv):
        if a == "-h":
            host = sys.argv[i + 1]
        else:
            port = sys.argv[i + 1]
        i += 2
        continue
    args.append(a)
    i += 1
if host is not None:
    url = "ldap://" + host + (":" + port if port and ":" not in host else "")
    args = ["-H", url] + args
elif port is not None:
    args = ["-H", "ldap://localhost:" + port] + args
os.execv(real, [real] + args)
'''

#: The site/top provider: reads NAME ldap://host:port/base lines and prints the sources' entries
#: renamed as a BDII at this level names them (rules in the module docstring).
SOURCES_PROVIDER = '''#!{python}
import base64, re, subprocess, sys
urls, name, glue2 = sys.argv[1], sys.argv[2], sys.argv[3]
GLUE13_FILTER = ("(|(objectClass=GlueTop)(objectClass=MDS)(objectClass=GlueClusterTop)(objectClass=GlueCETop)"
                 "(objectClass=GlueGeneralTop)(objectClass=GlueSETop)(objectClass=GlueSATop))")

def records(text):
    for raw in text.replace("\\n ", "").split("\\n\\n"):
        lines = [l for l in raw.split("\\n") if l and not l.startswith("#")]
        if lines and lines[0].lower().startswith("dn:"):
            yield lines

def dn_of(line):
    if line.lower().startswith("dn::"):
        return base64.b64decode(line[4:].strip()).decode()
    return line[3:].strip()

def search(host, port, base, *filt):
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", "ldap://%s:%s" % (host, port),
                          "-b", base, *filt], capture_output=True, text=True, timeout=30)
    return out.stdout if out.returncode == 0 else ""

for line in open(urls):
    line = line.split("#", 1)[0].strip()
    m = re.match(r"([-.\\w]+)\\s+ldap://(.+):([0-9]+)/(.+)$", line)
    if not m:
        continue
    host, port, base = m.group(2), m.group(3), m.group(4)
    for lines in records(search(host, port, base, GLUE13_FILTER)):
        dn = re.sub(r",\\s+", ",", dn_of(lines[0]))
        if re.search("mds-vo-name=%s," % re.escape(name), dn, re.I):
            continue
        dn = re.sub(r"mds-vo-name=(local|resource),o=grid\\s*$", "o=grid", dn, flags=re.I)
        dn = re.sub(r"o=grid\\s*$", "mds-vo-name=%s,o=grid" % name, dn, flags=re.I)
        body = lines[1:]
        if name != "local":
            for i, l in enumerate(body):
                if l.lower().startswith("mds-vo-name:"):
                    body[i] = "mds-vo-name: " + name
                    break
        print("dn: " + dn)
        print("\\n".join(body) + "\\n")
    if "o=glue" in base.lower():
        glue_base = base
    else:
        site = re.sub(r",o=grid.*$", "", base, flags=re.I)
        site = re.sub(r"^.*=", "", site)
        glue_base = "GLUE2GroupID=resource,o=glue" if site == "resource" else "GLUE2DomainID=%s,o=glue" % site
    for lines in records(search(host, port, glue_base)):
        dn = re.sub(r",\\s+", ",", dn_of(lines[0]))
        if re.search("GLUE2DomainID=%s," % re.escape(glue2), dn, re.I):
            continue
        into = "GLUE2GroupID=grid,o=glue" if glue2 == "grid" else "GLUE2DomainID=%s,o=glue" % glue2
        dn = re.sub(r"o=glue", into, dn, count=1, flags=re.I)
        print("dn: " + dn)
        print("\\n".join(lines[1:]) + "\\n")
'''


class RealBDII:
    """``with RealBDII(gip) as bdii: bdii.wait_for_update(); ... bdii.url ...``

    ``wrap_ldap_tools=False`` runs bdii-update as Debian ships it, with OpenLDAP's own tools.

    ``gip`` is a folder holding ``ldif/``, ``provider/`` and ``plugin/`` (BDII's layout under
    ``/var/lib/bdii/gip``); without one, empty folders are made, with BDII's ``default.ldif`` in
    ``ldif/``.  ``level`` ``site`` or ``top`` adds the sources provider over ``urls``
    (``(NAME, ldap-url)`` pairs) into the BDII's own provider folder, ``site_name`` naming the site;
    ``static_ldif`` goes into its own ``ldif/`` folder (a site's ``GLUE2DomainID=SITE,o=glue`` entry,
    the parent of what it aggregates under o=glue).
    """

    def __init__(
        self,
        gip: str | os.PathLike[str] | None = None,
        *,
        level: Level = "resource",
        site_name: str = "",
        urls: Sequence[tuple[str, str]] = (),
        breathe_time: float = 1.0,
        read_timeout: int = 60,
        hostname: str = LOOPBACK,
        static_ldif: str = "",
        wrap_ldap_tools: bool = True,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if level == "site" and not site_name:
            raise ValueError("a site BDII needs site_name")
        self.gip = Path(gip) if gip is not None else None
        self.level = level
        self.site_name = site_name
        self.urls = list(urls)
        self.breathe_time = breathe_time
        self.read_timeout = read_timeout
        self.hostname = hostname
        self.static_ldif = static_ldif
        self.wrap_ldap_tools = wrap_ldap_tools
        self.start_timeout = start_timeout
        self.port = 0
        self.dir: Path | None = None
        self._slapd: subprocess.Popen[bytes] | None = None
        self._update_pid: int | None = None

    @property
    def url(self) -> str:
        return f"ldap://{LOOPBACK}:{self.port}"

    def __enter__(self) -> RealBDII:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gridinfo-bdii-"))
        try:
            self._prepare()
            self._start_slapd()
            self._start_update()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop bdii-update (its whole session: it calls setsid) and slapd, remove the folder."""
        pid, self._update_pid = self._update_pid, None
        if pid is not None:
            try:
                group = os.getpgid(pid)  # its session's group: the daemon forked twice after setsid
            except ProcessLookupError:
                group = pid
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.05)
                if not _alive(pid):
                    break
        proc, self._slapd = self._slapd, None
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

    # -- what it holds ----------------------------------------------------------------------

    def search(self, base: str, *args: str) -> str:
        """``ldapsearch -LLL`` against the BDII (unwrapped lines); the LDIF text."""
        out = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.url, "-b", base, *args],
            capture_output=True, text=True, timeout=60,
        )
        if out.returncode not in (0, 32):
            raise BDIIError(f"ldapsearch -b {base} failed ({out.returncode}): {out.stderr[-500:]}")
        return out.stdout

    def update_stats(self) -> dict[str, str]:
        """The attributes of bdii-update's UpdateStats entry (empty before its first cycle ends)."""
        text = self.search("o=infosys", "(objectClass=UpdateStats)")
        stats: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(": ")
            if sep and key != "dn":
                stats[key] = value
        return stats

    def wait_for_update(self, timeout: float = UPDATE_TIMEOUT) -> dict[str, str]:
        """Wait (bounded) until bdii-update finished a cycle: its UpdateStats entry is in slapd."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.update_stats()
            if stats.get("TotalEntries"):
                return stats
            if self._update_pid is None or not _alive(self._update_pid):
                raise BDIIError(f"bdii-update exited before its first update\n{self.logs()}")
            if time.monotonic() > deadline:
                raise BDIIError(f"no UpdateStats within {timeout} s\n{self.logs()}")
            time.sleep(0.2)

    def wait_for_cycle(self, timeout: float = UPDATE_TIMEOUT) -> str:
        """Wait (bounded) until bdii-update ended a cycle (it logs ``Sleeping for N seconds``); its log."""
        assert self.dir is not None
        log = self.dir / "bdii-update.log"
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Sleeping for" in text:
                return text
            if self._update_pid is None or not _alive(self._update_pid):
                raise BDIIError(f"bdii-update exited before the end of its first cycle\n{self.logs()}")
            if time.monotonic() > deadline:
                raise BDIIError(f"bdii-update ended no cycle within {timeout} s\n{self.logs()}")
            time.sleep(0.2)

    def write_errors(self) -> list[str]:
        """The refusals slapd gave bdii-update's writes (``ldap_add: ...`` and the next line), from its log.

        bdii-update's own FailedAdds/FailedModifies/FailedDeletes counters stay 0 with OpenLDAP
        2.5's tools even when slapd refuses entries (they count ``request`` lines of a debug output
        those tools no longer print), so its log is the place to look.
        """
        if self.dir is None or not (self.dir / "bdii-update.log").exists():
            return []
        lines = (self.dir / "bdii-update.log").read_text(errors="replace").splitlines()
        return [line for i, line in enumerate(lines)
                if any(f"{tool}: " in line for tool in ("ldap_add", "ldap_modify", "ldap_delete"))
                or (i > 0 and "ldap_" in lines[i - 1] and "additional info" in line)]

    def logs(self) -> str:
        if self.dir is None:
            return ""
        parts = []
        for name in ("bdii-update.log", "slapd.log"):
            path = self.dir / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    # -- internals ----------------------------------------------------------------------------

    def _prepare(self) -> None:
        assert self.dir is not None
        d = self.dir
        for sub in ("bin", "run", "var/archive", "db/grid", "db/glue", "db/stats"):
            (d / sub).mkdir(parents=True)
        for tool in LDAP_TOOLS if self.wrap_ldap_tools else ():
            real = shutil.which(tool)
            assert real is not None
            wrapper = d / "bin" / tool
            wrapper.write_text(WRAPPER.format(python=sys.executable, real=real))
            wrapper.chmod(0o755)
        if self.gip is not None and self.level == "resource":
            self.folders = {k: self.gip / k for k in ("ldif", "provider", "plugin")}
        else:
            self.folders = {k: d / "gip" / k for k in ("ldif", "provider", "plugin")}
            for folder in self.folders.values():
                folder.mkdir(parents=True)
            shutil.copy(BDII_SHARE / "default.ldif", self.folders["ldif"] / "default.ldif")
            if self.static_ldif:
                (self.folders["ldif"] / "static.ldif").write_text(self.static_ldif)
        if self.level != "resource":
            urls = d / ("top-urls.conf" if self.level == "top" else "site-urls.conf")
            urls.write_text("".join(f"{name} {url}\n" for name, url in self.urls))
            script = d / "sources-provider"
            script.write_text(SOURCES_PROVIDER.format(python=sys.executable))
            script.chmod(0o755)
            name, glue2 = ("local", "grid") if self.level == "top" else (self.site_name, self.site_name)
            provider = self.folders["provider"] / "bdii-sources"
            provider.write_text(f"#!/bin/sh\nexec {script} {urls} {name} {glue2}\n")
            provider.chmod(0o755)
        template = BDII_SHARE / ("bdii-top-slapd.conf" if self.level == "top" else "bdii-slapd.conf")
        text = template.read_text()
        text = text.replace("/run/bdii/db/", f"{d}/run/").replace("/var/lib/bdii/db/", f"{d}/db/")
        (d / "slapd.conf").write_text(text)
        (d / "bdii.conf").write_text(
            "\n".join(
                [
                    f"BDII_LOG_FILE={d}/bdii-update.log",
                    f"BDII_PID_FILE={d}/run/bdii-update.pid",
                    f"BDII_RUN_DIR={d}/run",
                    "BDII_LOG_LEVEL=INFO",
                    f"BDII_LDIF_DIR={self.folders['ldif']}",
                    f"BDII_PROVIDER_DIR={self.folders['provider']}",
                    f"BDII_PLUGIN_DIR={self.folders['plugin']}",
                    "BDII_PORT=0",  # set when slapd has its port
                    f"BDII_HOSTNAME={self.hostname}",
                    f"BDII_BREATHE_TIME={self.breathe_time}",
                    f"BDII_READ_TIMEOUT={self.read_timeout}",
                    "BDII_ARCHIVE_SIZE=0",
                    "BDII_DELETE_DELAY=0",
                    f"BDII_VAR_DIR={d}/var",
                    f"SLAPD_CONF={d}/slapd.conf",
                    "",
                ]
            )
        )

    @property
    def bdii_conf(self) -> Path:
        assert self.dir is not None
        return self.dir / "bdii.conf"

    def _start_slapd(self, attempts: int = 3) -> None:
        assert self.dir is not None
        log_path = self.dir / "slapd.log"
        for _attempt in range(attempts):
            port = free_port()
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [SLAPD, "-f", str(self.dir / "slapd.conf"), "-h", f"ldap://{LOOPBACK}:{port}/", "-d", "0"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )
            self._slapd = proc
            try:
                wait_for_ldap(LOOPBACK, port, self.start_timeout, alive=lambda: proc.poll() is None)
            except (LoadGenError, TimeoutError) as exc:
                self._slapd = None
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
                text = log_path.read_text(errors="replace")
                if "Address already in use" in text:
                    continue
                raise BDIIError(f"BDII's slapd did not start: {exc}\n{text[-2000:]}") from exc
            self.port = port
            conf = self.bdii_conf.read_text().replace("BDII_PORT=0", f"BDII_PORT={port}")
            self.bdii_conf.write_text(conf)
            return
        raise BDIIError(f"BDII's slapd could not bind a free port in {attempts} attempts")

    def _start_update(self) -> None:
        assert self.dir is not None
        env = dict(os.environ, PATH=f"{self.dir / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                   SLAPD_CONF=str(self.dir / "slapd.conf"))
        # -d: daemon mode (the only mode that writes to slapd); it forks, its parent exits at once
        result = subprocess.run([str(BDII_UPDATE), "-c", str(self.bdii_conf), "-d"], env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if result.returncode != 0:
            raise BDIIError(f"bdii-update -d failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
        pid_file = self.dir / "run" / "bdii-update.pid"
        deadline = time.monotonic() + self.start_timeout
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise BDIIError(f"bdii-update wrote no pid file within {self.start_timeout} s\n{self.logs()}")
            time.sleep(0.05)
        self._update_pid = int(pid_file.read_text().strip())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive: bdii-update is not our child, init reaps it
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
