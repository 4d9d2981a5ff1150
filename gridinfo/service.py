"""Wiring: build each daemon as a Twisted ``MultiService`` from its config.

Only the command-line entry points touch the global reactor; everything here takes
``reactor`` so tests can pass their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet import endpoints
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.logger import Logger

import gridinfo
from dataclasses import replace

from gridinfo.config import GIISConfig, GRISConfig, read_secret, validate
from gridinfo.directory.schema import Schema, load_schema
from gridinfo.directory.tree import DirectoryTree
from gridinfo.gris import snapshot_writer
from gridinfo.gris.backend import GRISBackend, add_glue2_base_entries, glue2_naming_context, load_static_ldif
from gridinfo.gris.snapshot_writer import SnapshotWriter, write_here
from gridinfo.ldap.tree_backend import add_base_entries
from gridinfo.gris.providers import ProviderManager
from gridinfo.infosys import connection_attributes
from gridinfo.ldap.oplog import OperationLog
from gridinfo.ldap.server import LDAPServerFactory, ServerLimits

log = Logger()

DEFAULT_INDEXED = ("objectClass",)


class ListenerService(service.Service):
    """Listens on one endpoint string; knows the port it bound and says so in the log.

    ``tcp:0`` picks a free port: the log line ``listening on HOST:PORT`` and :attr:`port` tell
    which.  A listener that cannot bind is fatal: it logs why and stops the reactor, and the
    command exits non-zero (``failed`` is set).
    """

    def __init__(self, endpoint: str, factory: Any, reactor: Any):
        self.endpoint = endpoint
        self.factory = factory
        self.reactor = reactor
        self.port: IListeningPort | None = None
        self.failed: str | None = None

    def startService(self) -> None:
        super().startService()
        d = endpoints.serverFromString(self.reactor, self.endpoint).listen(self.factory)
        d.addCallbacks(self._listening, self._cannot_listen)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        log.info(
            "listening on {host}:{port} ({endpoint})",
            host=getattr(address, "host", "?"),
            port=getattr(address, "port", 0),
            endpoint=self.endpoint,
        )

    def _cannot_listen(self, failure: Failure) -> None:
        self.failed = f"cannot listen on {self.endpoint}: {failure.getErrorMessage()}"
        log.critical("{message}", message=self.failed)
        if self.reactor.running:
            try:
                self.reactor.stop()
            except ReactorNotRunning:  # another listener failed first: the reactor is stopping
                pass

    def bound_port(self) -> int | None:
        return int(getattr(self.port.getHost(), "port", 0)) if self.port is not None else None

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


def ldap_factory(backend: Any, config: Any, reactor: Any, *, observers: tuple[Any, ...] = ()) -> LDAPServerFactory:
    """The LDAP server factory of a daemon: its backend, limits, bind credentials, TLS, and who
    watches its operations (the operator log of ``stats_log``, and ``observers``)."""
    tls = config.tls
    context = None
    if tls.configured:
        from gridinfo.ldap.tls import server_context

        context = server_context(tls.certificate, tls.key, tls.ca, tls.client_certificates)
    return LDAPServerFactory(
        backend,
        reactor=reactor,
        limits=server_limits(config),
        credentials={dn: read_secret(pw) for dn, pw in config.credentials.items()},
        vendor_version=f"gridinfo {gridinfo.__version__}",
        tls_context=context,
        allow_plain_passwords=tls.allow_plain_passwords,
        client_certificates=tls.client_certificates != "none",
        observers=((OperationLog(config.stats_log),) if config.stats_log != "off" else ()) + observers,
    )


def client_tls(config: Any) -> Any:
    """How the daemon's own clients (registrar, GIIS -> child) use TLS: the tls section's CA
    verifies the servers (StartTLS whenever it is set), its certificate is presented."""
    from gridinfo.ldap.tls import ClientTLS

    tls = config.tls
    if not (tls.ca or tls.certificate):
        return None
    return ClientTLS(ca=tls.ca, certificate=tls.certificate, key=tls.key)


def client_factory(config: Any, reactor: Any) -> Any:
    """Builds the daemon's LDAP clients, each with the daemon's client TLS settings."""
    from gridinfo.ldap.client import LDAPClient

    tls = client_tls(config)
    return lambda host, port, **kw: LDAPClient(reactor, host, port, tls=tls, **kw)


def server_limits(config: Any) -> ServerLimits:
    lim = config.limits
    return ServerLimits(
        max_pdu_bytes=lim.max_pdu_bytes,
        max_connections=lim.max_connections,
        max_outstanding_ops=lim.max_outstanding_ops,
        idle_timeout=lim.idle_timeout,
        default_size_limit=lim.size_limit,
        default_time_limit=lim.time_limit,
        max_connections_per_address=lim.max_connections_per_address,
        request_timeout=lim.request_timeout,
        close_timeout=lim.close_timeout,
        send_buffer_bytes=lim.send_buffer_bytes,
        bind_failure_delay=lim.bind_failure_delay,
        bind_failure_max_delay=lim.bind_failure_max_delay,
        stream_buffer_entries=lim.stream_buffer_entries,
    )


def make_gris_tree(
    config: GRISConfig,
    schema: Schema | None = None,
    *,
    wallclock: Callable[[], float] = time.time,
    snapshot_writer: SnapshotWriter = write_here,
) -> DirectoryTree:
    """The GRIS's tree: base entries (o=grid and its suffix; o=glue and its GLUE 2 suffix),
    then the static LDIF (whose versions win).

    ``wallclock`` stamps entries (createTimestamp, modifyTimestamp); daemons pass the reactor's,
    and a ``snapshot_writer`` that writes the LDIF snapshot from a forked child while they serve.
    """
    schema = schema if schema is not None else load_schema(config.schema)
    tree = DirectoryTree(schema, indexed=DEFAULT_INDEXED + tuple(config.index), wallclock=wallclock)
    load_static_ldif(tree, config.ldif, snapshot_dir=config.ldif_snapshot, snapshot_writer=snapshot_writer)
    add_base_entries(tree, config.suffix)
    add_glue2_base_entries(tree, config.glue2_suffix)
    return tree


def gris_naming_contexts(config: GRISConfig) -> tuple[str, ...]:
    """What the root DSE lists: o=grid, o=glue (unless GLUE 2 is off) and o=infosys."""
    glue = glue2_naming_context(config.glue2_suffix)
    return ("o=grid",) + ((glue,) if glue else ()) + ("o=infosys",)


def make_gris_service(config: GRISConfig, reactor: Any, *, tree: DirectoryTree | None = None) -> service.MultiService:
    """A GRIS: LDAP listeners on the configured endpoints over one tree backend.

    Its providers (``config.providers`` / ``plugins`` folders) feed the tree through soft
    state; their status is published under ``o=infosys``.
    """
    validate(config)
    if tree is None:
        # a real reactor can hear from the writer's thread; a test's Clock cannot: written in process
        call_from_thread = getattr(reactor, "callFromThread", None)
        writer = snapshot_writer.forked(call_from_thread) if call_from_thread is not None else write_here
        tree = make_gris_tree(config, wallclock=reactor.seconds, snapshot_writer=writer)
    events = None
    vm_feed = None
    if config.vm.enabled:
        from gridinfo.vm.backend import make_event_service
        from gridinfo.vm.feed import HypervisorFeed

        events = make_event_service(tree, config.suffix, config.vm, reactor)
        vm_feed = HypervisorFeed(events.sink)  # runs of `feeds: vm` providers become hypervisor events
    providers = ProviderManager(tree, config, reactor, vm_feed=vm_feed)
    backend = GRISBackend(
        tree, providers, naming_contexts=gris_naming_contexts(config), event_sink=events.sink if events else None
    )
    from gridinfo.web.wiring import add_web_service, web_parts

    web = web_parts(config)  # http: only; its operation metrics watch the LDAP server
    factory = ldap_factory(backend, config, reactor, observers=(web.operations,) if web else ())
    providers.status.server_stats = lambda: connection_attributes(factory.stats, factory.connections)
    top = service.MultiService()
    top.setName("gris")
    providers.setServiceParent(top)
    if events is not None:
        events.setServiceParent(top)
    listeners = [ListenerService(endpoint, factory, reactor) for endpoint in config.listen]
    for listener in listeners:
        listener.setServiceParent(top)
    providers.glue2.listeners = lambda: _listener_addresses(config, listeners)
    add_web_service(top, web, "gris", config.suffix, config, backend, factory, reactor, providers=providers)
    from gridinfo.triggers.service import add_trigger_service

    top.triggers = add_trigger_service(top, backend, tree, config, reactor)  # type: ignore[attr-defined]
    top.backend = backend  # type: ignore[attr-defined]
    top.factory = factory  # type: ignore[attr-defined]
    top.providers = providers  # type: ignore[attr-defined]
    top.events = events  # type: ignore[attr-defined]
    top.registrar = _registrar(config, config.suffix, top, reactor)  # type: ignore[attr-defined]
    return top


def _listener_addresses(config: GRISConfig, listeners: list[ListenerService]) -> list[Any]:
    """The bound listeners as the GRIS's GLUE2Endpoints see them (scheme, host clients use, port)."""
    import socket

    from gridinfo.gris.glue2 import ListenerAddress
    from gridinfo.ldap.registrar import listener_host

    out = []
    for listener in listeners:
        port = listener.bound_port()
        if port:
            host = listener_host([listener.endpoint]) or socket.getfqdn()
            host = f"[{host}]" if ":" in host else host
            scheme = "ldaps" if listener.endpoint.startswith("ssl:") else "ldap"
            out.append(ListenerAddress(scheme, host, port))
    return out


