"""Who may log what: bind DNs speak for sources and owners; a VM's registration limits both.

Rules, checked in order (the first that fails refuses the event with insufficientAccessRights,
a message saying why, and no change anywhere):

1. An anonymous client logs nothing (unless ``allow_anonymous``, for tests and closed networks).
2. The bind DN must be configured: ``sources`` maps a DN to the source it speaks as (``cloud``,
   ``hypervisor``, ``vm``, ``batch``); ``owners`` maps a DN to an owner name.
3. A DN logs events of its own source.  An owner's DN may also log ``vm`` events (the VM image
   speaking for its owner), but only for VMs registered with that owner.
4. Once a VM or job is registered, its ``Register`` event decides: events come only from the
   sources it named (attribute ``sources``, default all), and owner-logged events only from its
   ``owner``.  A second ``Register`` must name the same owner and sources.

The server has already checked the bind password (``credentials`` in gris.yaml).

Events the GRIS observes itself (the ``hypervisor`` provider's snapshots, see
:mod:`gridinfo.vm.feed`) have no bind DN: :meth:`AccessPolicy.check_observed` applies rule 4's
source limit only (a VM registered to hear the cloud alone does not hear the hypervisor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gridinfo.directory.dn import loose_key
from gridinfo.errors import InsufficientAccessRights
from gridinfo.vm.events import Event
from gridinfo.vm.lifecycle import Lifecycle, LifecycleStore

normalise_dn = loose_key  # bind DNs compare by their key, so spacing and case do not matter


@dataclass(frozen=True)
class Principal:
    """What a bind DN may speak as."""

    dn: str
    source: str | None
    owner: str | None


class AccessPolicy:
    """``AccessPolicy(sources={dn: source}, owners={dn: owner})``; see the module's rules."""

    def __init__(
        self,
        sources: Mapping[str, str] | None = None,
        owners: Mapping[str, str] | None = None,
        *,
        allow_anonymous: bool = False,
    ):
        # source names were checked by gridinfo.config.validate (vm.sources); a name outside
        # SOURCES could only ever fail rule 3
        self._sources = {normalise_dn(dn): source for dn, source in (sources or {}).items()}
        self._owners = {normalise_dn(dn): owner for dn, owner in (owners or {}).items()}
        self.allow_anonymous = allow_anonymous

    def principal(self, bind_dn: str) -> Principal:
        key = normalise_dn(bind_dn)
        return Principal(bind_dn, self._sources.get(key), self._owners.get(key))

    def check(self, event: Event, bind_dn: str, store: LifecycleStore) -> None:
        """Raise :class:`InsufficientAccessRights` unless ``bind_dn`` may log ``event``."""
        if not bind_dn:
            if self.allow_anonymous:
                return
            raise InsufficientAccessRights("anonymous clients may not log events: bind as a configured source DN")
        who = self.principal(bind_dn)
        if who.source is None and who.owner is None:
            raise InsufficientAccessRights(f"{bind_dn!r} is not configured as an event source or owner (vm.sources, vm.owners)")
        if who.source == event.source:
            as_owner = False
        elif event.source == "vm" and who.owner is not None:
            as_owner = True
        else:
            speaks = f"as source {who.source!r}" if who.source else f"as owner {who.owner!r} (source 'vm' only)"
            raise InsufficientAccessRights(f"{bind_dn!r} logs events {speaks}, not as source {event.source!r}")
        subjects: list[tuple[str, Lifecycle | None]] = []
        if event.vm_id is not None:
            subjects.append((f"VM {event.vm_id!r}", store.vms.get(event.vm_id)))
        if event.job_id is not None:
            subjects.append((f"job {event.job_id!r}", store.jobs.get(event.job_id)))
        for name, life in subjects:
            registration = life.registration if life is not None else None
            if registration is None:
                if as_owner:
                    raise InsufficientAccessRights(f"{name} is not registered, so its owner is not known yet")
                continue
            assert life is not None
            if event.kind == "Register" and event.key != registration.key and (
                event.attribute("owner") != registration.attribute("owner")
                or event.attribute("sources") != registration.attribute("sources")
            ):
                raise InsufficientAccessRights(
                    f"{name} is already registered (owner {life.owner!r}); a new Register may not change its owner or sources"
                )
            if event.source not in life.allowed_sources:
                raise InsufficientAccessRights(
                    f"{name} accepts events from {', '.join(sorted(life.allowed_sources))} only, not {event.source!r}"
                )
            if as_owner and life.owner != who.owner:
                raise InsufficientAccessRights(f"{name} belongs to {life.owner!r}, not {who.owner!r}")

    def check_observed(self, event: Event, store: LifecycleStore) -> None:
        """Raise :class:`InsufficientAccessRights` when a registration excludes the event's source.

        For events gridinfo produced itself: there is no bind DN to check, but a VM or job whose
        ``Register`` named its sources still hears only those.
        """
        for name, life in ((f"VM {event.vm_id!r}", store.vms.get(event.vm_id) if event.vm_id else None),
                           (f"job {event.job_id!r}", store.jobs.get(event.job_id) if event.job_id else None)):
            if life is not None and life.registration is not None and event.source not in life.allowed_sources:
                raise InsufficientAccessRights(
                    f"{name} accepts events from {', '.join(sorted(life.allowed_sources))} only, not {event.source!r}"
                )
