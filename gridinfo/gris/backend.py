"""The GRIS backend: the directory tree behind the LDAP server, filled from LDIF and providers.

The plain tree backend both daemons use lives in :mod:`gridinfo.ldap.tree_backend`.

The backend answers searches synchronously from its tree.  Static LDIF files are loaded at
start (BDII's ``ldif/`` contract); information providers (see the providers issue) will feed the
same tree through soft state.  Writes are refused: a GRIS's data comes from its providers.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from twisted.logger import Logger

from gridinfo.directory.ldif import LDIFLimits, LDIFRecord
from gridinfo.directory.query import SearchRequest, SearchResult
from gridinfo.directory.entry import Entry
from gridinfo.directory.snapshot import (
    SnapshotRejected,
    file_stats,
    key_if_unchanged,
    read_snapshot,
    snapshot_key,
    snapshot_path,
)
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import InputError, LDAPError
from gridinfo.gris import parallel_load
from gridinfo.gris.snapshot_writer import SnapshotWriter, write_here
from gridinfo.ldap.tree_backend import ROOT_DN, TreeBackend, add_base_entries, suffix_attributes

log = Logger(namespace=__name__)  # named here: a compiled module has no frame to name it from


class SearchPreparer(Protocol):
    """What a GRIS backend asks before a search (the provider manager answers)."""

    def prepare_search(self, request: SearchRequest) -> Any:  # Deferred[None] | None
        ...


class GRISBackend(TreeBackend):
    """The tree backend of a GRIS: a search touching stale provider data waits for a refresh.

    ``providers.prepare_search`` expires soft state, starts (or joins) the runs the search
    needs and returns a Deferred that fires when they end or their timelimit passes; the search
    then answers from the tree with whatever is served by then (fresh data, or the last good).
    """

    def __init__(self, tree: DirectoryTree, providers: SearchPreparer, *, event_sink: Any = None, **kw: Any):
        super().__init__(tree, **kw)
        self.providers = providers
        self.event_sink = event_sink  # gridinfo.vm.backend.EventSink: adds below ou=events

    def add(self, dn: str, attributes: list[tuple[str, list[bytes]]], bind_dn: str, peer: str | None = None) -> Any:
        """Lifecycle events (adds below the events subtree) go to the event sink; the rest is refused."""
        if self.event_sink is not None and self.event_sink.handles(dn):
            return self.event_sink.add(dn, attributes, bind_dn)
        return super().add(dn, attributes, bind_dn, peer)

    def search(self, request: SearchRequest) -> Any:  # SearchResult | Deferred[SearchResult]
        wait = self.providers.prepare_search(request)
        if wait is None:
            return self.tree.search(request, server_size_limit=self.size_limit, sliced=True)
        return wait.addCallback(lambda _: self.tree.search(request, server_size_limit=self.size_limit, sliced=True))


def ldif_files(paths: Iterable[str]) -> list[Path]:
    """The ``*.ldif`` files named, or found (sorted) in the folders named."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files.extend(
                f for f in sorted(path.glob("*.ldif")) if not f.name.startswith(".") and not f.name.endswith("~")
            )
        else:
            files.append(path)
    return files


#: a static file is streamed record by record: its records are bounded, not its size (1M entries is ~1 GB)
STATIC_LIMITS = LDIFLimits(max_file_bytes=1 << 40)


def load_static_ldif(
    tree: DirectoryTree,
    paths: Iterable[str],
    limits: LDIFLimits | None = None,
    *,
    snapshot_dir: str = "",
    snapshot_writer: SnapshotWriter = write_here,
) -> list[InputError]:
    """Load static LDIF files into the tree; a bad record is logged (file:line) and skipped.

    Returns the errors, so callers (and tests) can see what was refused.  A file that cannot be
    read is one error; everything else keeps loading.  With ``snapshot_dir`` the entries come
    from a verified snapshot of the same files when there is one (:mod:`gridinfo.directory.snapshot`),
    and a load that parsed the files writes one with ``snapshot_writer`` (a daemon's forks:
    :mod:`gridinfo.gris.snapshot_writer`).
    """
    files = ldif_files(paths)
    limits = limits or STATIC_LIMITS
    where = None
    read_as: list[list[Any]] | None = None
    if snapshot_dir and files:
        where = snapshot_path(snapshot_dir, files)
        fingerprint = tree.schema.fingerprint()
        if where.exists():  # a snapshot to verify: the files' digests are needed now
            try:
                key = snapshot_key(files, fingerprint, limits)
            except OSError as e:
                log.info("LDIF snapshot not used: cannot read {file}: {error}", file=e.filename, error=e.strerror)
                where = None
            else:
                restored = _restore(tree, where, key)
                if restored is not None:
                    return restored
        else:  # a first start: the digests are taken by the writer, after the load
            log.info("no LDIF snapshot at {path} yet: parsing the LDIF files", path=str(where))
        try:
            read_as = file_stats(files)
        except OSError as e:
            log.info("LDIF snapshot not written: cannot read {file}: {error}", file=e.filename, error=e.strerror)
    loaded: list[Entry] = []
    errors = _parse_files(tree, files, limits, loaded)
    if where is not None and read_as is not None:
        stats = read_as
        snapshot_writer(where, lambda: key_if_unchanged(files, fingerprint, limits, stats), loaded, errors)
    return errors


