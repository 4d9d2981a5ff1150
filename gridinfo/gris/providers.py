"""Provider folders, provider definitions, and the service that keeps their soft state.

Why one module: folder scanning and merged settings produce the definitions that
:class:`ProviderManager` reruns on every rescan, and nothing else uses them.

Discovery follows BDII's folders: every executable in a providers folder is a provider (prints
complete LDIF), every ``*.ldif`` file there is published as it is, and every executable in a
plugins folder prints ``changetype: modify`` LDIF applied to the providers' entries.  Dotfiles,
editor backups (``*~``, ``#...#``), package-manager leftovers, folders and files that are not
executable are skipped.  With ``bundled_providers: true`` gridinfo's own providers folder
(package data, :data:`gridinfo.providers_lib.BUNDLED_PROVIDERS`) is scanned after the configured
ones, so an installed gridinfo finds them.  A script carrying the marker line
``# gridinfo: python-provider`` in its first lines (every bundled provider does) is run with
the GRIS's own Python interpreter rather than the one its ``#!`` line finds on PATH, so it can
import gridinfo and its dependencies however the daemon was started.  A provider's settings are its own ``provider.<name>`` config entry,
else ``provider_defaults``, else :data:`gridinfo.config.BUILTIN_PROVIDER_DEFAULTS` (the one place
the built-in values are written; the config, including each provider's ``base`` and ``feeds``, is
checked by :func:`gridinfo.config.validate` before a GRIS is built).

:class:`ProviderManager` is the Twisted service around the pure
:class:`~gridinfo.gris.softstate.SoftStateTable`: it rescans the folders on a timer (a script
dropped in or removed is noticed without a restart), sweeps expired state and starts background
refreshes on a timer, starts one shared run when a search touches stale data and lets the search
wait for it up to the provider's timelimit, and keeps the ``o=infosys`` status entries current.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from gridinfo.config import BUILTIN_PROVIDER_DEFAULTS, GRISConfig, ProviderConfig
from gridinfo.directory.query import SearchRequest
from gridinfo.directory.tree import DirectoryTree
from gridinfo.errors import LDAPError
from gridinfo.gris.glue2 import GLUE2SelfPublisher
from gridinfo.gris.runner import ProviderRunner
from gridinfo.gris.softstate import (
    ProviderDefinition,
    RunOutput,
    RunReport,
    SoftStateTable,
    interpret_output,
)
from gridinfo.gris.status import StatusPublisher
from gridinfo.providers_lib import BUNDLED_PROVIDERS
from gridinfo.providers_lib.host import fqdn

log = Logger()

_SKIPPED_SUFFIXES = ("~", ".bak", ".orig", ".rej", ".swp", ".rpmsave", ".rpmnew", ".rpmorig", ".dpkg-old",
                     ".dpkg-new", ".dpkg-dist", ".disabled")


def skip_reason(path: Path) -> str | None:
    """Why a folder entry is not a provider, or None when it is one (or a static LDIF file)."""
    name = path.name
    if name.startswith("."):
        return "dotfile"
    if name.endswith(_SKIPPED_SUFFIXES) or (name.startswith("#") and name.endswith("#")):
        return "backup or leftover file"
    try:
        st = path.stat()
    except OSError as e:
        return f"cannot stat: {e.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if name.endswith(".ldif"):
        return None
    if not os.access(path, os.X_OK):
        return "not executable"
    return None


#: A line in the first :data:`MARKER_WINDOW` bytes of a script that says "run me with gridinfo's Python".
PYTHON_PROVIDER_MARKER = b"# gridinfo: python-provider"
MARKER_WINDOW = 1024


def interpreter_for(path: Path) -> str | None:
    """``sys.executable`` when ``path`` is a Python provider of ours (it carries the marker line)."""
    try:
        with path.open("rb") as f:
            head = f.read(MARKER_WINDOW)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    for line in head.splitlines()[1:]:
        if line.strip() == PYTHON_PROVIDER_MARKER:
            return sys.executable
    return None


def merged_settings(name: str, config: GRISConfig) -> ProviderConfig:
    """A provider's settings: its own entry, else the site defaults, else the built-in ones."""
    own = config.provider.get(name, ProviderConfig())
    values: dict[str, Any] = {}
    for f in fields(ProviderConfig):
        for layer in (own, config.provider_defaults, BUILTIN_PROVIDER_DEFAULTS):
            v = getattr(layer, f.name)
            if v is not None:
                values[f.name] = v
                break
        else:
            values[f.name] = None
    # env adds up: built-in, then the site's, then the provider's own
    env: dict[str, str] = {}
    for layer in (BUILTIN_PROVIDER_DEFAULTS, config.provider_defaults, own):
        env.update(layer.env or {})
    values["env"] = env
    return ProviderConfig(**values)