def _registrar(config: Any, suffix: str, top: service.MultiService, reactor: Any) -> Any:
    """Upward registration (``register:``) for a GRIS or GIIS, registering the bound port."""
    from gridinfo.ldap.registrar import Registrar, bound_port, listener_host

    if not getattr(config, "register", ()):
        return None
    listeners = [s for s in top if type(s) is ListenerService]  # LDAP listeners (not the web view's)
    targets = [replace(t, password=read_secret(t.password)) for t in config.register]
    registrar = Registrar(
        reactor,
        targets,
        suffix=suffix,
        host=listener_host(config.listen),
        port=bound_port(listeners),
        client_factory=client_factory(config, reactor),
    )
    registrar.setServiceParent(top)
    return registrar


def make_giis_service(config: GIISConfig, reactor: Any) -> service.MultiService:
    """A GIIS: own entries, leased registrations, forwarding to children, upward registration."""
    from gridinfo.giis.backend import GIISBackend, GIISMaintenance
    from gridinfo.giis.policy import RegistrationPolicy

    validate(config)
    config = replace(config, children=tuple(replace(c, password=read_secret(c.password)) for c in config.children))
    schema = load_schema(config.schema)
    # a GIIS answers the same large searches again and again between changes: remember them
    tree = DirectoryTree(schema, indexed=DEFAULT_INDEXED, wallclock=reactor.seconds, answer_cache=True)
    add_base_entries(tree, config.suffix)
    if config.layout == "bdii":
        from gridinfo.giis.children import bdii_layout
        from gridinfo.giis.namespace import bdii_entry_attributes

        layout = bdii_layout(config)
        assert layout is not None
        for dn in layout.default_entries():
            if tree.lookup(dn) is None:
                tree.add(tree.build(dn, bdii_entry_attributes(dn), source="gridinfo"))
    policy = RegistrationPolicy(config.registration_policy, schema, source=config.source)
    backend = GIISBackend(tree, config, reactor, policy=policy, client_factory=client_factory(config, reactor), push=True)
    from gridinfo.web.wiring import add_web_service, web_parts

    web = web_parts(config)  # http: only; its operation metrics watch the LDAP server
    factory = ldap_factory(backend, config, reactor, observers=(web.operations,) if web else ())
    backend.status.server_stats = lambda: connection_attributes(factory.stats, factory.connections)
    top = service.MultiService()
    top.setName("giis")
    GIISMaintenance(backend, config.sweep_interval).setServiceParent(top)
    for endpoint in config.listen:
        ListenerService(endpoint, factory, reactor).setServiceParent(top)
    add_web_service(top, web, "giis", config.suffix, config, backend, factory, reactor)
    from gridinfo.triggers.service import add_trigger_service

    # rules over everything the GIIS holds (its backend's sync_view), alerts in its own tree
    top.triggers = add_trigger_service(top, backend, backend.tree, config, reactor)  # type: ignore[attr-defined]
    top.backend = backend  # type: ignore[attr-defined]
    top.factory = factory  # type: ignore[attr-defined]
    top.registrar = _registrar(config, config.suffix, top, reactor)  # type: ignore[attr-defined]
    return top
