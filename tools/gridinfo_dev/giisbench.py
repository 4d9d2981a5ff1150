"""GIIS scale benchmark: one ``giis`` process with hundreds or thousands of registered children.

    tools/bench-giis [--children 100,1000] [--entries-per-child 5] [--json FILE] ...

Theory of operation
-------------------
Children are cheap: a few *child-host processes* (``python -m gridinfo_dev.giisbench
children ...``) each serve many tiny GRIS-like trees, one per loopback port, with gridinfo's own
:class:`~gridinfo.ldap.server.LDAPServerFactory` over a :class:`~gridinfo.gris.backend.TreeBackend`.
Every tree is ``o=grid``, ``mds-vo-name=local,o=grid`` and ``--entries-per-child`` GlueCE entries
with names unique across the whole run, so a subtree search at the GIIS merges exactly
``children x entries`` GlueCE entries.  Each child registers itself with the GIIS by MDS2's LDAP
add (:func:`gridinfo.ldap.registrar.registration_message`), on its own connection kept open
afterwards, as gridinfo's registrar does.

A child-host process is driven by lines on its stdin and answers with one JSON line on stdout::

    (start)       -> {"ready": [ports...]}          listening, nothing registered yet
    register      -> {"registered": ok, ...}        every add answered (or failed)
    stats         -> {"searches": n}                searches its children have answered so far
    quit          -> (exits)

The driver (:func:`main`) starts the GIIS as a real ``giis`` process, then the child hosts, and
measures, per children count, with every wait bounded:

1. registration: from the first add sent (reported by the child hosts, CLOCK_MONOTONIC is
   system-wide) until a poll of ``-s base giisregistrationstatus`` lists every child VALID;
2. a cold subtree search ``-b mds-vo-name=<giis>,o=grid (objectClass=GlueCE)`` (the first: the
   GIIS connects to every child and asks it), warm searches (answered from the per-child cache
   within cachettl; median of several), and searches after cachettl has run out with the
   connections open (every child asked again);
3. the GIIS's VmRSS and open file descriptors after each phase, and the CPU seconds of the GIIS
   and of the child hosts in each phase (so a reader can tell who was the bottleneck);
4. how many searches the children answered in each phase (warm must be 0, cold and refetch N).

Searches are sent by a small blocking client that frames responses by BER tag and length (as
:mod:`gridinfo_dev.loadgen`), one connection per search, like ``ldapsearch``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridinfo_dev import loadgen
from gridinfo import ber

LOOPBACK = "127.0.0.1"
CHILD_SUFFIX = "mds-vo-name=local,o=grid"
GIIS_NAME = "bench"
SCOPE_BASE = loadgen.SCOPE_BASE
SCOPE_SUB = loadgen.SCOPE_SUB

TOOLS = Path(__file__).resolve().parents[1]  # tools/, which holds this package
REPO = TOOLS.parent


def log(message: str) -> None:
    sys.stderr.write(f"[bench-giis {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class BenchError(Exception):
    """The benchmark could not go on (a process died, a wait ran out, a wrong answer)."""


# ---------------------------------------------------------------------------------------------
# What a child publishes


def child_entries(index: int, count: int) -> list[tuple[str, list[tuple[str, list[bytes]]]]]:
    """``count`` GlueCE entries of child number ``index``, named uniquely across children."""
    out = []
    host = f"ce.child{index:05d}.example.org"
    for j in range(count):
        ce_id = f"{host}:8443/cream-pbs-q{j}"
        free = (index * 7 + j * 13) % 500
        running = (index * 3 + j * 5) % 300
        out.append((
            f"GlueCEUniqueID={ce_id},{CHILD_SUFFIX}",
            [
                ("objectClass", [b"GlueCETop", b"GlueCE", b"GlueCEInfo", b"GlueCEState", b"GlueKey",
                                 b"GlueSchemaVersion"]),
                ("GlueCEUniqueID", [ce_id.encode()]),
                ("GlueCEName", [f"q{j}".encode()]),
                ("GlueCEInfoHostName", [host.encode()]),
                ("GlueCEInfoGatekeeperPort", [b"8443"]),
                ("GlueCEInfoLRMSType", [b"pbs"]),
                ("GlueCEInfoTotalCPUs", [str(free + running).encode()]),
                ("GlueCEInfoContactString", [f"https://{host}:8443/ce-cream/services".encode()]),
                ("GlueCEStateStatus", [b"Production"]),
                ("GlueCEStateRunningJobs", [str(running).encode()]),
                ("GlueCEStateWaitingJobs", [str(j).encode()]),
                ("GlueCEStateFreeCPUs", [str(free).encode()]),
                ("GlueForeignKey", [f"GlueClusterUniqueID={host}".encode()]),
                ("GlueSchemaVersionMajor", [b"1"]),
                ("GlueSchemaVersionMinor", [b"3"]),
            ],
        ))
    return out


def raise_nofile(limit: int | None = None) -> tuple[int, int]:
    """Set this process's soft open-file limit to ``limit`` (default: the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if limit is None else (min(limit, hard) if hard != resource.RLIM_INFINITY else limit)
    if want != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ---------------------------------------------------------------------------------------------
