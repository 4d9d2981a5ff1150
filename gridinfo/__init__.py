"""gridinfo: a hierarchical, LDAP-speaking information service for grid and cloud sites."""

__version__ = "0.1.0"
