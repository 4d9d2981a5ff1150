"""The daemons' reactor: Twisted's epoll reactor, handing each ready socket straight to it.

Twisted's ``EPollReactor.doPoll`` runs every socket event inside ``log.callWithLogger``, which
builds a legacy logging context (the "system" prefix of ``twisted.python.log`` messages: a
``logPrefix()`` call, a context dict copied, pushed and popped).  That is about 3 us per event
on the machines of docs/performance.md, a tenth of a whole base lookup.  gridinfo logs through
``twisted.logger`` namespaces, which never read that context, so :class:`EventLoop` leaves it
out and does exactly what Twisted's loop does otherwise: poll, then ``_doReadOrWrite`` per
ready descriptor (which catches and logs a handler's exception and drops that connection).

A TCP connection that is only readable (the usual event of a server: a request came) is read
here, as Twisted's ``tcp.Connection.doRead`` reads it, without that method's three Python
calls (``_doReadOrWrite``, ``doRead``, ``_dataReceived``): the bytes go to the protocol's
``dataReceived``; no bytes (the peer closed) or a failed read disconnect it as Twisted does.
That is done only while ``tcp.Server`` reads with Twisted's own ``doRead`` (a subclass or a
Twisted that changed it goes the usual way), and every other event takes Twisted's path.

It leans on four attributes of Twisted's epoll reactor (``_poller``, ``_selectables``,
``_doReadOrWrite``, ``_disconnectSelectable``); :func:`install` checks for them and installs
Twisted's own reactor when they are missing, so a Twisted that renames them costs the 3 us,
never correctness.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet import tcp
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
from twisted.python import log

try:
    from twisted.internet.epollreactor import EPOLLIN, EPollReactor
except ImportError:  # not Linux: no epoll, Twisted's default reactor serves
    EPollReactor = None  # type: ignore[assignment,misc]
    EPOLLIN = 1

_NEEDED = ("_poller", "_selectables", "_doReadOrWrite", "_disconnectSelectable")

#: the connection type read here, when it reads as this module does (see the module's docstring)
_READ_HERE = (
    tcp.Server
    if tcp.Server.doRead is tcp.Connection.doRead and tcp.Server._dataReceived is tcp.Connection._dataReceived
    else None
)


if EPollReactor is not None:

    class EventLoop(EPollReactor):  # type: ignore[misc,valid-type]
        """``EPollReactor`` without the per-event legacy logging context."""

        def doPoll(self, timeout: float | None) -> None:
            try:
                ready = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
            except OSError as err:
                if err.errno == errno.EINTR:
                    return
                raise
            selectables = self._selectables
            handle = self._doReadOrWrite
            for fd, event in ready:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                if event != EPOLLIN or type(selectable) is not _READ_HERE:
                    handle(selectable, fd, event)
                    continue
                sock = selectable.socket
                if sock.fileno() == -1:  # closed under us: Twisted's path says so
                    handle(selectable, fd, event)
                    continue
                try:
                    data = sock.recv(selectable.bufferSize)
                except BlockingIOError:
                    continue
                except OSError:
                    self._disconnectSelectable(selectable, CONNECTION_LOST, True)
                    continue
                if not data:
                    self._disconnectSelectable(selectable, CONNECTION_DONE, True)
                    continue
                try:
                    selectable.protocol.dataReceived(data)
                except BaseException as e:  # as Twisted: logged, and the connection dropped
                    log.err()
                    self._disconnectSelectable(selectable, e, True)

        doIteration = doPoll


def install() -> Any:
    """Install :class:`EventLoop` as the global reactor (before ``twisted.internet.reactor`` is
    imported); Twisted's default reactor when epoll or the attributes it needs are missing."""
    import sys

    from twisted.internet.main import installReactor

    if EPollReactor is None or "twisted.internet.reactor" in sys.modules:
        return None  # no epoll, or a reactor is already in place (a test's, a caller's)
    loop = EventLoop()
    if not all(hasattr(loop, name) for name in _NEEDED):
        from twisted.internet import epollreactor

        epollreactor.install()
        return None
    installReactor(loop)
    return loop
