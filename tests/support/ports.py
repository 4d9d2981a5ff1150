"""Moved to ``tools/gridinfo_dev/ports.py`` (the slapd harness needs it too); import it from there.

This name is kept so that test modules written against it keep working.
"""

from gridinfo_dev.ports import LOOPBACK, free_port, free_ports

__all__ = ["LOOPBACK", "free_port", "free_ports"]
