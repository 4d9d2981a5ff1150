"""``/metrics``: Prometheus text format over a per-service ``CollectorRegistry``.

Two kinds of figures:

* counted as they happen: :class:`OperationMetrics` is one of the LDAP server's operation
  observers (as the operator log is), so every operation it answers (bind, search, compare,
  add, extended, and the refused writes) counts by type and result code, with its latency;
  abandons count when asked.  The web view's own searches call the backend directly and are not
  counted as LDAP operations.
  Each provider run's duration goes into ``gridinfo_provider_run_seconds`` as the run ends
  (:func:`provider_run_histogram`, one of the provider manager's ``run_observers``).
* read when scraped (:class:`StateCollector`): entries, open connections, change streams and
  the listener's counters, provider runs, failures and last durations, providers and their
  entries by soft state (GRIS); registrations by status, children by health, each child's
  latency, entries and late answers (GIIS); live-view subscribers and history samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter as PromCounter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gridinfo import ber
from gridinfo.errors import ResultCode
from gridinfo.ldap import wire

#: response tag -> the operation's label
OPERATIONS = {
    ber.APP_BIND_RESPONSE: "bind", ber.APP_SEARCH_RESULT_DONE: "search", ber.APP_COMPARE_RESPONSE: "compare",
    ber.APP_ADD_RESPONSE: "add", ber.APP_MODIFY_RESPONSE: "modify", ber.APP_DEL_RESPONSE: "delete",
    ber.APP_MODIFY_DN_RESPONSE: "modrdn", ber.APP_EXTENDED_RESPONSE: "extended",
}

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: provider runs: a cat of a file to a batch system's slow command (timelimits are minutes at most)
RUN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def _code_name(code: int) -> str:
    try:
        return ResultCode(code).name.lower()
    except ValueError:
        return str(code)


class OperationMetrics:
    """The operation counters and histograms of one daemon, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry):
        self.operations = PromCounter(
            "gridinfo_ldap_operations", "LDAP operations answered, by type and result code",
            ["operation", "result"], registry=registry,
        )
        self.latency = Histogram(
            "gridinfo_ldap_operation_seconds", "Time from the request to its result, by operation type",
            ["operation"], buckets=LATENCY_BUCKETS, registry=registry,
        )

    # an OperationObserver of the LDAP server (gridinfo.ldap.oplog): every operation it answers

    def accepted(self, conn: int, peer: str) -> None:
        pass

    def closed(self, conn: int) -> None:
        pass

    def request(self, conn: int, op_number: int, op: Any) -> None:
        if isinstance(op, wire.AbandonOp):  # answered by nothing: counted when asked
            self.operations.labels("abandon", "none").inc()

    def result(
        self, conn: int, op_number: int, tag: int, code: int, etime: float, message: str = "", entries: int | None = None
    ) -> None:
        operation = OPERATIONS.get(tag, str(tag))
        self.operations.labels(operation, _code_name(code)).inc()
        self.latency.labels(operation).observe(etime)


def provider_run_histogram(registry: CollectorRegistry) -> Callable[[str, float, bool], None]:
    """``gridinfo_provider_run_seconds`` by provider; the returned callable observes one run."""
    runs = Histogram("gridinfo_provider_run_seconds", "Duration of each information provider run, by provider",
                     ["provider"], buckets=RUN_BUCKETS, registry=registry)

    def observe(provider: str, seconds: float, ok: bool) -> None:
        runs.labels(provider).observe(max(0.0, seconds))

    return observe


