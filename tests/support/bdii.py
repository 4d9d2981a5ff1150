"""The real-BDII fixture lives in ``tools/gridinfo_dev/bdii.py`` (beside the slapd harness); import it from there.

This name is kept so that test modules can import it like the slapd one.
"""

from gridinfo_dev.bdii import BDIIError, RealBDII, bdii_available

__all__ = ["BDIIError", "RealBDII", "bdii_available"]
