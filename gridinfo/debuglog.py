"""Whether a daemon's debug lines go anywhere, for the lines on hot paths.

A ``twisted.logger`` event is built and published before any observer decides to drop it: a
debug line cost a gris about 8 us (its event, then the level filter looking up the namespace),
twice per client connection, while the daemon logs at info and drops it.  Code on a hot path
asks :data:`wanted` first.  It stays True unless the daemons' logging set-up
(:func:`gridinfo.cli.common.start_logging`) logs above debug, where its one observer drops
every debug event, so tests and embedders that observe the log themselves see every line.
"""

from __future__ import annotations

#: False while the daemon's log drops debug events
wanted = True