def make_definition(path: Path, kind: str, config: GRISConfig) -> ProviderDefinition:
    """The definition of the provider at ``path`` (``kind``: provider, plugin or static)."""
    s = merged_settings(path.name, config)
    assert s.ttl is not None and s.keepto is not None and s.timelimit is not None and s.retry is not None
    assert s.sizelimit is not None and s.max_output_bytes is not None and s.refresh is not None
    return ProviderDefinition(
        name=path.name,
        path=str(path),
        kind=kind,
        base=default_bases(s.base, config),
        ttl=s.ttl,
        keepto=s.keepto,
        timelimit=s.timelimit,
        sizelimit=s.sizelimit,
        max_output_bytes=s.max_output_bytes,
        retry=s.retry,
        refresh=s.refresh,
        args=tuple(s.args or ()),
        env=tuple(sorted((s.env or {}).items())),
        feeds=s.feeds,
        interpreter=interpreter_for(path) if kind != "static" else None,
    )


def default_bases(base: str | tuple[str, ...] | None, config: GRISConfig) -> str | tuple[str, ...]:
    """The subtrees a provider owns: its ``base`` (one DN or a list), else the GRIS's o=grid
    suffix and, unless GLUE 2 is off, its GLUE 2 suffix (so a GIP printing both just works)."""
    if isinstance(base, str) and base:
        return base
    if base:
        return tuple(b for b in base if b) or config.suffix
    return (config.suffix, config.glue2_suffix) if config.glue2_suffix else config.suffix


@dataclass(frozen=True)
class ScanResult:
    definitions: dict[str, ProviderDefinition]
    skipped: dict[str, str]  # path -> reason


def scan_folders(config: GRISConfig) -> ScanResult:
    """Every provider, plugin and static LDIF file in the configured folders.

    Names are file names; when two folders hold the same name the first folder wins.
    A folder that is missing is skipped (it may appear later).
    """
    definitions: dict[str, ProviderDefinition] = {}
    skipped: dict[str, str] = {}
    provider_folders = tuple(config.providers) + ((str(BUNDLED_PROVIDERS),) if config.bundled_providers else ())
    for folders, kind in ((provider_folders, "provider"), (config.plugins, "plugin")):
        for folder in folders:
            try:
                paths = sorted(Path(folder).iterdir())
            except OSError:
                continue
            for path in paths:
                reason = skip_reason(path)
                if reason is not None:
                    skipped[str(path)] = reason
                    continue
                if path.name in definitions:
                    skipped[str(path)] = f"name taken by {definitions[path.name].path}"
                    continue
                this_kind = "static" if kind == "provider" and path.name.endswith(".ldif") else kind
                if this_kind == "plugin" and path.name.endswith(".ldif"):
                    skipped[str(path)] = "static LDIF in a plugins folder"
                    continue
                if merged_settings(path.name, config).enabled is False:
                    skipped[str(path)] = "disabled in the config"
                    continue
                definitions[path.name] = make_definition(path, this_kind, config)
    return ScanResult(definitions, skipped)