# The child-host process


def listen(reactor: Any, factory: Any, port: int) -> int:
    """Listen on ``port`` on loopback, or on any free port when it is taken; the bound port."""
    from twisted.internet.error import CannotListenError

    try:
        return int(reactor.listenTCP(port, factory, interface=LOOPBACK).getHost().port)
    except CannotListenError:
        return int(reactor.listenTCP(0, factory, interface=LOOPBACK).getHost().port)


def serve_children(argv: list[str]) -> int:
    """Entry point of a child-host process (see the module docstring for its stdin protocol)."""
    p = argparse.ArgumentParser(prog="giisbench children")
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--entries", type=int, default=5)
    p.add_argument("--giis-port", type=int, required=True)
    p.add_argument("--giis-suffix", required=True)
    p.add_argument("--ttl", type=float, default=3600)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--registration-connections", choices=["keep", "close"], default="keep",
                   help="keep each child's registration connection open (gridinfo's registrar) or close it "
                        "when answered (MDS2's grid-info-soft-register, one ldapadd per renewal)")
    p.add_argument("--cachettl", type=float, default=20)
    p.add_argument("--concurrency", type=int, default=16, help="registrations in flight at once")
    p.add_argument("--port-base", type=int, default=0, help="child N listens on port-base + N (0: any free port)")
    p.add_argument("--close-after-register", action="store_true", help="close each registration connection when answered")
    args = p.parse_args(argv)
    raise_nofile()

    from gridinfo import eventloop

    eventloop.install()  # the reactor a gris runs on (gridinfo.cli.common.run_daemon)
    from twisted.internet import defer, reactor, stdio
    from twisted.protocols.basic import LineReceiver

    import gridinfo
    from gridinfo.directory.schema import default_schema
    from gridinfo.directory.tree import DirectoryTree
    from gridinfo.ldap.registrar import registration_message
    from gridinfo.gris.backend import TreeBackend, add_base_entries
    from gridinfo.ldap.client import LDAPClient
    from gridinfo.ldap.server import LDAPServerFactory, ServerLimits

    schema = default_schema()
    counter = {"searches": 0}
    per_child: dict[int, int] = {}

    class CountingBackend(TreeBackend):
        index = 0

        def search(self, request: Any) -> Any:
            counter["searches"] += 1
            per_child[self.index] = per_child.get(self.index, 0) + 1
            return super().search(request)

    ports: list[int] = []
    for index in range(args.first, args.first + args.count):
        tree = DirectoryTree(schema, indexed=("objectClass",))
        add_base_entries(tree, CHILD_SUFFIX)
        for dn, attrs in child_entries(index, args.entries):
            tree.add(tree.build(dn, attrs, source="bench"))
        backend = CountingBackend(tree)
        backend.index = index
        factory = LDAPServerFactory(
            backend, reactor=reactor, limits=ServerLimits(), vendor_version=f"gridinfo {gridinfo.__version__}"
        )
        ports.append(listen(reactor, factory, args.port_base + index if args.port_base else 0))

    clients: list[Any] = []

    def register_all() -> defer.Deferred[dict[str, Any]]:
        sem = defer.DeferredSemaphore(max(1, args.concurrency))
        first_sent: list[float] = []
        last_answer = [0.0]
        failures: list[str] = []

        def one(port: int) -> defer.Deferred[None]:
            client = LDAPClient(reactor, LOOPBACK, args.giis_port, connect_timeout=args.timeout)
            clients.append(client)
            attrs = registration_message(
                host=LOOPBACK, port=port, suffix=CHILD_SUFFIX, now=reactor.seconds(), ttl=args.ttl,
                timeout=args.timeout, cachettl=args.cachettl,
            )
            if not first_sent:
                first_sent.append(time.monotonic())
            d = client.add(f"Mds-Vo-Op-name=register,{args.giis_suffix}", attrs, timeout=args.timeout)

            def answered(result: Any) -> None:
                last_answer[0] = time.monotonic()
                if result.code != 0:
                    failures.append(f"{port}: {result.code} {result.message}")
                if args.close_after_register:
                    client.close()

            def failed(f: Any) -> None:
                last_answer[0] = time.monotonic()
                failures.append(f"{port}: {f.getErrorMessage()}")
                if args.close_after_register:
                    client.close()

            return d.addCallbacks(answered, failed)

        d = defer.gatherResults([sem.run(one, port) for port in ports])
        return d.addCallback(lambda _: {
            "registered": len(ports) - len(failures),
            "failures": failures[:20],
            "failed": len(failures),
            "first_sent": first_sent[0] if first_sent else None,
            "last_answer": last_answer[0],
        })

    class Control(LineReceiver):
        delimiter = b"\n"

        def say(self, obj: dict[str, Any]) -> None:
            self.sendLine(json.dumps(obj).encode())

        def connectionMade(self) -> None:
            self.say({"ready": ports})

        def lineReceived(self, line: bytes) -> None:
            command = line.strip().decode()
            if command == "register":
                register_all().addCallback(self.say)
            elif command == "stats":
                self.say({"searches": counter["searches"], "per_child": dict(per_child)})
            elif command == "quit":
                for c in clients:
                    c.close()
                reactor.callLater(0.1, reactor.stop)
            else:
                self.say({"error": f"unknown command {command!r}"})

        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:
                reactor.stop()

    stdio.StandardIO(Control())
    reactor.run()
    return 0


