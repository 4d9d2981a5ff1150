"""Change-stream benchmark: how fast a change travels up, how many subscribers one GIIS feeds.

    tools/bench-push [--changes 100] [--subscribers 1000] [--rate 100] [--fanout-seconds 20] [--readers N]
                     [--replica-entries 100000] [--replica-changes 20] [--quick] [--json out.json]

Three phases, each with real processes on loopback (``gris``, ``giis``, OpenLDAP's ``slapd``):

1. **Latency up a hierarchy.**  A GRIS whose provider prints one CE from a data file (ttl 1 s,
   refreshed in the background) -> a site GIIS with the GRIS as a static child -> a top GIIS with
   the site as a static child; both GIISes follow their child's change stream.  Raw-socket
   ``refreshAndPersist`` subscribers at the GRIS and at the top see each of ``--changes`` new values;
   the figures are the time from the value appearing in the GRIS's stream to it appearing in the
   top's (the push path through two GIIS levels), and from writing the data file to the top
   (which adds the wait for the provider's next run: up to its ttl).
2. **Fan-out.**  A GIIS over a GRIS whose provider rewrites ``--rate`` CEs every second
   (``--rate`` changes/s; each tick waits until the GRIS's own stream carries it);
   ``--subscribers`` ``refreshAndPersist`` searches (100 per connection) at the GIIS for
   ``--fanout-seconds``, read by ``--readers`` forked processes that only frame and count.
   Counted per subscriber: notices after its refresh, values skipped (a slow subscriber's changes
   to one DN coalesce) or repeated, whether it was cut off with e-syncRefreshRequired, whether it
   ends with the GRIS's final values; the GIIS's RSS, the GIIS's, GRIS's and readers' CPU-s.
3. **A slapd replica.**  A GIIS over a GRIS serving ``--replica-entries`` generated GLUE 1.3
   entries plus the CE provider; a stock slapd configured as a ``syncrepl`` refreshAndPersist
   consumer of the GIIS.  Measured: the time to the replica's first complete copy, then the lag
   of ``--replica-changes`` CE changes from the GIIS's stream to the replica (polled every 10 ms).

Prints a Markdown table; ``--json`` writes every figure.  Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gridinfo import ber
from gridinfo.ldap import sync
from gridinfo.ldap.client import decode_entry
from gridinfo_dev import gendit, loadgen
from gridinfo_dev.daemon import wait_for, wait_for_listening
from gridinfo_dev.slapd import Slapd

E_SYNC_REFRESH_REQUIRED = 4096

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
DEADLINE = 120.0
CE_DN = "GlueCEUniqueID={name},mds-vo-name=local,o=grid"
FREE = "gluecestatefreecpus"

PROVIDER = """#!/bin/sh
# one GlueCE per line "name free-cpus" of the data file
while read name free; do
  printf 'dn: GlueCEUniqueID=%s,mds-vo-name=local,o=grid\\nobjectClass: GlueCETop\\nobjectClass: GlueCE\\n' "$name"
  printf 'objectClass: GlueCEState\\nGlueCEUniqueID: %s\\nGlueCEStateFreeCPUs: %s\\n\\n' "$name" "$free"
