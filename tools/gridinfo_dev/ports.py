"""Free loopback TCP ports for servers started as subprocesses.

A server we start ourselves (slapd, a ``gris`` process) needs its port number on its command line,
so it cannot listen on port 0 and tell us.  We ask the kernel for an ephemeral port, close the
socket and hand the number over.  Another process may take the port in between; callers that
start a server on it treat "address in use" as a reason to try again with a fresh port.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct free ports (all sockets held until every number is known)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