def _by_label(name: str, documentation: str, label: str, counts: Counter[str], values: tuple[str, ...]) -> Metric:
    """A gauge family with one sample per value of ``label`` (0 for the values not counted)."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value in values:
        family.add_metric([value], counts.get(value, 0))
    return family


class StateCollector(Collector):
    """Figures read from the daemon's objects when scraped (nothing is kept between scrapes)."""

    def __init__(self, kind: str, backend: Any, factory: Any, reactor: Any, *,
                 providers: Any = None, live: Any = None, sampler: Any = None):
        self.kind = kind
        self.backend = backend
        self.factory = factory
        self.reactor = reactor
        self.providers = providers
        self.live = live
        self.sampler = sampler

    def describe(self) -> Iterable[Metric]:
        return []  # collected at scrape time only: no names are checked at registration

    def collect(self) -> Iterable[Metric]:
        g = GaugeMetricFamily
        tree = self.backend.tree
        yield g("gridinfo_entries", "Entries held in the daemon's own tree (a GIIS: its own, not its children's)",
                value=len(tree))
        yield g("gridinfo_ldap_connections", "Open LDAP connections", value=self.factory.connections)
        stats = self.factory.stats
        yield g("gridinfo_ldap_change_streams", "Change-stream searches (RFC 4533 sync, persistent search) open now",
                value=stats.get("change_streams", 0))
        for key, help_text in (("failed_binds", "Binds refused (bad DN or password)"),
                               ("refused_connections", "Connections refused at the limits"),
                               ("aborted_connections", "Connections closed by the server for misbehaving")):
            yield CounterMetricFamily(f"gridinfo_ldap_{key}", help_text, value=stats.get(key, 0))
        if self.providers is not None:
            yield from self._providers()
        if self.kind == "giis":
            yield from self._children()
        if self.live is not None:
            yield g("gridinfo_web_live_subscribers", "Pages listening for live updates", value=self.live.subscribers)
        if self.sampler is not None:
            yield CounterMetricFamily("gridinfo_web_history_samples", "Values written to the history store",
                                      value=self.sampler.samples_written)

    def _providers(self) -> Iterable[Metric]:
        records = list(self.providers.table.records.values())
        runs = CounterMetricFamily("gridinfo_provider_runs", "Runs of each information provider", labels=["provider"])
        fails = CounterMetricFamily("gridinfo_provider_failures", "Failed runs of each provider", labels=["provider"])
        dur = GaugeMetricFamily("gridinfo_provider_last_duration_seconds", "Duration of each provider's last run",
                                labels=["provider"])
        ents = GaugeMetricFamily("gridinfo_provider_entries", "Entries of each provider's last good run",
                                 labels=["provider"])
        for r in records:
            runs.add_metric([r.name], r.runs)
            fails.add_metric([r.name], r.failures)
            ents.add_metric([r.name], r.last_entries)
            if r.last_run is not None:
                dur.add_metric([r.name], r.last_duration)
        yield from (runs, fails, dur, ents)
        states = ("never", "fresh", "stale", "gone")
        yield _by_label("gridinfo_softstate_providers", "Providers by the state of their data", "state",
                        Counter(r.state.value for r in records), states)
        served: Counter[str] = Counter()
        for r in records:
            served[r.state.value] += len(r.published)
        yield _by_label("gridinfo_softstate_entries", "Entries the providers last published, by the state of their data",
                        "state", served, states)
        yield CounterMetricFamily("gridinfo_gris_searches", "Searches that reached the provider manager",
                                  value=getattr(self.providers, "searches", 0))

    def _children(self) -> Iterable[Metric]:
        now = self.reactor.seconds()
        children = list(self.backend.children.all())
        yield _by_label("gridinfo_giis_registrations", "Children by registration status", "status",
                        Counter("STATIC" if c.lease is None else c.lease_state(now).value for c in children),
                        ("VALID", "INVALID", "STATIC"))
        yield _by_label("gridinfo_giis_children", "Children by health", "state",
                        Counter(c.stats.state for c in children), ("new", "ok", "slow", "unreachable", "invalid"))
        lat = GaugeMetricFamily("gridinfo_giis_child_latency_seconds", "Each child's last answer time", labels=["child"])
        up = GaugeMetricFamily("gridinfo_giis_child_up", "1 when the child's last contact succeeded", labels=["child"])
        ents = GaugeMetricFamily("gridinfo_giis_child_entries", "Entries of each child's last answer", labels=["child"])
        late = CounterMetricFamily("gridinfo_giis_child_late_answers", "Answers that came after the child's timeout",
                                   labels=["child"])
        misses = CounterMetricFamily("gridinfo_giis_child_cache_misses", "Searches forwarded to each child",
                                     labels=["child"])
        errors = CounterMetricFamily("gridinfo_giis_child_errors", "Failed exchanges with each child (no answer, "
                                     "an error, a dropped change stream)", labels=["child"])
        for c in children:
            s = c.stats
            if s.latency is not None:
                lat.add_metric([c.url], s.latency)
            up.add_metric([c.url], 1 if s.state == "ok" else 0)
            ents.add_metric([c.url], s.entries)
            late.add_metric([c.url], s.late_answers)
            misses.add_metric([c.url], s.cache_misses)
            errors.add_metric([c.url], s.errors)
        yield from (lat, up, ents, late, misses, errors)
        yield CounterMetricFamily("gridinfo_giis_cycles", "Registration cycles detected",
                                  value=self.backend.status.cycles)