done < "{data}"
"""


def log(message: str) -> None:
    print(f"[bench-push] {message}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------


class Daemon:
    """A ``gris`` or ``giis`` process on a free loopback port."""

    def __init__(self, kind: str, args: Sequence[str], folder: Path):
        self.kind = kind
        self.log_path = folder / f"{kind}-{len(list(folder.glob(f'{kind}-*.log')))}.log"
        out = self.log_path.open("wb")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"gridinfo.cli.{kind}", "--listen", f"tcp:0:interface={LOOPBACK}", *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
        )
        self.port = wait_for_listening(self.log_path, self.proc, DEADLINE)
        loadgen.wait_for_ldap(LOOPBACK, self.port, timeout=DEADLINE, alive=lambda: self.proc.poll() is None)

    @property
    def url(self) -> str:
        return f"ldap://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class CESite:
    """The data file a provider reads (``name free`` per line) and the folder of that provider."""

    def __init__(self, folder: Path, ttl: float = 1.0):
        self.folder = folder
        self.data = folder / "ces.txt"
        providers = folder / "providers"
        providers.mkdir(parents=True)
        script = providers / "ces"
        script.write_text(PROVIDER.format(data=self.data))
        script.chmod(0o755)
        self.config = folder / "gris.yaml"
        self.config.write_text(f"providers: [{providers}]\nglue2_suffix: \"\"\nprovider:\n"
                               f"  ces: {{ttl: {ttl:g}, refresh: background}}\nlimits:\n  max_outstanding_ops: 256\n")

    def set(self, ces: dict[str, int]) -> None:
        tmp = self.data.with_suffix(".tmp")
        tmp.write_text("".join(f"{n} {v}\n" for n, v in ces.items()))
        os.replace(tmp, self.data)


def giis_config(folder: Path, name: str, child_url: str) -> Path:
    path = folder / f"giis-{name}.yaml"
    path.write_text(f"name: {name}\nlimits:\n  max_outstanding_ops: 256\n  stream_buffer_entries: 100000\n"
                    f"children:\n  - url: {child_url}\n    timeout: 30\n")
    return path


# -- subscribers -------------------------------------------------------------------------------


SYNC_RP = sync.controls(sync.control(
    sync.SYNC_REQUEST_OID, ber.sequence([ber.integer(sync.REFRESH_AND_PERSIST, tag=ber.ENUMERATED)]), critical=True))


class Subscribers:
    """``connections`` x ``per_connection`` refreshAndPersist searches over raw sockets, read by one
    thread: per search, the entries after its refresh, and every (DN, free CPUs) value's first sighting."""

    def __init__(self, port: int, base: str, flt: str, connections: int, per_connection: int, *, track: bool = False):
        self.track = track
        self.refreshed: set[tuple[int, int]] = set()
        self.notices: dict[tuple[int, int], int] = {}
        self.raw: dict[tuple[int, int], dict[bytes, tuple[bytes, int]]] = {}  # newest message per DN
        self.first_seen: dict[tuple[str, bytes], float] = {}
        self.lock = threading.Lock()
        self.sel = selectors.DefaultSelector()
        self.buffers: dict[int, bytearray] = {}
        self.socks: list[socket.socket] = []
        for c in range(connections):
            s = socket.create_connection((LOOPBACK, port), timeout=DEADLINE)
            s.sendall(b"".join(loadgen.search_request(i + 1, base, loadgen.SCOPE_SUB, flt, ["GlueCEStateFreeCPUs"],
                                                      controls=SYNC_RP) for i in range(per_connection)))
            s.setblocking(False)
            self.socks.append(s)
            self.buffers[c] = bytearray()
            self.sel.register(s, selectors.EVENT_READ, c)
        self.total = connections * per_connection
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.2):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    self.sel.unregister(sock)
                    continue
                now = time.monotonic()
                buf = self.buffers[key.data]
                buf += data
                pos = 0
                while True:
                    framed = loadgen.next_message(buf, pos)
                    if framed is None:
                        break
                    end, tag, _ = framed
                    self._message(key.data, bytes(buf[pos:end]), tag, now)
                    pos = end
                del buf[:pos]

    def _message(self, conn: int, message: bytes, tag: int, now: float) -> None:
        # kept cheap (one reader thread feeds on a thousand streams): frame, count, keep the
        # newest message per DN; values are decoded only when asked for (everyone_has)
        _, body, end = ber.read_header(message, 0, len(message), "message")
        _, id_pos, id_end = ber.read_header(message, body, end, "messageID")
        search = (conn, int.from_bytes(message[id_pos:id_end], "big"))
        if tag == ber.APP_INTERMEDIATE_RESPONSE:
            self.refreshed.add(search)
            return
        if tag != ber.APP_SEARCH_RESULT_ENTRY:
            return
        _, op_body, _ = ber.read_header(message, id_end, end, "op")
        _, dn_pos, dn_end = ber.read_header(message, op_body, end, "objectName")
        with self.lock:
            if search in self.refreshed:
                self.notices[search] = self.notices.get(search, 0) + 1
            self.raw.setdefault(search, {})[message[dn_pos:dn_end]] = (message, id_end)
        if self.track:
            name, free = _ce_value(message, id_end)
            self.first_seen.setdefault((name, free), now)

    def values(self, search: tuple[int, int]) -> dict[str, bytes]:
        with self.lock:
            held = list(self.raw.get(search, {}).values())
        return dict(_ce_value(m, start) for m, start in held)

    def all_refreshed(self) -> bool:
        return len(self.refreshed) >= self.total

    def everyone_has(self, values: dict[str, bytes]) -> bool:
        with self.lock:
            searches = list(self.raw)
        if len(searches) < self.total:
            return False
        for search in searches:
            seen = self.values(search)
            if any(seen.get(n) != v for n, v in values.items()):
                return False
        return True

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        for s in self.socks:
            s.close()


