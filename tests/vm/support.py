"""Helpers for the VM tests: a GRIS tree with an event sink on a real journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridinfo.directory.schema import default_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.ldap.tree_backend import add_base_entries
from gridinfo.vm.acl import AccessPolicy
from gridinfo.vm.backend import EventSink
from gridinfo.vm.events import Event
from gridinfo.vm.journal import Journal

SUFFIX = "mds-vo-name=local,o=grid"
EVENTS = f"ou=events,{SUFFIX}"
T0 = 1714564800.0

CLOUD = "cn=cloud,o=grid"
HYPERVISOR = "cn=hv,o=grid"
VM = "cn=vm-image,o=grid"
BATCH = "cn=batch,o=grid"
ALICE = "cn=alice,o=grid"
BOB = "cn=bob,o=grid"
SOURCES = {CLOUD: "cloud", HYPERVISOR: "hypervisor", VM: "vm", BATCH: "batch"}
OWNERS = {ALICE: "alice", BOB: "bob"}


class Now:
    """A settable clock."""

    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_sink(journal_path: Path, *, clock: Now | None = None, reactor: Any = None, retention: float = 3600.0,
              allow_anonymous: bool = False) -> EventSink:
    tree = DirectoryTree(default_schema(), indexed=("objectClass",))
    add_base_entries(tree, SUFFIX)
    sink = EventSink(tree, SUFFIX, Journal(journal_path), AccessPolicy(SOURCES, OWNERS, allow_anonymous=allow_anonymous),
                     clock=clock or Now(), reactor=reactor, retention=retention)
    sink.load()
    return sink


def log(sink: EventSink, event: Event, bind_dn: str) -> Any:
    return sink.add(event.dn(EVENTS), event.to_attributes(), bind_dn)


def vm_event(kind: str, source: str, seq: int, t: float = 0.0, vm: str = "vm1", **attrs: str) -> Event:
    return Event.make(kind, source, seq, T0 + t, vm_id=vm, attributes=attrs)


def search(sink: EventSink, filter_text: str, base: str = SUFFIX) -> list[dict[str, list[str]]]:
    """Entries below ``base`` matching the filter, as {attribute (lowercase): [values]} plus 'dn'."""
    from gridinfo.directory.filters import parse_filter

    predicate = sink.tree.compiler.compile(parse_filter(filter_text))
    out = []
    for entry in sink.tree.subtree(sink.tree.key(base)):
        if predicate(entry) is True:
            row = {entry.names[k].lower(): [v.decode() for v in entry.attributes[k]] for k in entry.attributes}
            row["dn"] = [entry.dn]
            out.append(row)
    return out