class _Waiter:
    """One search waiting for some providers' runs, or its deadline, whichever comes first."""

    def __init__(self, reactor: Any, pending: int, timeout: float):
        self.pending = pending
        self.deferred: defer.Deferred[None] = defer.Deferred(lambda d: self._stop_timer())
        self.timer = reactor.callLater(timeout, self._fire)

    def _stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def one_done(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self._fire()

    def _fire(self) -> None:
        self._stop_timer()
        if not self.deferred.called:
            self.deferred.callback(None)


class ProviderManager(service.Service):
    """Runs a GRIS's providers and keeps their soft state and status entries (see module doc)."""

    def __init__(
        self,
        tree: DirectoryTree,
        config: GRISConfig,
        reactor: Any,
        *,
        runner: Any = None,
        server_name: str = "gris",
        vm_feed: Any = None,
    ):
        self.tree = tree
        #: a gridinfo.vm.feed.HypervisorFeed: the runs of ``feeds: vm`` providers go through it
        self.vm_feed = vm_feed
        self.config = config
        self.reactor = reactor
        self.table = SoftStateTable(tree, stamps=config.soft_state_stamps)
        self.runner = runner if runner is not None else ProviderRunner(
            reactor,
            max_concurrent=config.max_concurrent_providers,
            extra_env={"GRIDINFO_SUFFIX": config.suffix, "GRIDINFO_GLUE2_SUFFIX": config.glue2_suffix},
        )
        self.searches = 0
        #: called with (provider, seconds, ok) as each run ends (the web view's run-time histogram)
        self.run_observers: list[Callable[[str, float, bool], None]] = []
        self.status = StatusPublisher(
            tree, self.table, start_time=reactor.seconds(), server_name=server_name, searches=lambda: self.searches
        )
        self.glue2 = GLUE2SelfPublisher(
            tree, self.table, config.glue2_suffix, host=fqdn(), start_time=reactor.seconds(),
            site_id=config.glue2_site_id,
        )
        self._waiters: dict[str, list[_Waiter]] = {}
        self._watchers: dict[str, list[defer.Deferred[None]]] = {}
        self._loops: list[task.LoopingCall] = []
        self.skipped: dict[str, str] = {}

    def publish_status(self, now: float) -> None:
        """Rebuild the o=infosys status entries and, beside them, the GRIS's own GLUE 2 entries."""
        self.status.publish(now)
        self.glue2.publish(now)

    # -- service ------------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self.rescan()
        self.publish_status(self.reactor.seconds())
        for interval, call in ((self.config.rescan_interval, self.rescan), (self.config.sweep_interval, self.sweep)):
            if interval > 0:
                loop = task.LoopingCall(call)
                loop.clock = self.reactor
                loop.start(interval, now=True).addErrback(lambda f: log.failure("provider timer failed", f))
                self._loops.append(loop)

    def stopService(self) -> Any:  # noqa: N802
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        kill_all = getattr(self.runner, "kill_all", None)
        if kill_all is not None:
            kill_all()
        return super().stopService()

    # -- folders --------------------------------------------------------------------------------

    def rescan(self) -> None:
        """Notice providers dropped into or removed from the folders, and changed settings."""
        now = self.reactor.seconds()
        result = scan_folders(self.config)
        for path, reason in result.skipped.items():
            if self.skipped.get(path) != reason:
                log.info("not a provider: {path} ({reason})", path=path, reason=reason)
        self.skipped = result.skipped
        changed = False
        for name, definition in result.definitions.items():
            record = self.table.get(name)
            if record is None or record.retired or record.definition != definition:
                verb = "new" if record is None else "changed"
                self.table.define(definition)
                log.info(
                    "{verb} {kind} {provider}: {path} (ttl {ttl} s, timelimit {timelimit} s, refresh {refresh})",
                    verb=verb,
                    kind=definition.kind,
                    provider=name,
                    path=definition.path,
                    ttl=definition.ttl,
                    timelimit=definition.timelimit,
                    refresh=definition.refresh,
                )
                changed = True
        for name, record in list(self.table.records.items()):
            if name not in result.definitions and not record.retired:
                log.info(
                    "provider {provider} removed from its folder; its entries go when their state expires",
                    provider=name,
                )
                self.table.retire(name, now)
                changed = True
        if changed:
            self.publish_status(now)

    # -- time -----------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Expire soft state by the clock and start background refreshes that are due."""
        now = self.reactor.seconds()
        standing = bool(self.tree.changelog.subscriptions)
        for name in self.table.due_background(now, standing=standing, horizon=self.config.sweep_interval):
            self.refresh(name)  # before expiring: data whose time ends now stays while its refresh runs
        changes = self.expire(now)
        if changes:
            self.publish_status(now)

    def expire(self, now: float) -> list[Any]:
        changes = self.table.advance(now)
        for name, old, new in changes:
            log.info("provider {provider}: {old} -> {new}", provider=name, old=old.value, new=new.value)
        return changes

    # -- runs -------------------------------------------------------------------------------------

    def refresh(self, name: str) -> bool:
        """Start a run of ``name`` unless one is running; True when a run is (now) in progress."""
        record = self.table.get(name)
        if record is None:
            return False
        if record.running:
            return True
        now = self.reactor.seconds()
        if not self.table.start(name, now):
            return False
        definition = record.definition
        d = self.runner.run(definition)
        d.addCallback(self._finished, definition)
        d.addErrback(self._crashed, definition)
        return True

    def _crashed(self, failure: Any, definition: ProviderDefinition) -> None:
        log.failure("running provider {provider} failed", failure, provider=definition.name)
        now = self.reactor.seconds()
        self.table.fail(definition.name, now, "internal error", RunOutput(exit_code=None, spawn_error="internal error"))
        if self.expire(now):
            self.publish_status(now)
        self._wake(definition.name)

    def _finished(self, output: RunOutput, definition: ProviderDefinition) -> None:
        now = self.reactor.seconds()
        name = definition.name
        report: RunReport = interpret_output(definition, output, self.tree)
        for dn in report.outside:
            log.warn(
                "provider {provider}: entry {dn} is outside {base}; dropped",
                provider=name,
                dn=dn,
                base=definition.base_text,
            )
        observation = None
        if report.ok and definition.feeds == "vm" and self.vm_feed is not None:
            report, observation = self._observe(report, definition, now)
        if report.ok:
            for warning in self.table.succeed(name, now, report, output):
                log.warn("provider {provider}: {warning}", provider=name, warning=warning)
            log.info(
                "provider {provider} published {entries} entries in {duration:.3f} s",
                provider=name,
                entries=len(report.entries) or len(report.modifications),
                duration=output.duration,
            )
        else:
            self.table.fail(name, now, report.error or "failed", output)
            self.expire(now)  # past keepto, the data the run was to replace goes now
            for v in report.violations[1:20]:
                log.warn("provider {provider}: schema violation: {violation}", provider=name, violation=v)
            record = self.table.get(name)
            serving = record is not None and record.serving
            log.error(
                "provider {provider} failed: {error}; {consequence}",
                provider=name,
                error=report.error,
                exit=output.exit_code,
                failed=True,
                consequence="its last good data is served until its keepto" if serving else "it has no data to serve",
            )
        for observe in self.run_observers:
            observe(name, output.duration, report.ok)
        if observation is not None:
            try:
                self.vm_feed.deliver(observation)
            except Exception:  # noqa: BLE001 - the provider's own entries are installed already
                log.failure("provider {provider}: its observations could not be fed to the VM events", provider=name)
        self.publish_status(now)
        self._wake(name)

    def _observe(self, report: RunReport, definition: ProviderDefinition, now: float) -> tuple[RunReport, Any]:
        """A ``feeds: vm`` run: its snapshot as hypervisor events; the VM entries the sink publishes leave the report."""
        try:
            observation = self.vm_feed.observe(definition.name, [(e.dn, e.attributes) for e in report.entries], now)
        except Exception:  # noqa: BLE001 - a bad snapshot must not cost the provider its entries
            log.failure("provider {provider}: its output could not be read as hypervisor observations",
                        provider=definition.name)
            return report, None
        kept = tuple(e for i, e in enumerate(report.entries) if i not in observation.withheld)
        return replace(report, entries=kept), observation

    def _wake(self, name: str) -> None:
        for waiter in self._waiters.pop(name, []):
            waiter.one_done()
        for d in self._watchers.pop(name, []):
            d.callback(None)

    def run_finished(self, name: str) -> defer.Deferred[None]:
        """Fires when the run of ``name`` in progress ends (at once when none is running)."""
        record = self.table.get(name)
        if record is None or not record.running:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._watchers.setdefault(name, []).append(d)
        return d

    # -- searches -----------------------------------------------------------------------------------

    def prepare_search(self, request: SearchRequest) -> defer.Deferred[None] | None:
        """Before a search: expire state; if it touches stale data, refresh and return a wait.

        The wait fires when every run it started (or joined) ends, or after the largest
        timelimit among them; the search then answers with whatever is served by then.
        """
        self.searches += 1
        now = self.reactor.seconds()
        try:
            base_key = self.tree.key(request.base)
        except LDAPError:
            if self.expire(now):
                self.publish_status(now)
            return None  # the tree answers invalidDNSyntax
        names = [n for n in self.table.overlapping(base_key, request.scope) if self.table.wants_refresh(n, now)]
        waiter = None
        if names:
            timeout = max(self.table.records[n].definition.timelimit for n in names)
            waiter = _Waiter(self.reactor, len(names), timeout)
            for n in names:
                self._waiters.setdefault(n, []).append(waiter)
            for n in names:
                if not self.refresh(n):
                    waiting = self._waiters.get(n, [])
                    if waiter in waiting:
                        waiting.remove(waiter)
                        waiter.one_done()
        # expired after the refreshes started: data whose time ends now stays while its refresh runs
        if self.expire(now) or self.status.is_status_key(base_key) or not base_key:
            self.publish_status(now)
        if waiter is None or waiter.deferred.called:  # no run, or every run ended at once (static files)
            return None
        return waiter.deferred


def definitions_in(paths: Iterable[str], config: GRISConfig) -> list[ProviderDefinition]:
    """Definitions for explicit paths (for ``gridinfo-provider-check``): kind from the name."""
    out = []
    for p in paths:
        path = Path(p)
        kind = "static" if path.name.endswith(".ldif") else "provider"
        out.append(make_definition(path, kind, config))
    return out
