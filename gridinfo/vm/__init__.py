"""Virtual machines and jobs as event-driven entries (docs/vm.md).

Sources log lifecycle events (:mod:`gridinfo.vm.events`) to a GRIS by LDAP add, through
:func:`log_event` or ``gridinfo-log-event``; the GRIS folds them into states
(:mod:`gridinfo.vm.lifecycle`), keeps them in a journal (:mod:`gridinfo.vm.journal`) and
publishes VM, job and relation entries (:mod:`gridinfo.vm.backend`).  The GRIS's ``hypervisor``
and ``batch`` providers feed the same machine (:mod:`gridinfo.vm.feed`, :mod:`gridinfo.vm.observe`).
"""

from __future__ import annotations

from typing import Any


def log_event(kind: str, **kw: Any) -> Any:
    """Log one event from a source; see :func:`gridinfo.vm.client.log_event`."""
    from gridinfo.vm.client import log_event as _log_event

    return _log_event(kind, **kw)


__all__ = ["log_event"]