def _restore(tree: DirectoryTree, where: Path, key: dict[str, Any]) -> list[InputError] | None:
    """Add a snapshot's entries to the tree and log its refused records; None if not usable."""
    gc_was_enabled = _pause_collector()
    try:
        try:
            entries, errors = read_snapshot(where, key)
        except SnapshotRejected as e:
            log.warn("LDIF snapshot {path} not used, parsing the LDIF files: {why}", path=str(where), why=str(e))
            return None
        except OSError as e:
            log.warn("LDIF snapshot {path} not used, parsing the LDIF files: {error}", path=str(where), error=str(e))
            return None
        for err in errors:
            log.error("refused LDIF record: {error}", error=str(err))
        for entry in entries:
            tree.add(entry)
        tree.builder.forget_values()
        tree.changelog.forget()
    finally:
        _resume_collector(gc_was_enabled)
    log.info("loaded {count} entries from LDIF snapshot {path}", count=len(entries), path=str(where))
    return errors


def _parse_files(tree: DirectoryTree, files: list[Path], limits: LDIFLimits, loaded: list[Entry]) -> list[InputError]:
    errors: list[InputError] = []
    for path in files:
        source = str(path)
        try:
            with path.open("rb") as readable:
                size = os.fstat(readable.fileno()).st_size
        except OSError as e:
            err = InputError(f"cannot read LDIF file: {e.strerror}", source)
            log.error("{error}", error=str(err))
            errors.append(err)
            continue
        count = 0

        def refuse(err: InputError) -> None:
            log.error("refused LDIF record: {error}", error=str(err))
            errors.append(err)

        def build(rec: LDIFRecord, source: str = source) -> Entry | InputError | None:
            if rec.changetype not in (None, "add"):
                return InputError(f"changetype {rec.changetype} is not allowed in a static LDIF file", source, rec.line)
            violations = tree.schema.check_entry(dict(rec.attributes))
            if violations:
                return InputError(f"entry {rec.dn!r} breaks the schema: {'; '.join(violations)}", source, rec.line)
            try:
                return tree.build(rec.dn, rec.attributes, source=source)
            except LDAPError as e:
                return InputError(e.message, source, rec.line)

        def add(entry: Entry) -> None:
            nonlocal count
            tree.add(entry)
            loaded.append(entry)
            count += 1

        # streamed record by record: a 100 MB file never sits in memory beside its entries;
        # entries hold no reference cycles, so the cycle collector is paused while they pour in;
        # a large file is read in two halves on two CPUs (gridinfo.gris.parallel_load)
        gc_was_enabled = _pause_collector()
        try:
            split = parallel_load.read_in_two(path, source, limits, build, add, refuse) if parallel_load.can_split(size, limits) else None
            if split is None:
                parallel_load.read_half(path, source, limits, build, add, refuse)
        except OSError as e:
            refuse(InputError(f"cannot read LDIF file: {e.strerror}", source))
        finally:
            _resume_collector(gc_was_enabled)
        log.info("loaded {count} entries from {source}", count=count, source=source)
    if files:
        # the sharing caches of a bulk load would keep their bounds of one-off values forever
        tree.builder.forget_values()
        tree.schema.forget_checked_values()
        tree.changelog.forget()
    return errors


def _pause_collector() -> bool:
    """Before a bulk load: collect what is garbage now (a few milliseconds: the heap is still
    small), then pause the cycle collector; returns whether it was running."""
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.collect()
    gc.disable()
    return was_enabled


def _resume_collector(was_enabled: bool) -> None:
    """After a bulk load with the cycle collector paused: the loaded entries are long-lived, so
    they go out of its generations first (``gc.freeze``); else its first run would walk every
    object made while it was paused (~0.1 s at 100k entries).  A load makes no reference cycles
    (entries and records hold none) and the garbage from before it was collected, so freezing
    keeps nothing collectable."""
    gc.freeze()
    if was_enabled:
        gc.enable()


GLUE2_ROOT_DN = "o=glue"


def glue2_naming_context(glue2_suffix: str) -> str | None:
    """``o=glue`` when GLUE 2 is on (a GLUE 2 suffix is set), else None."""
    return GLUE2_ROOT_DN if glue2_suffix else None


def add_glue2_base_entries(tree: DirectoryTree, glue2_suffix: str) -> None:
    """``o=glue`` and the ``GLUE2GroupID=...`` entries down to the GLUE 2 suffix (BDII's
    ``GLUE2GroupID=resource,o=glue``), unless an LDIF gives its own version.

    An RDN on the way that is not a ``GLUE2GroupID`` (a site suffix such as
    ``GLUE2GroupID=resource,GLUE2DomainID=SITE,o=glue``) is not made up: that entry (the
    site's GLUE2AdminDomain) comes from static LDIF or a provider, and what lies below it
    waits for it.
    """
    if not glue2_suffix:
        return
    if tree.lookup(GLUE2_ROOT_DN) is None:
        tree.add(tree.build(GLUE2_ROOT_DN, [("objectClass", [b"organization"]), ("o", [b"glue"])], source="gridinfo"))
    rdns = [part.strip() for part in glue2_suffix.split(",")][:-1]  # the suffix below o=glue, nearest first
    parent = GLUE2_ROOT_DN
    for rdn in reversed(rdns):
        dn = f"{rdn},{parent}"
        attribute, _, value = rdn.partition("=")
        if tree.lookup(dn) is None:
            if attribute.strip().lower() != "glue2groupid":
                return
            attrs = [("objectClass", [b"GLUE2Group"]), ("GLUE2GroupID", [value.strip().encode("utf-8")])]
            tree.add(tree.build(dn, attrs, source="gridinfo"))
        parent = dn


__all__ = [
    "GLUE2_ROOT_DN",
    "GRISBackend",
    "ROOT_DN",
    "TreeBackend",
    "add_base_entries",
    "add_glue2_base_entries",
    "glue2_naming_context",
    "ldif_files",
    "load_static_ldif",
    "suffix_attributes",
]
