"""The web view of a ``gris`` or ``giis``: HTML pages, a JSON API, history plots and /metrics.

Served by the daemon itself on the ``http:`` endpoints (off by default, loopback unless an
interface is named; docs/web.md).  Everything it shows comes through the daemon's own backend
search path, with the identity ``web.bind_dn`` (anonymous unless configured), so it never shows
what an LDAP client with that identity would be refused; the hierarchy page's walk below this
node's children asks those nodes over LDAP anonymously, as ``giis-tree`` does.  It is
read-only: GET and HEAD only.

    module     job
    ---------  ------------------------------------------------------------------------
    reader     searches through the backend (Deferreds, sliced cursors), decoded to dicts
    views      pure: the rows of each page from entries (hierarchy, queues, VMs, paths)
    history    the history store (SQLite, down-sampled, bounded) and its sampler
    hierarchy  the hierarchy page's tree: this node's registrations, then giis-tree's walk below
    live       change notification for open pages (the backend's change stream, else polling)
    metrics    Prometheus collectors over a per-service registry; backend instrumentation
    server     the Twisted Web resources: pages, /api/..., /api/events, /metrics, assets
"""