# ---------------------------------------------------------------------------------------------
# A blocking LDAP search client for the driver


@dataclass
class Answer:
    seconds: float
    code: int
    entries: list[bytes] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU this (Python) client spent receiving and framing the answer (framing mostly after ``seconds``)
    count: int = 0  # SearchResultEntry messages (kept in ``entries`` only when asked to)


#: messageID 1 (the only request on a bench connection) followed by the SearchResultDone tag:
#: where the answer's last message starts (entries have 0x64 there)
_DONE_MARK = bytes((ber.INTEGER, 1, 1, ber.APP_SEARCH_RESULT_DONE))


def search(
    port: int, base: str, scope: int, filter_text: str, attributes: list[str], timeout: float, *, keep: bool = True
) -> Answer:
    """One search on a fresh connection; every SearchResultEntry op is kept (bytes) if ``keep``,
    else only counted.

    ``seconds`` is the time until the whole answer has arrived, not until this Python client has
    framed it: with 5,000 entries per answer framing them here cost ~6 ms of client CPU, more
    than the GIIS spent, so a search timed that way measured this client.  The bytes are taken
    in as they come and searched (at C speed) for the SearchResultDone's start; when it is
    there the clock is read, and only then is everything framed, which checks that it really is
    the Done (a value could hold those four bytes) and that the Done is complete.  ``cpu_s``
    still counts the framing."""
    request = loadgen.search_request(1, base, scope, filter_text, attributes)
    started = time.monotonic()
    cpu = time.process_time()
    deadline = started + timeout
    entries: list[bytes] = []
    count = 0
    entry_tag, done_tag = ber.APP_SEARCH_RESULT_ENTRY, ber.APP_SEARCH_RESULT_DONE
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(request)
        buf = bytearray()
        pos = 0  # where the next message to frame starts
        scanned = 0  # the mark was looked for up to here
        marked = False  # a SearchResultDone may have begun: frame what has arrived
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no complete answer within {timeout:g} s")
            sock.settimeout(left)
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise BenchError("the GIIS closed the connection before SearchResultDone")
            buf += chunk
            if not marked:
                found = buf.find(_DONE_MARK, max(pos, scanned - len(_DONE_MARK) + 1))
                scanned = len(buf)
                if found < 0:
                    continue
                marked = True
            arrived = time.monotonic()
            size = len(buf)
            while pos + 2 <= size:
                first = buf[pos + 1]
                if first < 0x80:
                    body, length = pos + 2, first
                else:
                    k = first & 0x7F
                    if pos + 2 + k > size:
                        break
                    body, length = pos + 2 + k, int.from_bytes(buf[pos + 2 : pos + 2 + k], "big")
                end = body + length
                if end > size:
                    break
                op = body + 2 + buf[body + 1]  # past the messageID (INTEGER, short length)
                tag = buf[op]
                if tag == entry_tag:
                    count += 1
                    if keep:
                        entries.append(bytes(buf[op:end]))
                elif tag == done_tag:
                    framed = loadgen.next_message(buf, pos)  # the result code
                    sock.sendall(loadgen.unbind_request(2))
                    code = framed[2] if framed is not None else -1
                    return Answer(arrived - started, code, entries, time.process_time() - cpu, count)
                pos = end
            # framed all there is without reaching a complete Done: the mark was in a value, or
            # the Done is still arriving; look for the mark again past what is framed
            marked = buf.find(_DONE_MARK, pos) >= 0
            scanned = len(buf)


def registration_status(port: int, suffix: str, timeout: float) -> tuple[Answer, int, int]:
    """(the answer, how many registrants are VALID, how many the GIIS follows by push) of
    ``-s base giisregistrationstatus``."""
    from gridinfo.ldap.client import decode_entry

    answer = search(port, suffix, SCOPE_BASE, "(objectClass=*)", ["giisregistrationstatus"], timeout)
    valid = pushed = 0
    for op in answer.entries:
        _, attrs = decode_entry(op)
        for name, values in attrs:
            low = name.lower()
            if low == "mds-reg-status" and values == [b"VALID"]:
                valid += 1
            elif low == "gridinfochildmode" and values == [b"push"]:
                pushed += 1
    return answer, valid, pushed


