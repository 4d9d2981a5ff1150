"""The daemons' reactor: Twisted's epoll reactor, handing each ready socket straight to it.

Twisted's ``EPollReactor.doPoll`` runs every socket event inside ``log.callWithLogger``, which
builds a legacy logging context (the "system" prefix of ``twisted.python.log`` messages: a
``logPrefix()`` call, a context dict copied, pushed and popped).  That is about 3 us per event
on the machines of docs/performance.md, a tenth of a whole base lookup.  gridinfo logs through
``twisted.logger`` namespaces, which never read that context, so :class:`EventLoop` leaves it
out and does exactly what Twisted's loop does otherwise: poll, then ``_doReadOrWrite`` per
ready descriptor (which catches and logs a handler's exception and drops that connection).

It leans on three attributes of Twisted's epoll reactor (``_poller``, ``_selectables``,
``_doReadOrWrite``); :func:`install` checks for them and installs Twisted's own reactor when
they are missing, so a Twisted that renames them costs the 3 us, never correctness.
"""

from __future__ import annotations

import errno
from typing import Any

try:
    from twisted.internet.epollreactor import EPollReactor
except ImportError:  # not Linux: no epoll, Twisted's default reactor serves
    EPollReactor = None  # type: ignore[assignment,misc]

_NEEDED = ("_poller", "_selectables", "_doReadOrWrite")


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
                if selectable is not None:
                    handle(selectable, fd, event)

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
