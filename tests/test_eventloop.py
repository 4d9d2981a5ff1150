"""The daemons' reactor (gridinfo.eventloop) behaves as Twisted's epoll reactor does.

It is installed per process, so each case runs a small program in a fresh interpreter: real
sockets on loopback, the reactor run until the program stops it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROGRAM = textwrap.dedent(
    """
    import socket, sys
    from gridinfo import eventloop
    loop = eventloop.install()
    from twisted.internet import reactor, protocol
    from twisted.logger import globalLogBeginner, textFileLogObserver
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    print("reactor", type(reactor).__name__, loop is reactor, flush=True)

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            if data.startswith(b"boom"):
                raise RuntimeError("handler failed on purpose")
            self.transport.write(data.upper())

    factory = protocol.ServerFactory.forProtocol(Echo)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1").getHost().port

    def clients():
        bad = socket.create_connection(("127.0.0.1", port))
        good = socket.create_connection(("127.0.0.1", port))
        bad.sendall(b"boom")
        print("bad connection, read after the failure:", bad.recv(10), flush=True)
        good.sendall(b"still served")
        print("good connection:", good.recv(100).decode(), flush=True)
        reactor.callFromThread(reactor.stop)

    reactor.callInThread(clients)
    reactor.run()
    """
)


def test_the_event_loop_serves_and_drops_only_a_connection_whose_handler_fails():
    """The installed reactor is gridinfo's EventLoop; a handler that raises gets its connection
    closed and the error logged with its traceback, while another connection is served on."""
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "reactor EventLoop True" in run.stdout
    assert "bad connection, read after the failure: b''" in run.stdout  # closed by the reactor
    assert "good connection: STILL SERVED" in run.stdout
    assert "RuntimeError: handler failed on purpose" in run.stderr


def test_a_reactor_already_installed_is_kept():
    """install() after the reactor is imported (a test run's, an embedding program's) changes nothing."""
    program = "from twisted.internet import reactor\nfrom gridinfo import eventloop\nprint(eventloop.install(), type(reactor).__name__)"
    run = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["None", "EPollReactor"]
