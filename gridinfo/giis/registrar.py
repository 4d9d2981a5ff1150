"""Moved to :mod:`gridinfo.ldap.registrar` (the GRIS registers too); kept for gridinfo/devtools
until that folder moves to tools/ (issue 10, item 5).  New code imports gridinfo.ldap.registrar."""

from gridinfo.ldap.registrar import Registrar, bound_port, listener_host, registration_message

__all__ = ["Registrar", "bound_port", "listener_host", "registration_message"]
