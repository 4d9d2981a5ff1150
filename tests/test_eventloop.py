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


ENDINGS = textwrap.dedent(
    """
    import socket, struct, sys
    from gridinfo import eventloop
    loop = eventloop.install()
    from twisted.internet import reactor, protocol, tcp
    print("read here:", eventloop._READ_HERE is tcp.Server, flush=True)
    ended = []

    class Recorder(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(b"got " + data)

        def connectionLost(self, reason):
            ended.append(type(reason.value).__name__)
            if len(ended) == 2:
                reactor.callLater(0, reactor.stop)

    factory = protocol.ServerFactory.forProtocol(Recorder)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1").getHost().port

    def clients():
        clean = socket.create_connection(("127.0.0.1", port))
        clean.sendall(b"one")
        print("clean:", clean.recv(10), flush=True)
        clean.close()
        reset = socket.create_connection(("127.0.0.1", port))
        reset.sendall(b"two")
        print("reset:", reset.recv(10), flush=True)
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        reset.close()

    reactor.callInThread(clients)
    reactor.run()
    print("ended:", " ".join(ended), flush=True)
    """
)


def test_a_connection_read_by_the_event_loop_ends_as_twisted_ends_it():
    """The event loop reads a server connection's requests itself: a peer that closes ends it
    with ConnectionDone, a peer that resets it with ConnectionLost, as Twisted's path does."""
    run = subprocess.run(
        [sys.executable, "-c", ENDINGS], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "read here: True" in run.stdout
    assert "clean: b'got one'" in run.stdout and "reset: b'got two'" in run.stdout
    assert "ended: ConnectionDone ConnectionLost" in run.stdout
