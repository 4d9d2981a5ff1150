"""The Twisted Web side: pages, the JSON API, live updates, /metrics and the static assets.

Every page is a server-rendered shell (navigation, headings, the table or plot it holds) that
``static/app.js`` fills from the page's JSON API and refreshes when :mod:`gridinfo.web.live`
says the directory changed (server-sent events on ``/api/events``).  Nothing is loaded from
anywhere but the daemon (the Content-Security-Policy says ``'self'``), and the listener is
read-only: anything but GET and HEAD gets 405.  The API is documented in docs/web.md.

Why one module: the pages, the API handlers and the resource that serves them share one
``WebApp`` (reader, clock, history, live source) and one error mapping; the page shells and the
page-specific work live elsewhere (``static/``, :mod:`views`, :mod:`hierarchy`, :mod:`history`).

Bad parameters get 400 with ``{"error": message}``; an unknown DN 404; an LDAP error the
backend raised (an invalid DN, a filter naming no attribute) 400 with the LDAP result code and
diagnostic; a failure of ours 500, logged.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from gridinfo.directory.query import Scope
from gridinfo.errors import LDAPError, ResultCode
from gridinfo.infosys import INFOSYS_DN
from gridinfo.web import hierarchy, views
from gridinfo.web.history import RANGES, HistoryStore
from gridinfo.web.reader import BackendReader

log = Logger()

PAGES = (
    ("/", "hierarchy", "Hierarchy"),
    ("/queues", "queues", "Sites and queues"),
    ("/vms", "vms", "VMs and jobs"),
    ("/network", "network", "Network paths"),
    ("/browse", "browse", "Browser"),
    ("/history", "history", "History"),
)
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
SCOPES = {"base": Scope.BASE, "one": Scope.ONE, "sub": Scope.SUB, "children": Scope.CHILDREN}
MAX_LIMIT = 10000
CSP = "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _asset(name: str) -> bytes:
    return (resources.files("gridinfo.web") / "static" / name).read_bytes()


class WebApp:
    """What the resources need: the reader, history, live source, metrics registry and node facts."""

    def __init__(self, kind: str, suffix: str, reader: BackendReader, reactor: Any, *,
                 history: HistoryStore | None = None, live: Any = None, registry: CollectorRegistry | None = None,
                 history_attributes: tuple[str, ...] = (), mount: Any = None,
                 web_urls: Callable[[], list[str]] = list, hierarchy_depth: int = 5, hierarchy_timeout: float = 5.0,
                 own_addresses: Callable[[], list[tuple[str, int, str]]] = list):
        """``mount(child_suffix, parent_suffix, parent_shown_at)``: where a GIIS shows a node's
        entries; ``web_urls()``: this node's own web view (what GridinfoWebURL says);
        ``own_addresses()``: the (host, port, suffix) it registers as (a walk coming back is a cycle)."""
        self.own_addresses = own_addresses
        self.kind = kind
        self.mount = mount
        self.web_urls = web_urls
        self.hierarchy_depth = hierarchy_depth
        self.hierarchy_timeout = hierarchy_timeout
        self.suffix = suffix
        self.reader = reader
        self.reactor = reactor
        self.history = history
        self.live = live
        self.registry = registry
        self.history_attributes = history_attributes
        self.assets = {name: _asset(name) for name in ASSETS}

    # -- pages -----------------------------------------------------------------------------------

    def page(self, name: str, title: str) -> bytes:
        nav = "".join(
            f'<a href="{path}"{" class=current" if page == name else ""}>{html.escape(label)}</a>'
            for path, page, label in PAGES
        )
        body = {
            "hierarchy": '<div id="node"></div><h2>The hierarchy below</h2><ul id="tree" class="tree"></ul>'
                         '<h2>Children</h2><table id="children" class="sortable"></table>'
                         '<table id="providers" class="sortable"></table>',
            "queues": '<h2>Sites</h2><table id="sites" class="sortable"></table>'
                      '<h2>Queues</h2><table id="queues" class="sortable"></table>',
            "vms": '<h2>Virtual machines</h2><table id="vms" class="sortable"></table>'
                   '<h2>Jobs</h2><table id="jobs" class="sortable"></table><div id="vm"></div>',
            "network": '<table id="paths" class="sortable"></table>',
            "browse": '<form id="search"><label>Base <input name="base" size="50"></label> '
                      '<label>Scope <select name="scope"><option>base</option><option>one</option>'
                      '<option selected>sub</option></select></label> '
                      '<label>Filter <input name="filter" size="40" value="(objectClass=*)"></label> '
                      '<button type="submit">Search</button></form><div id="entry"></div><div id="results"></div>',
            "history": '<form id="series-form"><label>Range <select name="range">'
                       + "".join(f"<option>{r}</option>" for r in RANGES) + "</select></label></form>"
                       '<div id="plot"></div><table id="series" class="sortable"></table>',
        }[name]
        text = (
            "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>gridinfo {html.escape(self.kind)} {html.escape(self.suffix)}: {html.escape(title)}</title>"
            '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
            '<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js" defer></script></head>'
            f'<body data-page="{name}" data-kind="{html.escape(self.kind)}" data-suffix="{html.escape(self.suffix)}">'
            f'<header><strong>gridinfo {html.escape(self.kind)}</strong> <code>{html.escape(self.suffix)}</code>'
            f'<nav>{nav}</nav><span id="live" title="live updates">…</span></header>'
            f'<main><h1>{html.escape(title)}</h1><p id="status" class="status"></p>{body}</main></body></html>\n'
        )
        return text.encode("utf-8")

    # -- the API ---------------------------------------------------------------------------------

    def api(self, path: str, args: dict[str, str]) -> defer.Deferred[Any]:
        handlers = {
            "/api/": self.api_index, "/api/hierarchy": self.api_hierarchy, "/api/queues": self.api_queues,
            "/api/vms": self.api_vms, "/api/vm": self.api_vm, "/api/paths": self.api_paths,
            "/api/entry": self.api_entry, "/api/search": self.api_search, "/api/history": self.api_history,
            "/api/history/series": self.api_series,
        }
        handler = handlers.get(path.rstrip("/") if path != "/api/" else path)
        if handler is None:
            return defer.fail(ApiError(404, f"no such API path {path!r} (see /api/)"))
        return defer.maybeDeferred(handler, args)

    def api_index(self, args: dict[str, str]) -> Any:
        return {"kind": self.kind, "suffix": self.suffix, "naming_contexts": self.data_bases(),
                "endpoints": ["/api/hierarchy", "/api/queues", "/api/vms", "/api/vm?dn=", "/api/paths",
                              "/api/entry?dn=", "/api/search?base=&scope=&filter=&attrs=&limit=",
                              "/api/history?dn=&attribute=&range=", "/api/history/series", "/api/events",
                              "/metrics"]}

    def data_bases(self) -> list[str]:
        return [b for b in self.reader.naming_contexts() if b.lower() != INFOSYS_DN]

    def search_all(self, filter_text: str, attributes: tuple[str, ...] = ()) -> defer.Deferred[tuple[list[Any], str]]:
        """One subtree search per naming context (not o=infosys); entries and any partial message."""
        bases = self.data_bases()
        d = defer.gatherResults([self.reader.search(b, Scope.SUB, filter_text, attributes) for b in bases],
                                consumeErrors=True)

        def merge(answers: list[Any]) -> tuple[list[Any], str]:
            entries = [e for a in answers for e in a.entries]
            message = "; ".join(a.message for a in answers if a.message)
            return entries, message

        return d.addCallback(merge).addErrback(_first_error)

    def api_hierarchy(self, args: dict[str, str]) -> Any:
        """This node from its status entries, and the whole tree below it (:mod:`gridinfo.web.hierarchy`)."""
        statuses = self.reader.search(INFOSYS_DN, Scope.ONE, "(objectClass=*)")
        probe = self.reader.search(self.suffix, Scope.BASE, "(objectClass=*)")
        d = defer.gatherResults([statuses, probe], consumeErrors=True).addErrback(_first_error)

        def build(answers: list[Any]) -> Any:
            status, own = answers
            server = [e for e in status.entries if views.Attrs(e[1]).has_class("GridinfoServerStatus")]
            children = [e for e in status.entries if views.Attrs(e[1]).has_class("GridinfoChildStatus")]
            providers = [e for e in status.entries if views.Attrs(e[1]).has_class("GridinfoProviderStatus")]
            node = views.hierarchy(self.kind, self.suffix, server, children, providers, self.reactor.seconds(),
                                   own.message)
            if node["entries"] is None:  # a GIIS: BDII's UpdateStats says (own entries and its children's)
                stats = [e for e in status.entries if views.Attrs(e[1]).has_class("UpdateStats")]
                node["entries"] = views.Attrs(stats[0][1]).integer("TotalEntries") if stats else None
            for child in node["children"]:
                try:
                    child["mount"] = self.mount(child["suffix"]) if self.mount else child["suffix"]
                except LDAPError:
                    child["mount"] = None
            walked = hierarchy.walk_below(children, self.reactor, depth=self.hierarchy_depth,
                                          timeout=self.hierarchy_timeout, own=self.own_addresses())

            def whole(nodes: list[Any]) -> Any:
                node["tree"] = tree = hierarchy.tree_json(node, nodes, self.web_urls(), self.mount)
                node["depth"] = self.hierarchy_depth
                node["unhealthy"] = hierarchy.count_unhealthy(tree)
                return node

            return walked.addCallback(whole)

        return d.addCallback(build)

    def api_queues(self, args: dict[str, str]) -> Any:
        flt = "(|(objectClass=GlueSite)(objectClass=GlueCE)(objectClass=GLUE2AdminDomain)(objectClass=GLUE2ComputingShare))"
        return self.search_all(flt, views.QUEUE_ATTRIBUTES).addCallback(
            lambda r: {**views.queues(r[0]), "partial": r[1]})

    def api_vms(self, args: dict[str, str]) -> Any:
        return self.search_all("(|(objectClass=GridinfoVM)(objectClass=GridinfoJob))", views.VM_ATTRIBUTES).addCallback(
            lambda r: {**views.vms_and_jobs(r[0], self.reactor.seconds()), "partial": r[1]})

    def api_vm(self, args: dict[str, str]) -> Any:
        dn = _required(args, "dn")
        d = self.reader.search(dn, Scope.BASE, "(objectClass=*)")

        def found(answer: Any) -> Any:
            if not answer.entries:
                raise ApiError(404, f"no entry {dn!r}")
            data = views.vms_and_jobs(answer.entries, self.reactor.seconds())
            item = (data["vms"] or data["jobs"] or [None])[0]
            if item is None:
                raise ApiError(404, f"{dn!r} is neither a GridinfoVM nor a GridinfoJob entry")
            attr = "GridinfoVMID" if data["vms"] else "GridinfoJobID"
            ident = views._escape_assertion(item["id"].encode())
            flt = f"(&(objectClass=GridinfoEvent)(GridinfoEventID=*:{ident}:*))" if attr == "GridinfoVMID" else \
                f"(&(objectClass=GridinfoEvent)(GridinfoEventID=*:*:{ident}:*))"
            return self.search_all(flt).addCallback(lambda r: {"entry": item, "events": views.events(r[0])})

        return d.addCallback(found).addErrback(_not_found, dn)

    def api_paths(self, args: dict[str, str]) -> Any:
        return self.search_all("(objectClass=GridinfoNetworkPath)", views.PATH_ATTRIBUTES).addCallback(
            lambda r: {"paths": views.paths(r[0]), "partial": r[1]})

    def api_entry(self, args: dict[str, str]) -> Any:
        dn = args.get("dn", self.suffix)
        entry = self.reader.search(dn, Scope.BASE, "(objectClass=*)")
        kids = self.reader.search(dn, Scope.ONE, "(objectClass=*)", ("objectClass",), size_limit=1000)
        d = defer.gatherResults([entry, kids], consumeErrors=True).addErrback(_first_error)

        def build(answers: list[Any]) -> Any:
            own, children = answers
            if not own.entries:
                raise ApiError(404, f"no entry {dn!r}")
            out = views.entry_view(*own.entries[0])
            out["children"] = sorted(c[0] for c in children.entries)
            out["children_truncated"] = children.code == ResultCode.SIZE_LIMIT_EXCEEDED
            out["partial"] = own.message or children.message
            numeric = {a.lower() for a in self.history_attributes}
            out["history"] = [a["name"] for a in out["attributes"] if a["name"].lower() in numeric]
            return out

        return d.addCallback(build).addErrback(_not_found, dn)

    def api_search(self, args: dict[str, str]) -> Any:
        base = args.get("base", self.suffix)
        scope_name = args.get("scope", "sub")
        if scope_name not in SCOPES:
            raise ApiError(400, f"scope: expected one of {', '.join(SCOPES)}, got {scope_name!r}")
        limit_text = args.get("limit", "500")
        if not limit_text.isdigit() or not 0 < int(limit_text) <= MAX_LIMIT:
            raise ApiError(400, f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit_text!r}")
        attrs = tuple(a for a in args.get("attrs", "").split(",") if a)
        flt = args.get("filter", "(objectClass=*)")
        if not flt.startswith("("):
            flt = f"({flt})"
        d = self.reader.search(base, SCOPES[scope_name], flt, attrs, size_limit=int(limit_text))
        return d.addCallback(lambda a: {
            "base": base, "scope": scope_name, "filter": flt, "partial": a.message,
            "truncated": a.code == ResultCode.SIZE_LIMIT_EXCEEDED,
            "entries": [views.entry_view(dn, at) for dn, at in a.entries],
        }).addErrback(_not_found, base)

    def api_history(self, args: dict[str, str]) -> Any:
        dn = _required(args, "dn")
        attribute = _required(args, "attribute")
        range_name = args.get("range", "hour")
        if range_name not in RANGES:
            raise ApiError(400, f"range: expected one of {', '.join(RANGES)}, got {range_name!r}")
        if attribute.lower() not in {a.lower() for a in self.history_attributes}:
            raise ApiError(400, f"attribute: {attribute!r} is not sampled (web.history_attributes: "
                                f"{', '.join(self.history_attributes)})")
        if self.history is None:
            raise ApiError(404, "no history store")
        # the entry must be visible to the web view's identity: history never shows more than LDAP
        check = self.reader.search(dn, Scope.BASE, "(objectClass=*)", ("1.1",))
        now = self.reactor.seconds()
        history = self.history

        def points(answer: Any) -> Any:
            if not answer.entries:
                raise ApiError(404, f"no entry {dn!r}")
            return defer.maybeDeferred(history.query, dn, attribute, range_name, now).addCallback(
                lambda pts: {"dn": dn, "attribute": attribute, "range": range_name, "now": now,
                             "points": [[t, v] for t, v in pts]})

        return check.addCallback(points).addErrback(_not_found, dn)

    def api_series(self, args: dict[str, str]) -> Any:
        if self.history is None:
            return {"series": []}
        return {"series": self.history.series(), "attributes": list(self.history_attributes)}


def _required(args: dict[str, str], name: str) -> str:
    value = args.get(name, "")
    if not value:
        raise ApiError(400, f"{name}: a value is required")
    return value


def _first_error(failure: Any) -> Any:
    """gatherResults wraps the first failure: unwrap it."""
    if isinstance(failure.value, defer.FirstError):
        return failure.value.subFailure
    return failure


def _not_found(failure: Any, dn: str) -> Any:
    if isinstance(failure.value, LDAPError):
        e = failure.value
        if e.code == ResultCode.NO_SUCH_OBJECT:
            raise ApiError(404, f"no entry {dn!r}")
        raise ApiError(400, f"{e.code.name} ({int(e.code)}): {e.message}")
    return failure


class Root(resource.Resource):
    isLeaf = True

    def __init__(self, app: WebApp, *, cache_seconds: float = 0.0):
        """``cache_seconds``: an API answer is reused this long, and identical requests made while
        one is being answered share it, so many open pages refreshing on the same change cost
        the directory one search each.  A change the live source announces ends the reuse: an
        answer is kept per live-update token, so a page refreshing on a change never gets the
        answer from before it."""
        super().__init__()
        self.app = app
        self.pages = {path: (name, title) for path, name, title in PAGES}
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...], str], tuple[float, bytes]] = {}
        self._inflight: dict[tuple[str, tuple[tuple[str, str], ...], str], list[defer.Deferred[bytes]]] = {}
        self.cache_hits = 0

    def render(self, request: Any) -> Any:
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", CSP.encode())
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")
            return self._json(request, {"error": "the web view is read-only: GET and HEAD only"}, 405)
        return super().render(request)

    def render_HEAD(self, request: Any) -> Any:
        return self.render_GET(request)

    def render_GET(self, request: Any) -> Any:
        path = request.path.decode("utf-8", "replace")
        try:
            args = {k.decode("utf-8"): v[-1].decode("utf-8") for k, v in request.args.items()}
        except UnicodeDecodeError:
            return self._json(request, {"error": "parameters must be UTF-8"}, 400)
        app = self.app
        if path in self.pages:
            request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
            return app.page(*self.pages[path])
        if path.startswith("/static/") and path[8:] in ASSETS:
            request.setHeader(b"Content-Type", ASSETS[path[8:]].encode())
            request.setHeader(b"Cache-Control", b"max-age=300")
            return app.assets[path[8:]]
        if path == "/favicon.ico":
            request.setHeader(b"Content-Type", b"image/svg+xml")
            return app.assets["favicon.svg"]
        if path == "/metrics":
            if app.registry is None:
                return self._json(request, {"error": "no metrics"}, 404)
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
            return generate_latest(app.registry)
        if path == "/api/events":
            return self._events(request)
        if path == "/api" or path.startswith("/api/"):
            return self._api(request, "/api/" if path in ("/api", "/api/") else path, args)
        return self._json(request, {"error": f"no such page {path!r}"}, 404)

    def _answer(self, path: str, args: dict[str, str]) -> defer.Deferred[bytes]:
        """The JSON body of an API answer or its failure; kept for ``cache_seconds``."""
        if not self.cache_seconds:
            return self.app.api(path, args).addCallback(_encode)
        now = self.app.reactor.seconds()
        live = self.app.live
        key = (path, tuple(sorted(args.items())), live.token if live is not None else "")
        kept = self._cache.get(key)
        if kept is not None and now - kept[0] < self.cache_seconds:
            self.cache_hits += 1
            return defer.succeed(kept[1])
        waiter: defer.Deferred[bytes] = defer.Deferred()
        waiting = self._inflight.get(key)
        if waiting is not None:  # the same question is being answered: share its answer
            self.cache_hits += 1
            waiting.append(waiter)
            return waiter
        waiting = self._inflight[key] = [waiter]
        for old in [k for k, (t, _) in self._cache.items() if now - t >= self.cache_seconds]:
            del self._cache[old]

        def settled(result: Any) -> None:
            del self._inflight[key]
            if isinstance(result, bytes):
                self._cache[key] = (now, result)  # failures are not kept
            for w in waiting:
                if isinstance(result, Failure):
                    w.errback(result)
                else:
                    w.callback(result)

        self.app.api(path, args).addCallback(_encode).addBoth(settled)
        return waiter

    def _api(self, request: Any, path: str, args: dict[str, str]) -> Any:
        d = self._answer(path, args)
        finished = [False]
        request.notifyFinish().addErrback(lambda _: finished.__setitem__(0, True))

        def ok(body: bytes) -> None:
            if not finished[0]:
                self._json(request, None, 200)
                request.write(body)
                request.finish()

        def failed(failure: Any) -> None:
            if finished[0]:
                return
            if isinstance(failure.value, ApiError):
                body = self._json(request, {"error": failure.value.message}, failure.value.status)
            elif isinstance(failure.value, LDAPError):
                e = failure.value
                body = self._json(request, {"error": f"{e.code.name} ({int(e.code)}): {e.message}"}, 400)
            else:
                log.failure("web API {path} failed", failure, path=path)
                body = self._json(request, {"error": "internal error (see the daemon's log)"}, 500)
            request.write(body)
            request.finish()

        d.addCallbacks(ok, failed).addErrback(lambda f: None)  # a failure is answered, and kept by no one
        return server.NOT_DONE_YET

    def _events(self, request: Any) -> Any:
        live = self.app.live
        if live is None:
            return self._json(request, {"error": "no live updates"}, 404)
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.write(f"retry: 5000\nevent: hello\ndata: {live.token}\n\n".encode())

        def send(token: str) -> None:
            request.write(f"event: change\ndata: {token}\n\n".encode())

        unsubscribe = live.subscribe(send)
        request.notifyFinish().addBoth(lambda _: unsubscribe())
        return server.NOT_DONE_YET

    @staticmethod
    def _json(request: Any, data: Any, status: int) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return _encode(data)


def _encode(data: Any) -> bytes:
    return json.dumps(data, indent=None, separators=(",", ":")).encode("utf-8")


def page_url(path: str, **params: str) -> str:
    return path + ("?" + urlencode(params) if params else "")
