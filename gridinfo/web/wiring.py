"""Adding the web view to a daemon's MultiService (called by :mod:`gridinfo.service`).

Two steps, because the LDAP factory sits between them: :func:`instrument` wraps the backend the
factory serves (operation counters), :func:`add_web_service` adds the HTTP listeners, the
history sampler and the live-update source once the factory exists.  With no ``http:``
endpoints neither does anything, and the LDAP path is untouched.

Open pages hear of changes from the backend's change stream when it has one (``sync_view``: a
GRIS's tree, a GIIS over everything it holds), by polling otherwise.  The server status entry
under ``o=infosys`` gains ``GridinfoWebURL`` (``web.url``, else each listener's address) so that
a parent's hierarchy page can link to this node's own web view.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.application import service
from twisted.logger import Logger
from twisted.web import server

log = Logger()


def http_endpoint(endpoint: str) -> str:
    """Loopback unless configured otherwise: a ``tcp:``/``tcp6:`` endpoint naming no interface
    gets ``interface=127.0.0.1`` (``::1`` for tcp6); a bare port number means ``tcp:PORT``."""
    if endpoint.isdigit():
        endpoint = f"tcp:{endpoint}"
    kind, _, rest = endpoint.partition(":")
    if kind in ("tcp", "tcp6") and "interface=" not in rest:
        return f"{endpoint}:interface={'127.0.0.1' if kind == 'tcp' else chr(92) + ':' + chr(92) + ':1'}"
    return endpoint


class WebParts:
    """What the wiring keeps between its two steps (and what tests reach through ``top.web``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        from gridinfo.web.metrics import OperationMetrics

        self.operations = OperationMetrics(self.registry)
        self.app: Any = None
        self.root: Any = None
        self.sampler: Any = None
        self.live: Any = None
        self.history: Any = None
        self.listeners: list[Any] = []
        self.url = ""  # web.url: the published address when it is not the listener's own (a proxy)

    def urls(self) -> list[str]:
        """Each bound listener's address (unix sockets have none)."""
        out = []
        for listener in self.listeners:
            if listener.port is not None:
                address = listener.port.getHost()
                host = getattr(address, "host", None)
                if host is None:
                    continue
                if host in ("0.0.0.0", "::"):  # every interface: the name clients use
                    host = socket.getfqdn()
                host = f"[{host}]" if ":" in host else host
                out.append(f"http://{host}:{address.port}/")
        return out

    def advertised(self) -> list[str]:
        """What the server status publishes as GridinfoWebURL: ``web.url``, else each listener's address."""
        return [self.url] if self.url else self.urls()


def web_parts(config: Any) -> WebParts | None:
    """The web view's parts when ``http:`` is configured; their ``operations`` watch the LDAP server."""
    return WebParts() if config.http else None


def _listener_class() -> Any:
    from gridinfo.service import ListenerService

    class WebListener(ListenerService):
        bound: Callable[[], None] | None = None  # called once the port is bound

        def _listening(self, port: Any) -> None:
            self.port = port
            if self.bound is not None:
                self.bound()
            address = port.getHost()
            host = getattr(address, "host", "?")
            log.info("web view on http://{host}:{port}/ ({endpoint})",
                     host=f"[{host}]" if ":" in host else host, port=getattr(address, "port", 0),
                     endpoint=self.endpoint)

    return WebListener


def add_web_service(top: service.MultiService, parts: WebParts | None, kind: str, suffix: str, config: Any,
                    backend: Any, factory: Any, reactor: Any, *, providers: Any = None) -> None:
    """The HTTP listeners, sampler and live source under ``top``; ``top.web`` is the parts (or None)."""
    top.web = parts  # type: ignore[attr-defined]
    if parts is None:
        return
    from gridinfo.web.history import HistoryStore, Sampler
    from gridinfo.web.live import PollingChanges, StreamChanges
    from gridinfo.web.metrics import StateCollector, provider_run_histogram
    from gridinfo.web.reader import BackendReader
    from gridinfo.web.server import Root, WebApp

    web = config.web
    reader = BackendReader(backend, reactor, bind_dn=web.bind_dn)
    parts.history = HistoryStore(web.history or ":memory:", max_bytes=web.history_max_bytes)
    parts.sampler = Sampler(parts.history, reader, web.history_attributes, reactor, interval=web.sample_interval)
    if callable(getattr(backend, "sync_view", None)):  # the backend's change stream: no polling
        parts.live = StreamChanges(backend, reader, reactor, interval=web.live_interval)
    else:
        parts.live = PollingChanges(reader, reactor, interval=web.live_interval)
    parts.registry.register(StateCollector(kind, backend, factory, reactor, providers=providers,
                                           live=parts.live, sampler=parts.sampler))
    if providers is not None:
        providers.run_observers.append(provider_run_histogram(parts.registry))
    mount = None
    if kind == "giis":
        from gridinfo.directory.dn import DN, parse_dn
        from gridinfo.giis.namespace import mount_point

        def mount(child_suffix: str, parent_suffix: str = suffix, parent_shown_at: str = suffix) -> str:
            """Where a node's entries appear here: its mount point at its parent, moved from the
            parent's namespace to where the parent's entries appear here (composed level by level)."""
            parent = parse_dn(parent_suffix)
            at = mount_point(parse_dn(child_suffix), parent, backend.normaliser)
            return str(DN(tuple(at)[: len(at) - len(parent)] + tuple(parse_dn(parent_shown_at))))

    parts.url = web.url
    status = providers.status if providers is not None else getattr(backend, "status", None)
    if status is not None:  # the server status entry says where the web view is (GridinfoWebURL)
        own_stats = status.server_stats

        def server_stats() -> list[tuple[str, list[bytes]]]:
            urls = parts.advertised()
            return own_stats() + ([("GridinfoWebURL", [u.encode() for u in urls])] if urls else [])

        status.server_stats = server_stats
    def own_addresses() -> list[tuple[str, int, str]]:
        """Where this node's LDAP listeners are, as it registers them (a walk coming back is a cycle)."""
        from gridinfo.ldap.registrar import listener_host
        from gridinfo.service import ListenerService

        ports = [p for p in (s.bound_port() for s in top if type(s) is ListenerService) if p]
        hosts = {t.hostname for t in getattr(config, "register", ()) if t.hostname}
        hosts.add(listener_host(config.listen) or socket.getfqdn())
        return [(h, p, suffix) for h in sorted(hosts) for p in ports]

    parts.app = WebApp(kind, suffix, reader, reactor, history=parts.history, live=parts.live,
                       registry=parts.registry, history_attributes=web.history_attributes, mount=mount,
                       web_urls=parts.advertised, hierarchy_depth=web.hierarchy_depth,
                       hierarchy_timeout=web.hierarchy_timeout, own_addresses=own_addresses)
    parts.root = Root(parts.app, cache_seconds=min(web.live_interval, 5.0))
    site = _QuietSite(parts.root)
    site.displayTracebacks = False
    site.noisy = False
    parts.sampler.setServiceParent(top)
    listener = _listener_class()
    for endpoint in config.http:
        svc = listener(http_endpoint(endpoint), site, reactor)
        if providers is not None:  # publish the bound address now, not at the next provider run
            svc.bound = lambda: providers.publish_status(reactor.seconds())
        parts.listeners.append(svc)
        svc.setServiceParent(top)
    _Stopper(parts).setServiceParent(top)


class _QuietSite(server.Site):
    """No access log: open pages poll and listen, and the daemon's log is for LDAP and providers."""

    def log(self, request: Any) -> None:
        pass


class _Stopper(service.Service):
    def __init__(self, parts: WebParts):
        self.parts = parts

    def stopService(self) -> Any:
        super().stopService()
        self.parts.live.stop()
        return None
