"""An LDAP search load generator that is not itself the bottleneck.

Theory of operation
-------------------
Every request is encoded to BER once, before the clock starts.  Worker processes (one per
connection group, so the load is not limited by one Python interpreter) each hold a few
connections with exactly one outstanding request per connection, as a real client would.  A
worker reads responses by looking only at the BER framing -- the outer SEQUENCE length, the
message id and the protocol-op tag -- counting SearchResultEntry (0x64) messages until the
SearchResultDone (0x65), whose result code it checks; then it sends the next pre-encoded request
on that connection.  Nothing is decoded beyond that.

The parent process connects all workers first, reads the server's CPU time from
``/proc/PID/stat``, releases the workers together, and reads the CPU time again when they have
all reported, so a run yields operations per second and operations per server CPU-second.

Everything is bounded: connect and readiness timeouts, a fixed run duration, a maximum message
size, and a hard deadline for collecting worker results.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import resource
import selectors
import socket
import statistics
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gridinfo import ber
from gridinfo.errors import ProtocolError

SCOPE_BASE = 0
SCOPE_ONE = 1
SCOPE_SUB = 2
DEREF_NEVER = 0

RESULT_SUCCESS = 0
RESULT_SIZE_LIMIT_EXCEEDED = 4

#: Responses larger than this are treated as a broken server rather than buffered forever.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class LoadGenError(Exception):
    """The load could not be run (server unreachable, a worker failed, a broken response)."""


# ---------------------------------------------------------------------------------------------
# Request encoding


def _filter_item(text: str) -> bytes:
    """Encode one simple filter item ``attr=value``, ``attr>=v``, ``attr<=v`` or ``attr=*``."""
    for op, tag in ((">=", ber.FILTER_GREATER_OR_EQUAL), ("<=", ber.FILTER_LESS_OR_EQUAL), ("~=", ber.FILTER_APPROX)):
        if op in text:
            attr, value = text.split(op, 1)
            return ber.tlv(tag, ber.octet_string(attr.encode()) + ber.octet_string(value.encode()))
    if "=" not in text:
        raise ValueError(f"not a filter item: {text!r}")
    attr, value = text.split("=", 1)
    if value == "*":
        return ber.tlv(ber.FILTER_PRESENT, attr.encode())
    if "*" in value:
        raise ValueError(f"substring filters are not supported by the load generator: {text!r}")
    return ber.tlv(ber.FILTER_EQUALITY, ber.octet_string(attr.encode()) + ber.octet_string(value.encode()))


def encode_filter(text: str) -> bytes:
    """Encode an RFC 4515 filter string (no substrings, no escapes) to BER.

    Enough for benchmark filters such as ``(&(objectClass=GlueCE)(GlueCEStateFreeCPUs>=1200))``.
    """
    encoded, end = _parse_filter(text.strip(), 0)
    if end != len(text.strip()):
        raise ValueError(f"trailing text in filter {text!r}")
    return encoded


def _parse_filter(text: str, pos: int) -> tuple[bytes, int]:
    if pos >= len(text) or text[pos] != "(":
        raise ValueError(f"filter {text!r}: expected '(' at {pos}")
    pos += 1
    kind = text[pos] if pos < len(text) else ""
    if kind in "&|":
        pos += 1
        parts: list[bytes] = []
        while pos < len(text) and text[pos] == "(":
            part, pos = _parse_filter(text, pos)
            parts.append(part)
        encoded = ber.tlv(ber.FILTER_AND if kind == "&" else ber.FILTER_OR, b"".join(parts))
    elif kind == "!":
        part, pos = _parse_filter(text, pos + 1)
        encoded = ber.tlv(ber.FILTER_NOT, part)
    else:
        end = text.find(")", pos)
        if end < 0:
            raise ValueError(f"filter {text!r}: unclosed item")
        encoded, pos = _filter_item(text[pos:end]), end
    if pos >= len(text) or text[pos] != ")":
        raise ValueError(f"filter {text!r}: expected ')' at {pos}")
    return encoded, pos + 1


def search_request(
    message_id: int,
    base: str,
    scope: int,
    filter_text: str = "(objectClass=*)",
    attributes: Sequence[str] = (),
    size_limit: int = 0,
    time_limit: int = 0,
    types_only: bool = False,
    controls: bytes = b"",
) -> bytes:
    """Encode a complete LDAPMessage carrying a SearchRequest (``controls``: an encoded [0] Controls)."""
    op = ber.tlv(
        ber.APP_SEARCH_REQUEST,
        ber.octet_string(base.encode("utf-8"))
        + ber.integer(scope, ber.ENUMERATED)
        + ber.integer(DEREF_NEVER, ber.ENUMERATED)
        + ber.integer(size_limit)
        + ber.integer(time_limit)
        + ber.tlv(ber.BOOLEAN, b"\xff" if types_only else b"\x00")
        + encode_filter(filter_text)
        + ber.sequence(ber.octet_string(a.encode()) for a in attributes),
    )
    return ber.ldap_message(message_id, op, controls)


def unbind_request(message_id: int) -> bytes:
    """Encode an UnbindRequest ([APPLICATION 2] NULL)."""
    return ber.ldap_message(message_id, bytes((ber.APP_UNBIND_REQUEST, 0)))


# ---------------------------------------------------------------------------------------------
# Response framing


#: Result-shaped ops whose LDAPResult code next_message reads.
_RESULT_OPS = frozenset(
    (ber.APP_SEARCH_RESULT_DONE, ber.APP_BIND_RESPONSE, ber.APP_DEL_RESPONSE, ber.APP_COMPARE_RESPONSE, ber.APP_EXTENDED_RESPONSE)
)


def next_message(buf: bytes | bytearray, pos: int) -> tuple[int, int, int] | None:
    """Frame one LDAPMessage starting at ``pos``.

    Returns ``(end, op_tag, result_code)`` where ``result_code`` is the LDAPResult code for
    result-shaped ops (-1 for others), or None when the buffer does not yet hold the message.
    """
    try:
        header = ber.read_pdu_header(buf, pos, len(buf))
        if header is None:
            return None
        head, length = header
        if length > MAX_MESSAGE_BYTES:
            raise LoadGenError(f"response of {length} bytes exceeds {MAX_MESSAGE_BYTES}")
        body = pos + head
        end = body + length
        if end > len(buf):
            return None
        # messageID INTEGER: tag, short length, value
        if buf[body] != ber.INTEGER:
            raise LoadGenError("LDAPMessage without messageID")
        op_pos = body + 2 + buf[body + 1]
        op_tag = buf[op_pos]
        code = -1
        if op_tag in _RESULT_OPS:
            _, enum_pos, _ = ber.read_header(buf, op_pos, end, "protocolOp")
            if buf[enum_pos] == ber.ENUMERATED and buf[enum_pos + 1] == 1:
                code = buf[enum_pos + 2]
    except ProtocolError as e:
        raise LoadGenError(e.message) from None
    return end, op_tag, code


# ---------------------------------------------------------------------------------------------
# Readiness and process figures


def ldap_ping(host: str, port: int, timeout: float = 2.0) -> bool:
    """Return True if an LDAP server at host:port answers an anonymous root DSE search."""
    request = search_request(1, "", SCOPE_BASE, "(objectClass=*)", ["1.1"])
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            buf = bytearray()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                buf += chunk
                pos = 0
                while (framed := next_message(buf, pos)) is not None:
                    pos, op_tag, _code = framed
                    if op_tag == ber.APP_SEARCH_RESULT_DONE:
                        return True
    except (OSError, LoadGenError):
        return False


def wait_for_ldap(
    host: str,
    port: int,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    poll_interval: float = 0.02,
) -> float:
    """Poll until the server answers a root DSE search; return the seconds it took.

    ``alive`` (e.g. ``lambda: proc.poll() is None``) lets the caller stop early when the server
    process has died.  Raises TimeoutError or LoadGenError.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if alive is not None and not alive():
            raise LoadGenError(f"server process for {host}:{port} exited before answering")
        if ldap_ping(host, port, timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no LDAP answer from {host}:{port} within {timeout} s")
        time.sleep(poll_interval)


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by process ``pid`` (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def process_rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (VmRSS from /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LoadGenError(f"no VmRSS for pid {pid}")


# ---------------------------------------------------------------------------------------------
# The load run


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    name: str
    connections: int
    processes: int
    duration_s: float
    ops: int
    ops_per_s: float
    entries: int
    mean_entries_per_op: float
    errors: int
    latency_p50_ms: float
    latency_p99_ms: float
    client_cpu_s: float
    server_cpu_s: float | None
    ops_per_server_cpu_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Connection:
    sock: socket.socket
    buf: bytearray
    sent_at: float = 0.0
    entries: int = 0


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(
    index: int,
    host: str,
    port: int,
    requests: Sequence[bytes],
    n_connections: int,
    duration: float,
    seed: int,
    go: Any,
    reports: Any,
) -> None:
    """Body of one worker process: connect, wait for the start signal, run, report."""
    try:
        rng = random.Random(seed * 1000 + index)
        selector = selectors.DefaultSelector()
        conns: list[_Connection] = []
        for _ in range(n_connections):
            sock = socket.create_connection((host, port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, bytearray())
            conns.append(conn)
            selector.register(sock, selectors.EVENT_READ, conn)
        reports.put(("ready", index, None))
        if not go.wait(60):
            raise LoadGenError("start signal never came")

        latencies = array("d")
        ops = entries = errors = 0
        cpu_start = _cpu_now()
        start = time.monotonic()
        deadline = start + duration
        n_requests = len(requests)
        for conn in conns:
            conn.sent_at = time.monotonic()
            conn.sock.sendall(requests[rng.randrange(n_requests)])
        open_connections = len(conns)
        while open_connections:
            now = time.monotonic()
            if now >= deadline:
                break
            for key, _mask in selector.select(timeout=min(1.0, deadline - now)):
                conn = key.data
                chunk = conn.sock.recv(262144)
                if not chunk:
                    errors += 1
                    selector.unregister(conn.sock)
                    open_connections -= 1
                    continue
                buf = conn.buf
                buf += chunk
                pos = 0
                while (framed := next_message(buf, pos)) is not None:
                    pos, op_tag, code = framed
                    if op_tag == ber.APP_SEARCH_RESULT_ENTRY:
                        conn.entries += 1
                    elif op_tag == ber.APP_SEARCH_RESULT_DONE:
                        done_at = time.monotonic()
                        if code not in (RESULT_SUCCESS, RESULT_SIZE_LIMIT_EXCEEDED):
                            errors += 1
                        ops += 1
                        entries += conn.entries
                        conn.entries = 0
                        latencies.append(done_at - conn.sent_at)
                        if done_at < deadline:
                            conn.sent_at = done_at
                            conn.sock.sendall(requests[rng.randrange(n_requests)])
                if pos:
                    del buf[:pos]
        elapsed = min(time.monotonic(), deadline) - start
        cpu = _cpu_now() - cpu_start
        for conn in conns:
            conn.sock.close()
        selector.close()
        reports.put(
            ("result", index, {"ops": ops, "entries": entries, "errors": errors, "elapsed": elapsed,
                               "cpu": cpu, "latencies": latencies.tobytes()})
        )
    except BaseException as exc:  # reported to the parent, which raises
        reports.put(("error", index, f"{type(exc).__name__}: {exc}"))


def _percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _next_report(reports: Any, deadline: float, what: str) -> tuple[str, int, Any]:
    try:
        report: tuple[str, int, Any] = reports.get(timeout=max(0.1, deadline - time.monotonic()))
    except queue.Empty:
        raise LoadGenError(f"load generator workers did not {what} in time") from None
    return report


def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    name: str = "load",
    duration: float = 5.0,
    connections: int = 8,
    processes: int | None = None,
    server_pid: int | None = None,
    seed: int = 1,
    setup_timeout: float = 30.0,
) -> LoadResult:
    """Drive ``requests`` (pre-encoded LDAPMessages, chosen at random) against host:port.

    ``connections`` are spread over ``processes`` worker processes (default: one per CPU, at
    most one per connection).  With ``server_pid`` the server's CPU time over the run is
    measured too.
    """
    if not requests:
        raise ValueError("no requests to send")
    if processes is None:
        processes = os.cpu_count() or 1
    processes = max(1, min(processes, connections))
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    reports = ctx.Queue()
    shares = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    workers = [
        ctx.Process(
            target=_worker,
            args=(i, host, port, requests, shares[i], duration, seed, go, reports),
            daemon=True,
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        ready = 0
        deadline = time.monotonic() + setup_timeout
        while ready < processes:
            kind, index, payload = _next_report(reports, deadline, "connect")
            if kind == "error":
                raise LoadGenError(f"worker {index}: {payload}")
            ready += 1
        cpu_before = process_cpu_seconds(server_pid) if server_pid else None
        go.set()
        results: list[dict[str, Any]] = []
        deadline = time.monotonic() + duration + setup_timeout
        while len(results) < processes:
            kind, index, payload = _next_report(reports, deadline, "report results")
            if kind == "error":
                raise LoadGenError(f"worker {index}: {payload}")
            if kind == "result":
                results.append(payload)
        cpu_after = process_cpu_seconds(server_pid) if server_pid else None
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
        reports.close()

    ops = sum(r["ops"] for r in results)
    entries = sum(r["entries"] for r in results)
    elapsed = max(r["elapsed"] for r in results) or duration
    latencies = array("d")
    for r in results:
        latencies.frombytes(r["latencies"])
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return LoadResult(
        name=name,
        connections=connections,
        processes=processes,
        duration_s=round(elapsed, 3),
        ops=ops,
        ops_per_s=ops / elapsed,
        entries=entries,
        mean_entries_per_op=entries / ops if ops else 0.0,
        errors=sum(r["errors"] for r in results),
        latency_p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        latency_p99_ms=_percentile(latencies, 0.99) * 1000,
        client_cpu_s=sum(r["cpu"] for r in results),
        server_cpu_s=server_cpu,
        ops_per_server_cpu_s=(ops / server_cpu) if server_cpu else None,
    )
