"""Failed-attempt throttling: an exponential, capped delay per key that a quiet period forgets.

Theory of operation
-------------------
Each key (a bind DN, a client address) has a count of recent failures and the time of the last
one.  Before an attempt is judged, the server waits ``delay(keys, now)``: the largest delay of
the keys involved.  Waiting before judging (rather than only after a failure) means a right
password is not answered faster than a wrong one, so timing tells a guesser nothing.

==================  ===========================================================
failures of a key   delay before the next attempt with that key is judged
==================  ===========================================================
0                   none
n >= 1              ``first_delay * 2 ** (n - 1)``, at most ``max_delay``
==================  ===========================================================

A key with no failure for ``forget_after`` seconds starts again from 0; a success forgets the
DN's failures (not the address's: one good account must not wash an address clean).  At most
``max_keys`` keys are remembered, the least recently failed dropped first, so a flood of
made-up DNs costs bounded memory.  Pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class FailureThrottle:
    """Recent failures per key and the delay they impose."""

    def __init__(
        self, first_delay: float = 0.5, max_delay: float = 16.0, forget_after: float = 600.0, max_keys: int = 100_000
    ) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failures(self, key: str, now: float) -> int:
        """Failures of ``key`` that still count at ``now``."""
        record = self._failures.get(key)
        if record is None:
            return 0
        count, last = record
        if now - last >= self.forget_after:
            del self._failures[key]
            return 0
        return count

    def delay(self, keys: Iterable[str], now: float) -> float:
        """Seconds to wait before judging an attempt involving ``keys``."""
        worst = max((self.failures(key, now) for key in keys), default=0)
        if worst == 0 or self.first_delay <= 0:
            return 0.0
        return float(min(self.max_delay, self.first_delay * 2 ** min(worst - 1, 62)))

    def record(self, key: str, now: float) -> int:
        """Count a failure of ``key``; returns its failures so far."""
        count = self.failures(key, now) + 1
        failures = self._failures
        failures[key] = (count, now)
        failures.move_to_end(key)
        while len(failures) > self.max_keys:
            failures.popitem(last=False)
        return count

    def forget(self, key: str) -> None:
        """A success: ``key`` starts again with no failures."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)
