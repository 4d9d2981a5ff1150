"""Fixtures of the GRIS tests."""

from __future__ import annotations

import pytest
from twisted.logger import globalLogPublisher


@pytest.fixture
def logged():
    """gridinfo's log lines while the test runs, formatted as the daemon's log shows them."""
    lines: list[str] = []

    def observe(event):
        fmt = event.get("log_format")
        if fmt:
            lines.append(fmt.format(**{k: v for k, v in event.items() if isinstance(k, str)}))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)