# ---------------------------------------------------------------------------------------------
# Processes


def python_command() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def child_env() -> dict[str, str]:
    """The environment of the GIIS and child-host processes: gridinfo and gridinfo_dev importable."""
    path = [str(REPO), str(TOOLS), os.environ.get("PYTHONPATH")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))


class ChildHost:
    """One child-host process and its JSON-lines control channel."""

    def __init__(self, first: int, count: int, args: argparse.Namespace, giis_port: int, log_dir: Path):
        self.first, self.count = first, count
        self.log_path = log_dir / f"children-{first}.log"
        command = [
            python_command(), "-m", "gridinfo_dev.giisbench", "children",
            "--first", str(first), "--count", str(count), "--entries", str(args.entries_per_child),
            "--giis-port", str(giis_port), "--giis-suffix", f"mds-vo-name={GIIS_NAME},o=grid",
            "--timeout", str(args.child_timeout), "--cachettl", str(args.cachettl),
            "--concurrency", str(args.register_concurrency), "--port-base", str(args.port_base),
        ] + (["--close-after-register"] if args.registration_connections == "close" else [])
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         cwd=REPO, env=child_env())
        self._buf = b""
        self.ports: list[int] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, deadline: float) -> dict[str, Any]:
        """The next JSON line, waiting at most until ``deadline`` (time.monotonic)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"child host {self.first}: no answer in time (log: {self.log_path})")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise BenchError(f"child host {self.first} exited\n{tail}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def process_nofile(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"{soft}/{hard}"
    return "?"


# ---------------------------------------------------------------------------------------------
# One run


class Phase:
    """CPU seconds of the GIIS and of the child hosts over a phase, and searches children served."""

    def __init__(self, giis_pid: int, hosts: list[ChildHost], *, profile: bool = False):
        """``profile``: signal the GIIS (run under gridinfo_dev.phaseprof) at the start and end,
        so the phase gets a cProfile of its own."""
        self.giis_pid, self.hosts = giis_pid, hosts
        self.profile = profile
        if profile:
            os.kill(giis_pid, signal.SIGUSR1)
        self.started = time.monotonic()
        self.giis_cpu = loadgen.process_cpu_seconds(giis_pid)
        self.host_cpu = [loadgen.process_cpu_seconds(h.pid) for h in hosts]

    def end(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        if self.profile:
            os.kill(self.giis_pid, signal.SIGUSR1)
            self.profile = False
        per_host = [loadgen.process_cpu_seconds(h.pid) - c for h, c in zip(self.hosts, self.host_cpu)]
        return {
            "wall_s": wall,
            "giis_cpu_s": loadgen.process_cpu_seconds(self.giis_pid) - self.giis_cpu,
            "children_cpu_s": sum(per_host),
            "children_cpu_max_process_s": max(per_host) if per_host else 0.0,
        }


def child_searches(hosts: list[ChildHost], timeout: float) -> dict[int, int]:
    """Searches answered so far, per child number."""
    deadline = time.monotonic() + timeout
    for h in hosts:
        h.send("stats")
    out: dict[int, int] = {}
    for h in hosts:
        out.update({int(k): v for k, v in h.read(deadline)["per_child"].items()})
    return out


def searches_since(hosts: list[ChildHost], before: dict[int, int], timeout: float) -> dict[str, int]:
    """Searches the children answered since ``before``: in all, how many children, most by one."""
    now = child_searches(hosts, timeout)
    delta = [v - before.get(k, 0) for k, v in now.items()]
    delta = [d for d in delta if d]
    return {"child_searches": sum(delta), "children_asked": len(delta), "max_per_child": max(delta, default=0)}


def run_one(n: int, args: argparse.Namespace, log_dir: Path, result: dict[str, Any], mode: str = "pull") -> dict[str, Any]:
    """Measure one children count; figures go into ``result`` as they are taken (kept on failure).

    ``mode`` pull: the GIIS runs with ``push: false`` and asks its children per search (cold: asks
    every child; warm: from its per-child cache).  push: the GIIS follows each child's change
    stream (the children advertise RFC 4533 sync, as a GRIS does), so once every child is in push
    mode a search is answered from the GIIS's own tree; registration also waits for that."""
    from gridinfo_dev.ports import free_port

    push = mode == "push"
    suffix = f"mds-vo-name={GIIS_NAME},o=grid"
    port = args.port_base - 1 if args.port_base and port_is_free(args.port_base - 1) else free_port()
    giis_log = log_dir / f"giis-{n}-{mode}.log"
    # --giis-profile: one cProfile per phase (gridinfo_dev.phaseprof), toggled by SIGUSR1 (Phase)
    profiling = bool(args.giis_profile)
    profile = [] if not profiling else ["-m", "gridinfo_dev.phaseprof", f"{args.giis_profile}.{n}.{mode}"]
    command = [python_command(), *profile, "-m", "gridinfo.cli.giis", "--name", GIIS_NAME,
               "--listen", f"tcp:{port}:interface={LOOPBACK}"]
    if args.giis_config:
        command += ["--config", args.giis_config]
    else:
        # Every child registers from 127.0.0.1, so the per-address connection limit (meant for
        # one hostile client) would throttle the registration burst: lift it for the bench.
        # Forwarding is what this bench measures: children that offer a change stream would be
        # followed (held, never asked per search) unless push is off.
        config = log_dir / f"giis-{n}-{mode}.yaml"
        config.write_text(f"push: {'true' if push else 'false'}\nlimits:\n  max_connections_per_address: 0\n")
        command += ["--config", str(config)]
    log(f"{n} children: {' '.join(command)} (log: {giis_log})")
    with open(giis_log, "wb") as out:
        giis = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env=child_env())
    if args.giis_nofile:  # before it has opened anything much
        hard = resource.prlimit(giis.pid, resource.RLIMIT_NOFILE)[1]
        resource.prlimit(giis.pid, resource.RLIMIT_NOFILE, (min(args.giis_nofile, hard), hard))
    hosts: list[ChildHost] = []
    result.update({"children": n, "mode": mode, "entries_per_child": args.entries_per_child,
                   "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]})
    try:
        loadgen.wait_for_ldap(LOOPBACK, port, args.start_timeout, alive=lambda: giis.poll() is None, poll_interval=0.05)
        result["giis_nofile"] = process_nofile(giis.pid)
        processes = max(1, min(args.child_processes, n))
        per = -(-n // processes)
        started = time.monotonic()
        for first in range(0, n, per):
            hosts.append(ChildHost(first, min(per, n - first), args, port, log_dir))
        deadline = time.monotonic() + args.start_timeout
        for h in hosts:
            h.ports = h.read(deadline)["ready"]
        log(f"  {len(hosts)} child hosts serving {n} children in {time.monotonic() - started:.1f} s")
        result["child_processes"] = len(hosts)
        result["children_nofile"] = process_nofile(hosts[0].pid)
        result["rss_before_registration_bytes"] = loadgen.process_rss_bytes(giis.pid)

        # -- registration --
        phase = Phase(giis.pid, hosts, profile=profiling)
        for h in hosts:
            h.send("register")
        sent_at = time.monotonic()
        deadline = sent_at + args.register_timeout
        polls = 0
        visible_at = None
        pushed_at = None
        status_answer = None
        valid = pushed = 0
        refused_polls = 0
        while time.monotonic() < deadline:
            polls += 1
            try:
                status_answer, valid, pushed = registration_status(port, suffix, args.search_timeout)
            except (BenchError, OSError) as e:  # e.g. the GIIS refusing connections at max_connections
                refused_polls += 1
                result["status_poll_error"] = str(e)
                time.sleep(args.poll_interval)
                continue
            if valid >= n and visible_at is None:
                visible_at = time.monotonic()
            if pushed >= n and pushed_at is None:
                pushed_at = time.monotonic()
            if visible_at is not None and (pushed_at is not None or not push):
                break
            time.sleep(args.poll_interval)
        reg = phase.end()
        report_deadline = max(deadline, time.monotonic()) + args.child_timeout + 10  # adds time out by then
        reports = [h.read(report_deadline) for h in hosts]
        first_sent = min(r["first_sent"] for r in reports if r["first_sent"] is not None)
        failed = sum(r["failed"] for r in reports)
        result["registration"] = {
            **reg,
            "registered_ok": sum(r["registered"] for r in reports),
            "failed": failed,
            "failures": [f for r in reports for f in r["failures"]][:10],
            "adds_answered_s": max(r["last_answer"] for r in reports) - first_sent,
            "visible_s": None if visible_at is None else visible_at - first_sent,
            "push_s": None if pushed_at is None else pushed_at - first_sent,
            "pushed_in_status": pushed,
            "status_polls": polls,
            "status_polls_refused": refused_polls,
            "valid_in_status": valid,
            "status_search_ms": status_answer.seconds * 1000 if status_answer else None,
            "status_entries": len(status_answer.entries) if status_answer else 0,
        }
        log(f"  registration: {valid}/{n} VALID, {failed} failed, visible after "
            f"{result['registration']['visible_s']} s")
        if visible_at is None:
            raise BenchError(f"only {valid} of {n} registrations visible within {args.register_timeout:g} s")
        if push and pushed_at is None:
            raise BenchError(f"only {pushed} of {n} children in push mode within {args.register_timeout:g} s")
        if push:
            log(f"  push: all {n} children followed by push after {result['registration']['push_s']:.2f} s")

        # -- registration status, settled (nothing registering) --
        if args.status_runs:
            phase = Phase(giis.pid, hosts, profile=profiling)
            runs = [registration_status(port, suffix, args.search_timeout)[0] for _ in range(args.status_runs)]
            ms = [a.seconds * 1000 for a in runs]
            result["status"] = {**phase.end(), "runs": len(runs), "median_ms": statistics.median(ms),
                                "client_cpu_per_search_s": statistics.median(a.cpu_s for a in runs),
                                "min_ms": min(ms), "max_ms": max(ms), "entries": len(runs[-1].entries)}
            result["status"]["giis_cpu_per_search_s"] = result["status"]["giis_cpu_s"] / len(runs)
            log(f"  giisregistrationstatus: median {result['status']['median_ms']:.1f} ms over {len(runs)} runs")
        result["rss_after_registration_bytes"] = loadgen.process_rss_bytes(giis.pid)
        result["fds_after_registration"] = open_fds(giis.pid)

        # -- cold search --
        flt = args.filter
        expected = n * args.entries_per_child
        before = child_searches(hosts, args.start_timeout)
        phase = Phase(giis.pid, hosts, profile=profiling)
        cold = search(port, suffix, SCOPE_SUB, flt, [], args.search_timeout, keep=False)
        cold_done = time.monotonic()
        if cold.count != expected:
            result["incomplete"] = f"the cold search returned {cold.count} of {expected} entries"
        result["cold"] = {**phase.end(), "ms": cold.seconds * 1000, "code": cold.code, "entries": cold.count,
                          "client_cpu_s": cold.cpu_s,
                          **searches_since(hosts, before, args.start_timeout)}
        log(f"  cold: {cold.seconds * 1000:.0f} ms, {cold.count} entries (expected {expected}), code {cold.code}")
        result["rss_after_cold_bytes"] = loadgen.process_rss_bytes(giis.pid)
        result["fds_after_cold"] = open_fds(giis.pid)

        # -- warm searches --
        before = child_searches(hosts, args.start_timeout)
        phase = Phase(giis.pid, hosts, profile=profiling)
        warm = [search(port, suffix, SCOPE_SUB, flt, [], args.search_timeout, keep=False) for _ in range(args.warm_runs)]
        warm_ms = [a.seconds * 1000 for a in warm]
        result["warm"] = {**phase.end(), "runs": len(warm), "median_ms": statistics.median(warm_ms),
                          "min_ms": min(warm_ms), "max_ms": max(warm_ms),
                          "client_cpu_per_search_s": statistics.median(a.cpu_s for a in warm),
                          "entries": warm[-1].count, "codes": sorted({a.code for a in warm}),
                          **searches_since(hosts, before, args.start_timeout)}
        if time.monotonic() - cold_done > args.cachettl:
            result["warm"]["note"] = "the warm runs outlasted cachettl: some were not warm"
        log(f"  warm: median {result['warm']['median_ms']:.1f} ms over {len(warm)} runs, "
            f"{result['warm']['child_searches']} child searches")
        result["rss_after_warm_bytes"] = loadgen.process_rss_bytes(giis.pid)

        # -- cache expired, connections open --
        if args.refetch_runs and not push:  # push: nothing is cached per child
            refetch: list[Answer] = []
            before = child_searches(hosts, args.start_timeout)
            cpu = Phase(giis.pid, hosts)
            cpu_used = {"giis_cpu_s": 0.0, "children_cpu_s": 0.0}
            last = cold_done
            for i in range(args.refetch_runs):
                wait = last + args.cachettl + 1.0 - time.monotonic()
                if wait > 0:
                    log(f"  waiting {wait:.0f} s for cachettl to run out")
                    time.sleep(wait)
                cpu = Phase(giis.pid, hosts)
                a = search(port, suffix, SCOPE_SUB, flt, [], args.search_timeout, keep=False)
                last = time.monotonic()
                used = cpu.end()
                cpu_used["giis_cpu_s"] += used["giis_cpu_s"]
                cpu_used["children_cpu_s"] += used["children_cpu_s"]
                refetch.append(a)
            ms = [a.seconds * 1000 for a in refetch]
            result["refetch"] = {"runs": len(refetch), "median_ms": statistics.median(ms), "ms": ms,
                                 "entries": refetch[-1].count, "codes": sorted({a.code for a in refetch}),
                                 "giis_cpu_s": cpu_used["giis_cpu_s"] / len(refetch),
                                 "children_cpu_s": cpu_used["children_cpu_s"] / len(refetch),
                                 **searches_since(hosts, before, args.start_timeout)}
            log(f"  after cachettl: median {result['refetch']['median_ms']:.0f} ms")
            result["rss_after_refetch_bytes"] = loadgen.process_rss_bytes(giis.pid)
        result["fds_at_end"] = open_fds(giis.pid)
        return result
    finally:
        text = giis_log.read_text(errors="replace") if giis_log.exists() else ""
        warnings = [line for line in text.splitlines() if "#warn]" in line or "#error]" in line or "#critical]" in line]
        result["giis_log_warnings"] = len(warnings)
        result["giis_log_first_warnings"] = warnings[:5]
        for h in hosts:
            h.stop()
        if giis.poll() is None:
            giis.send_signal(signal.SIGTERM)
            try:
                giis.wait(timeout=15)
            except subprocess.TimeoutExpired:
                giis.kill()
                giis.wait(timeout=15)


# ---------------------------------------------------------------------------------------------
# Report


def _get(figures: dict[str, Any], *keys: str) -> Any:
    value: Any = figures
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


MiB = 1 / 2**20
ROWS: list[tuple[str, tuple[str, ...], float, int]] = [
    ("registration: first add sent -> all VALID in `giisregistrationstatus`, s", ("registration", "visible_s"), 1, 2),
    ("registration: first add sent -> last add answered, s", ("registration", "adds_answered_s"), 1, 2),
    ("registration: failed adds", ("registration", "failed"), 1, 0),
    ("registration: GIIS CPU-s / child-host CPU-s", ("registration", "giis_cpu_s", "children_cpu_s"), 1, 2),
    ("registration: first add sent -> every child followed by push, s", ("registration", "push_s"), 1, 2),
    ("`-s base giisregistrationstatus` at the end of registration, ms", ("registration", "status_search_ms"), 1, 1),
    ("`-s base giisregistrationstatus` settled, median, ms", ("status", "median_ms"), 1, 1),
    ("  min / max, ms", ("status", "min_ms", "max_ms"), 1, 1),
    ("  GIIS CPU-s per search", ("status", "giis_cpu_per_search_s"), 1, 4),
    ("  bench client CPU-s per search", ("status", "client_cpu_per_search_s"), 1, 4),
    ("cold subtree search (pull: every child connected and asked; push: first search), ms", ("cold", "ms"), 1, 0),
    ("  entries returned", ("cold", "entries"), 1, 0),
    ("  searches the children answered / children asked", ("cold", "child_searches", "children_asked"), 1, 0),
    ("  GIIS CPU-s / child-host CPU-s", ("cold", "giis_cpu_s", "children_cpu_s"), 1, 2),
    ("warm subtree search (pull: per-child cache; push: own tree), median, ms", ("warm", "median_ms"), 1, 1),
    ("  min / max, ms", ("warm", "min_ms", "max_ms"), 1, 1),
    ("  searches the children answered (all runs)", ("warm", "child_searches"), 1, 0),
    ("  GIIS CPU-s per search", ("warm", "giis_cpu_per_search_s"), 1, 4),
    ("  bench client CPU-s per search (receiving, then framing 5 x children entries once the answer is in)",
     ("warm", "client_cpu_per_search_s"), 1, 4),
    ("search after cachettl (connections open), median, ms", ("refetch", "median_ms"), 1, 0),
    ("  GIIS CPU-s / child-host CPU-s per search", ("refetch", "giis_cpu_s", "children_cpu_s"), 1, 2),
    ("  searches the children answered / children asked (all runs)", ("refetch", "child_searches", "children_asked"), 1, 0),
    ("GIIS VmRSS before registration, MiB", ("rss_before_registration_bytes",), MiB, 1),
    ("GIIS VmRSS after registration, MiB", ("rss_after_registration_bytes",), MiB, 1),
    ("GIIS VmRSS after the cold search, MiB", ("rss_after_cold_bytes",), MiB, 1),
    ("GIIS VmRSS after the warm searches, MiB", ("rss_after_warm_bytes",), MiB, 1),
    ("GIIS VmRSS after the searches past cachettl, MiB", ("rss_after_refetch_bytes",), MiB, 1),
    ("GIIS open fds after registration / after the cold search", ("fds_after_registration", "fds_after_cold"), 1, 0),
    ("GIIS warnings logged", ("giis_log_warnings",), 1, 0),
]


def _cell(result: dict[str, Any], path: tuple[str, ...], scale: float, digits: int) -> str:
    # a path whose last two keys are siblings is shown as "a / b"
    values = [_get(result, *path)]
    if values[0] is None and len(path) >= 2:
        head = path[:-2]
        values = [_get(result, *head, path[-2]), _get(result, *head, path[-1])]
        if any(v is None for v in values):
            values = [_get(result, path[-2]), _get(result, path[-1])]
    if any(v is None for v in values):
        return "-"
    return " / ".join(f"{float(v) * scale:,.{digits}f}" for v in values)


def markdown_table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = "| figure | " + " | ".join(f"{r['children']:,} children, {r.get('mode', 'pull')}" for r in results) + " |"
    lines = [head, "|---|" + "--:|" * len(results)]
    for label, path, scale, digits in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(r, path, scale, digits) for r in results) + " |")
    for r in results:
        if "incomplete" in r:
            lines.append(f"\n{r['children']:,} children ({r.get('mode', 'pull')}): {r['incomplete']}")
        if "error" in r:
            lines.append(f"\n{r['children']:,} children failed: {r['error'].splitlines()[0]}")
        for w in r.get("giis_log_first_warnings", [])[:2]:
            lines.append(f"\n{r['children']:,} children, GIIS log: `{w[:200]}`")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu": model, "cpus": os.cpu_count(), "memory": mem, "platform": platform.platform(),
        "python": platform.python_version(), "nofile_bench": "/".join(map(str, resource.getrlimit(resource.RLIMIT_NOFILE))),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "children":
        return serve_children(argv[1:])
    p = argparse.ArgumentParser(prog="bench-giis", description="GIIS scale: registration, cold and warm search, memory.")
    p.add_argument("--children", default="100,1000", help="comma-separated numbers of registered children")
    p.add_argument("--entries-per-child", type=int, default=5, help="GlueCE entries each child publishes")
    p.add_argument("--child-processes", type=int, default=4, help="processes serving the children")
    p.add_argument("--register-concurrency", type=int, default=16, help="registrations in flight per child process")
    p.add_argument("--registration-connections", choices=["keep", "close"], default="keep",
                   help="keep each child's registration connection open (gridinfo's registrar) or close it "
                        "when answered (MDS2's grid-info-soft-register, one ldapadd per renewal)")
    p.add_argument("--cachettl", type=float, default=20.0, help="Mds-Service-Ldap-cachettl the children register")
    p.add_argument("--child-timeout", type=float, default=30.0, help="Mds-Service-Ldap-timeout the children register")
    p.add_argument("--filter", default="(objectClass=GlueCE)", help="filter of the subtree searches")
    p.add_argument("--warm-runs", type=int, default=10)
    p.add_argument("--status-runs", type=int, default=10,
                   help="`-s base giisregistrationstatus` searches once registration has settled")
    p.add_argument("--modes", default="pull",
                   help="comma-separated: pull (push: false, the GIIS asks its children per search) and/or push "
                        "(the GIIS follows the children's change streams and answers from its tree)")
    p.add_argument("--refetch-runs", type=int, default=2, help="searches after cachettl ran out (each waits for it)")
    p.add_argument("--poll-interval", type=float, default=0.05, help="seconds between registration-status polls")
    p.add_argument("--register-timeout", type=float, default=300.0)
    p.add_argument("--search-timeout", type=float, default=300.0)
    p.add_argument("--start-timeout", type=float, default=120.0)
    p.add_argument("--port-base", type=int, default=20000,
                   help="child N listens on PORT_BASE + N, the GIIS on PORT_BASE - 1: below the kernel's "
                        "ephemeral range, so other programs' free-port picks cannot land on a child (0: any free port)")
    p.add_argument("--giis-config", help="giis.yaml for the GIIS (default: built-in defaults)")
    p.add_argument("--giis-nofile", type=int, help="soft open-file limit of the GIIS process (default: inherited)")
    p.add_argument("--giis-profile", metavar="FILE",
                   help="run the GIIS under cProfile, writing FILE.<children> (figures are then slower)")
    p.add_argument("--json", metavar="FILE", help="also write all figures as JSON")
    p.add_argument("--log-dir", metavar="DIR", help="where the GIIS and child-host logs go (default: a new temporary folder)")
    args = p.parse_args(argv)

    counts = [int(c.replace("_", "")) for c in args.children.split(",") if c.strip()]
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    after = raise_nofile()
    log(f"open-file limit soft/hard: {before[0]}/{before[1]} -> {after[0]}/{after[1]} (inherited by the GIIS and child hosts)")
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="gridinfo-bench-giis-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"environment": environment(), "settings": {
        k: v for k, v in vars(args).items() if k != "json"}, "log_dir": str(log_dir), "runs": []}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("pull", "push") for m in modes):
        p.error("--modes takes pull, push or pull,push")
    results = []
    for n, mode in [(n, m) for m in modes for n in counts]:
        r: dict[str, Any] = {"children": n, "mode": mode}
        try:
            run_one(n, args, log_dir, r, mode)
        except (BenchError, loadgen.LoadGenError, TimeoutError, OSError, subprocess.SubprocessError) as e:
            log(f"{n} children failed: {e}")
            r["error"] = str(e) or type(e).__name__
        if "warm" in r and r["warm"].get("runs"):
            r["warm"]["giis_cpu_per_search_s"] = r["warm"]["giis_cpu_s"] / r["warm"]["runs"]
        results.append(r)
        report["runs"].append(r)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    env = report["environment"]
    sys.stdout.write(markdown_table(results, args) + "\n\n")
    sys.stdout.write(
        f"_{env['cpus']} CPUs ({env['cpu']}), {env['memory']} RAM; Python {env['python']}; {env['platform']}; "
        f"{args.entries_per_child} entries per child, {args.child_processes} child processes, cachettl "
        f"{args.cachettl:g} s; logs in {log_dir}_\n"
    )
    return 0 if all("error" not in r and "incomplete" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