# -- fan-out readers ---------------------------------------------------------------------------


class _ReaderState:
    """One reader process's searches: per search, refreshed yet, notices after the refresh, the newest
    free-CPUs value per DN, values skipped (a change it never saw) or repeated, how the search ended."""

    def __init__(self, total: int):
        self.refreshed = [False] * total
        self.notices = [0] * total
        self.skipped = [0] * total
        self.repeated = [0] * total
        self.ended: list[int | None] = [None] * total
        self.last: list[dict[bytes, int]] = [{} for _ in range(total)]

    def entry(self, search: int, message: bytes | bytearray, pos: int, end: int) -> None:
        # LDAPMessage op (SearchResultEntry): objectName, attributes { PartialAttribute { type, vals { v } } }
        read = ber.read_header
        _, op_body, op_end = read(message, pos, end, "op")
        _, dn_pos, dn_end = read(message, op_body, op_end, "objectName")
        _, attrs, attrs_end = read(message, dn_end, op_end, "attributes")
        value = -1
        if attrs < attrs_end:
            _, attr, attr_end = read(message, attrs, attrs_end, "attribute")
            _, _, type_end = read(message, attr, attr_end, "type")
            _, vals, vals_end = read(message, type_end, attr_end, "vals")
            if vals < vals_end:
                _, v_pos, v_end = read(message, vals, vals_end, "value")
                value = int(message[v_pos:v_end])
        dn = bytes(message[dn_pos:dn_end])
        last = self.last[search]
        if self.refreshed[search]:
            self.notices[search] += 1
            before = last.get(dn)
            if before is not None:
                if value == before:
                    self.repeated[search] += 1
                elif value != before + 1:
                    self.skipped[search] += max(1, value - before - 1)
        last[dn] = value

    def at(self, value: int, names: int) -> int:
        """Searches holding ``value`` for each of ``names`` DNs."""
        return sum(1 for held in self.last if len(held) == names and all(v == value for v in held.values()))


def _reader_main(pipe: Any, port: int, base: str, flt: str, connections: int, per: int) -> None:
    """A fan-out reader process: ``connections`` x ``per`` refreshAndPersist searches, one selector,
    framing and counting only; answers ``("status", value, names)`` and ``("report",)`` on ``pipe``."""
    state = _ReaderState(connections * per)
    sel = selectors.DefaultSelector()
    socks = []
    buffers = []
    for c in range(connections):
        s = socket.create_connection((LOOPBACK, port), timeout=DEADLINE)
        s.sendall(b"".join(loadgen.search_request(i + 1, base, loadgen.SCOPE_SUB, flt, ["GlueCEStateFreeCPUs"],
                                                  controls=SYNC_RP) for i in range(per)))
        s.setblocking(False)
        socks.append(s)
        buffers.append(bytearray())
        sel.register(s, selectors.EVENT_READ, c)
    sel.register(pipe, selectors.EVENT_READ, -1)
    read = ber.read_header
    while True:
        for key, _ in sel.select(timeout=1.0):
            c = key.data
            if c < 0:
                command = pipe.recv()
                if command[0] == "status":
                    pipe.send((sum(state.refreshed), state.at(command[1], command[2])))
                    continue
                pipe.send({"notices": state.notices, "skipped": state.skipped, "repeated": state.repeated,
                           "ended": state.ended})
                for s in socks:
                    s.close()
                return
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(sock)
                continue
            buf = buffers[c]
            buf += data
            pos = 0
            while True:
                framed = loadgen.next_message(buf, pos)
                if framed is None:
                    break
                end, tag, code = framed
                _, body, _ = read(buf, pos, end, "message")
                _, id_pos, id_end = read(buf, body, end, "messageID")
                search = c * per + int.from_bytes(buf[id_pos:id_end], "big") - 1
                if tag == ber.APP_SEARCH_RESULT_ENTRY:
                    state.entry(search, buf, id_end, end)
                elif tag == ber.APP_INTERMEDIATE_RESPONSE:
                    state.refreshed[search] = True
                elif tag == ber.APP_SEARCH_RESULT_DONE:
                    state.ended[search] = code
                pos = end
            del buf[:pos]


