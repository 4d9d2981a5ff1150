"""Moved to ``tools/gridinfo_dev/slapd.py`` (shared with ``tools/bench``); import it from there.

This name is kept so that test modules written against it keep working.
"""

from gridinfo_dev.slapd import GLUE_SCHEMAS, Slapd, SlapdError, slapd_available

__all__ = ["GLUE_SCHEMAS", "Slapd", "SlapdError", "slapd_available"]
