"""Wiring: build each daemon as a Twisted ``MultiService`` from its config.

Only the command-line entry points touch the global reactor; everything here takes
``reactor`` so tests can pass their own.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service, strports
from twisted.logger import Logger

import gridinfo
from gridinfo.config import GRISConfig
from gridinfo.directory.schema import Schema, load_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.gris.backend import TreeBackend, add_base_entries, load_static_ldif
from gridinfo.ldap.server import LDAPServerFactory, ServerLimits

log = Logger()

DEFAULT_INDEXED = ("objectClass",)


def server_limits(config: Any) -> ServerLimits:
    lim = config.limits
    return ServerLimits(
        max_pdu_bytes=lim.max_pdu_bytes,
        max_connections=lim.max_connections,
        max_outstanding_ops=lim.max_outstanding_ops,
        idle_timeout=lim.idle_timeout,
        default_size_limit=lim.size_limit,
        default_time_limit=lim.time_limit,
    )


def make_gris_tree(config: GRISConfig, schema: Schema | None = None) -> DirectoryTree:
    """The GRIS's tree: base entries, then the static LDIF (whose versions win)."""
    schema = schema if schema is not None else load_schema(config.schema)
    tree = DirectoryTree(schema, indexed=DEFAULT_INDEXED + tuple(config.index))
    load_static_ldif(tree, config.ldif)
    add_base_entries(tree, config.suffix)
    return tree


def make_gris_service(config: GRISConfig, reactor: Any, *, tree: DirectoryTree | None = None) -> service.MultiService:
    """A GRIS: LDAP listeners on the configured endpoints over one tree backend."""
    tree = tree if tree is not None else make_gris_tree(config)
    backend = TreeBackend(tree, naming_contexts=("o=grid",))
    factory = LDAPServerFactory(
        backend,
        reactor=reactor,
        limits=server_limits(config),
        credentials=config.credentials,
        vendor_version=f"gridinfo {gridinfo.__version__}",
    )
    top = service.MultiService()
    top.setName("gris")
    for endpoint in config.listen:
        listener = strports.service(endpoint, factory, reactor=reactor)
        listener.setServiceParent(top)
    top.backend = backend  # type: ignore[attr-defined]
    top.factory = factory  # type: ignore[attr-defined]
    return top
