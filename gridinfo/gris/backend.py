"""The GRIS backend: the directory tree behind the LDAP server, filled from LDIF and providers.

The plain tree backend both daemons use lives in :mod:`gridinfo.ldap.tree_backend`.

The backend answers searches synchronously from its tree.  Static LDIF files are loaded at
start (BDII's ``ldif/`` contract); information providers (see the providers issue) will feed the
same tree through soft state.  Writes are refused: a GRIS's data comes from its providers.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from twisted.logger import Logger

from gridinfo.directory.ldif import LDIFError, LDIFLimits, iter_ldif_tolerant
from gridinfo.directory.query import SearchRequest, SearchResult
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import InputError, LDAPError
from gridinfo.ldap.tree_backend import ROOT_DN, TreeBackend, add_base_entries, suffix_attributes

log = Logger()


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


def load_static_ldif(tree: DirectoryTree, paths: Iterable[str], limits: LDIFLimits | None = None) -> list[InputError]:
    """Load static LDIF files into the tree; a bad record is logged (file:line) and skipped.

    Returns the errors, so callers (and tests) can see what was refused.  A file that cannot be
    read is one error; everything else keeps loading.
    """
    errors: list[InputError] = []
    for path in ldif_files(paths):
        source = str(path)
        try:
            stream = path.open("rb")
        except OSError as e:
            err = InputError(f"cannot read LDIF file: {e.strerror}", source)
            log.error("{error}", error=str(err))
            errors.append(err)
            continue
        bad: list[LDIFError] = []
        loaded = 0

        def refuse(err: InputError) -> None:
            log.error("refused LDIF record: {error}", error=str(err))
            errors.append(err)

        # streamed record by record: a 100 MB file never sits in memory beside its entries;
        # entries hold no reference cycles, so the cycle collector is paused while they pour in
        gc_was_enabled = gc.isenabled()
        gc.disable()
        with stream:
            try:
                for rec in iter_ldif_tolerant(stream, bad, source, limits or LDIFLimits()):
                    while bad:
                        refuse(bad.pop(0))
                    if rec.changetype not in (None, "add"):
                        refuse(InputError(f"changetype {rec.changetype} is not allowed in a static LDIF file", source, rec.line))
                        continue
                    violations = tree.schema.check_entry(dict(rec.attributes))
                    if violations:
                        refuse(InputError(f"entry {rec.dn!r} breaks the schema: {'; '.join(violations)}", source, rec.line))
                        continue
                    try:
                        entry = tree.build(rec.dn, rec.attributes, source=source)
                    except LDAPError as e:
                        refuse(InputError(e.message, source, rec.line))
                        continue
                    tree.add(entry)
                    loaded += 1
            except LDIFError as e:  # a limit broken: the rest of the file is refused
                refuse(e)
            except OSError as e:
                refuse(InputError(f"cannot read LDIF file: {e.strerror}", source))
            finally:
                if gc_was_enabled:
                    gc.enable()
        while bad:
            refuse(bad.pop(0))
        log.info("loaded {count} entries from {source}", count=loaded, source=source)
    return errors


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