class Readers:
    """``subscribers`` refreshAndPersist searches (``per`` per connection) at one server, spread over
    ``processes`` forked reader processes (started before any thread of this one)."""

    def __init__(self, port: int, base: str, flt: str, subscribers: int, per: int, processes: int):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        connections = max(1, subscribers // per)
        processes = max(1, min(processes, connections))
        self.total = connections * per
        self.pipes = []
        self.procs = []
        for r in range(processes):
            share = connections // processes + (1 if r < connections % processes else 0)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_reader_main, args=(child, port, base, flt, share, per), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def status(self, value: int = -1, names: int = 0) -> tuple[int, int]:
        """(searches refreshed, searches holding ``value`` for all ``names`` DNs)."""
        for pipe in self.pipes:
            pipe.send(("status", value, names))
        answers = [pipe.recv() for pipe in self.pipes]
        return sum(a[0] for a in answers), sum(a[1] for a in answers)

    def cpu_seconds(self) -> float:
        return sum(loadgen.process_cpu_seconds(p.pid) for p in self.procs if p.pid is not None)

    def report(self) -> dict[str, list[Any]]:
        for pipe in self.pipes:
            pipe.send(("report",))
        merged: dict[str, list[Any]] = {}
        for pipe in self.pipes:
            for key, values in pipe.recv().items():
                merged.setdefault(key, []).extend(values)
        for proc in self.procs:
            proc.join(timeout=10)
        return merged

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join()


def _ce_value(message: bytes, op_start: int) -> tuple[str, bytes]:
    """(CE name, free CPUs) of a SearchResultEntry message whose op starts at ``op_start``."""
    _, _, op_end = ber.read_header(message, op_start, len(message), "op")
    dn, attrs = decode_entry(message[op_start:op_end])
    values = {k.lower(): v for k, v in attrs}
    return dn.split(",", 1)[0].split("=", 1)[1], values.get(FREE, [b""])[0]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def cpu_rss(pid: int) -> tuple[float, int]:
    return loadgen.process_cpu_seconds(pid), loadgen.process_rss_bytes(pid)


# -- phases ------------------------------------------------------------------------------------


def phase_latency(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    site = CESite(folder / "latency")
    site.set({"ce1": 1000})
    daemons: list[Daemon] = []
    try:
        gris = Daemon("gris", ["--config", str(site.config)], folder)
        daemons.append(gris)
        mid = Daemon("giis", ["--config", str(giis_config(folder, "site", f"{gris.url}/mds-vo-name=local,o=grid"))], folder)
        daemons.append(mid)
        top = Daemon("giis", ["--config", str(giis_config(folder, "top", f"{mid.url}/mds-vo-name=site,o=grid"))], folder)
        daemons.append(top)
        at_gris = Subscribers(gris.port, "o=grid", "(objectClass=GlueCE)", 1, 1, track=True)
        at_top = Subscribers(top.port, "mds-vo-name=top,o=grid", "(objectClass=GlueCE)", 1, 1, track=True)
        wait_for("both subscribers refreshed with the CE", lambda: at_gris.all_refreshed() and at_top.all_refreshed()
                 and at_top.everyone_has({"ce1": b"1000"}), DEADLINE)
        push, end_to_end = [], []
        for i in range(1, args.changes + 1):
            value = str(1000 + i).encode()
            written = time.monotonic()
            site.set({"ce1": 1000 + i})
            wait_for(f"change {i} at the top", lambda: ("ce1", value) in at_top.first_seen, DEADLINE, interval=0.005)
            seen_gris = at_gris.first_seen.get(("ce1", value))
            seen_top = at_top.first_seen[("ce1", value)]
            if seen_gris is not None:
                push.append(seen_top - seen_gris)
            end_to_end.append(seen_top - written)
        at_gris.close()
        at_top.close()
        return {
            "changes": args.changes,
            "push_p50_ms": percentile(push, 0.5) * 1000, "push_p99_ms": percentile(push, 0.99) * 1000,
            "push_max_ms": max(push) * 1000,
            "write_to_top_p50_ms": percentile(end_to_end, 0.5) * 1000,
            "write_to_top_p99_ms": percentile(end_to_end, 0.99) * 1000,
        }
    finally:
        for d in reversed(daemons):
            d.stop()


def phase_fanout(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    site = CESite(folder / "fanout")
    names = [f"ce{i:04d}" for i in range(args.rate)]
    site.set({n: 0 for n in names})
    daemons: list[Daemon] = []
    readers: Readers | None = None
    try:
        gris = Daemon("gris", ["--config", str(site.config)], folder)
        daemons.append(gris)
        giis = Daemon("giis", ["--config", str(giis_config(folder, "site", f"{gris.url}/mds-vo-name=local,o=grid"))], folder)
        daemons.append(giis)
        wait_for("the CEs at the GIIS", lambda: _count(giis.port, "mds-vo-name=site,o=grid") == args.rate, DEADLINE)
        per = min(100, args.subscribers)
        # forked before this process starts a thread (the GRIS's own stream below)
        readers = Readers(giis.port, "mds-vo-name=site,o=grid", "(objectClass=GlueCE)", args.subscribers, per, args.readers)
        source = Subscribers(gris.port, "o=grid", "(objectClass=GlueCE)", 1, 1)
        wait_for(f"{readers.total} subscribers refreshed with the first values",
                 lambda: readers.status(0, len(names)) == (readers.total, readers.total) and source.all_refreshed(),
                 DEADLINE, interval=0.2)
        load0 = os.getloadavg()
        cpu0, rss0 = cpu_rss(giis.proc.pid)
        gris_cpu0, reader_cpu0 = loadgen.process_cpu_seconds(gris.proc.pid), readers.cpu_seconds()
        started = time.monotonic()
        tick = 0
        while time.monotonic() - started < args.fanout_seconds:
            tick += 1
            site.set({n: tick for n in names})
            # the provider runs once a second: wait for this run to carry the tick (so every tick is
            # one change per CE in the GRIS's stream), then for the next second
            values = {n: str(tick).encode() for n in names}
            wait_for(f"tick {tick} in the GRIS's stream", lambda: source.everyone_has(values), DEADLINE, interval=0.02)
            time.sleep(max(0.0, started + tick - time.monotonic()))
        produced_at = time.monotonic()
        converged = True
        try:
            wait_for("every subscriber with the final values",
                     lambda: readers.status(tick, len(names))[1] == readers.total, DEADLINE, interval=0.2)
        except TimeoutError:
            converged = False
        elapsed = time.monotonic() - started
        cpu1, rss1 = cpu_rss(giis.proc.pid)
        gris_cpu1, reader_cpu1 = loadgen.process_cpu_seconds(gris.proc.pid), readers.cpu_seconds()
        load1 = os.getloadavg()
        produced = sum(source.notices.values())
        source.close()
        counts = readers.report()
        readers.close()
        notices = counts["notices"]
        every = sum(1 for n, s, r in zip(notices, counts["skipped"], counts["repeated"])
                    if n == produced and s == 0 and r == 0)
        ordered = sorted(notices)
        ended = [code for code in counts["ended"] if code is not None]
        return {
            "subscribers": readers.total, "readers": len(readers.procs), "rate_per_s": args.rate,
            "ticks": tick, "seconds_producing": round(produced_at - started, 1), "seconds": round(elapsed, 1),
            "changes_at_gris": produced,
            "subscribers_saw_every_change": every,
            "notices_min": ordered[0], "notices_median": ordered[len(ordered) // 2], "notices_max": ordered[-1],
            "changes_skipped_total": sum(counts["skipped"]), "notices_repeated_total": sum(counts["repeated"]),
            "subscribers_cut_off_refresh_required": sum(1 for code in ended if code == E_SYNC_REFRESH_REQUIRED),
            "subscribers_ended_otherwise": sum(1 for code in ended if code != E_SYNC_REFRESH_REQUIRED),
            "every_subscriber_converged": converged,
            "giis_cpu_s": round(cpu1 - cpu0, 2), "giis_cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 1),
            "gris_cpu_s": round(gris_cpu1 - gris_cpu0, 2),
            "reader_cpu_s": round(reader_cpu1 - reader_cpu0, 2),
            "reader_cpu_percent": round(100 * (reader_cpu1 - reader_cpu0) / elapsed, 1),
            "giis_rss_mib_before": round(rss0 / 2**20, 1), "giis_rss_mib_after": round(rss1 / 2**20, 1),
            "load_1min_before": load0[0], "load_1min_after": load1[0],
        }
    finally:
        if readers is not None:
            readers.close()
        for d in reversed(daemons):
            d.stop()


def _count(port: int, base: str, flt: str = "(objectClass=GlueCE)") -> int:
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", f"ldap://{LOOPBACK}:{port}", "-b", base, flt, "1.1"],
                         capture_output=True, text=True, timeout=120)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("dn:"))


def phase_replica(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    site = CESite(folder / "replica")
    site.set({"ce1": 5000})
    ldif = folder / "replica" / "tree.ldif"
    gendit.write_ldif(ldif, args.replica_entries)
    daemons: list[Daemon] = []
    try:
        gris = Daemon("gris", ["--config", str(site.config), "--ldif", str(ldif)], folder)
        daemons.append(gris)
        giis = Daemon("giis", ["--config", str(giis_config(folder, "site", f"{gris.url}/mds-vo-name=local,o=grid"))], folder)
        daemons.append(giis)
        expected = args.replica_entries + 1  # the generated tree (its o=grid and suffix land on the GIIS's) + ce1
        wait_for("the GIIS holding the tree", lambda: _count(giis.port, "o=grid", "(objectClass=*)") >= expected, 600)
        held = _count(giis.port, "o=grid", "(objectClass=*)")
        at_giis = Subscribers(giis.port, "o=grid", "(objectClass=GlueCE)", 1, 1, track=True)
        started = time.monotonic()
        with Slapd.replica_of(giis.url) as replica:
            wait_for("the replica's first complete copy", lambda: _count(replica.port, "o=grid", "(objectClass=*)") >= held, 900, interval=1.0)
            first_copy = time.monotonic() - started
            wait_for("the GIIS subscriber refreshed", at_giis.all_refreshed, DEADLINE)
            lags = []
            for i in range(1, args.replica_changes + 1):
                value = str(5000 + i).encode()
                site.set({"ce1": 5000 + i})
                wait_for(f"change {i} in the GIIS's stream", lambda: ("ce1", value) in at_giis.first_seen, DEADLINE, interval=0.005)
                seen = at_giis.first_seen[("ce1", value)]
                wait_for(f"change {i} at the replica", lambda: _replica_value(replica.port) == value, DEADLINE, interval=0.01)
                lags.append(time.monotonic() - seen)
        at_giis.close()
        return {
            "entries": held, "first_copy_s": round(first_copy, 2),
            "lag_p50_ms": percentile(lags, 0.5) * 1000, "lag_p99_ms": percentile(lags, 0.99) * 1000,
            "changes": len(lags),
        }
    finally:
        for d in reversed(daemons):
            d.stop()


def _replica_value(port: int) -> bytes:
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", f"ldap://{LOOPBACK}:{port}", "-s", "base", "-b",
                          "GlueCEUniqueID=ce1,mds-vo-name=site,o=grid", "GlueCEStateFreeCPUs"],
                         capture_output=True, text=True, timeout=30)
    for line in out.stdout.splitlines():
        if line.startswith("GlueCEStateFreeCPUs: "):
            return line.split(": ", 1)[1].encode()
    return b""


# -- report ------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    rows = ["| phase | figure | value |", "|---|---|--:|"]
    for phase, figures in results.items():
        if phase == "arguments" or not isinstance(figures, dict):
            continue
        for key, value in figures.items():
            shown = f"{value:.1f}" if isinstance(value, float) else str(value)
            rows.append(f"| {phase} | {key} | {shown} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench-push", description=__doc__.split("\n\n")[0])
    p.add_argument("--changes", type=int, default=100, help="changes timed up the hierarchy (phase 1)")
    p.add_argument("--subscribers", type=int, default=1000, help="refreshAndPersist subscribers on one GIIS (phase 2)")
    p.add_argument("--rate", type=int, default=100, help="changes per second in phase 2 (CEs rewritten each second)")
    p.add_argument("--fanout-seconds", type=float, default=20.0)
    p.add_argument("--readers", type=int, default=os.cpu_count() or 1,
                   help="processes reading the fan-out subscribers (phase 2; default: one per CPU)")
    p.add_argument("--replica-entries", type=int, default=100_000, help="entries a slapd replica copies (phase 3)")
    p.add_argument("--replica-changes", type=int, default=20)
    p.add_argument("--phases", default="latency,fanout,replica")
    p.add_argument("--quick", action="store_true", help="a smoke run at a tiny size")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.changes, args.subscribers, args.rate, args.fanout_seconds = 3, 20, 5, 3.0
        args.replica_entries, args.replica_changes = 300, 2
    folder = Path(tempfile.mkdtemp(prefix="bench-push-"))
    results: dict[str, Any] = {"arguments": vars(args) | {"json": str(args.json) if args.json else None}}
    phases: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
        "latency": phase_latency, "fanout": phase_fanout, "replica": phase_replica}
    for name in args.phases.split(","):
        log(f"phase {name}")
        results[name] = phases[name](args, folder)
        log(json.dumps(results[name]))
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0
