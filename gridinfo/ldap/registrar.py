"""Registering upward: a GRIS or GIIS tells its parents it exists, every ``regperiod``.

Theory of operation
-------------------
For each parent (``register:`` in the config, ``--register URL`` on the command line) a
:class:`ParentRegistration` sends MDS2's soft-state message (an LDAP add of
``Mds-Vo-Op-name=register,<parent suffix>``, see :func:`registration_message`) shortly after
start, then every ``regperiod``.  The lease it asks for is ``ttl`` (about twice the period, so
one lost message is harmless).  A failure retries sooner, with exponential backoff from
``RETRY_MIN`` up to the regular period::

    state        event                 next attempt                log
    -----------  --------------------  --------------------------  -----------------------
    starting     start                 after ``first_delay``       -
    any          success               after ``regperiod``         info when state changes
    any          failure               after the backoff, doubled  warn when state changes
                                       (capped at ``regperiod``)   (or the error changes)

Nothing is logged per attempt while the state stays the same, so a parent that is down for a
day costs one line, and one more when it comes back.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gridinfo.config import RegisterConfig
from gridinfo.directory.gtime import format_generalized_time
from gridinfo.ldap.client import ClientResult, LDAPClient, LDAPURL

log = Logger()

RETRY_MIN = 5.0
DEFAULT_FIRST_DELAY = 1.0


def registration_message(
    *,
    host: str,
    port: int,
    suffix: str,
    now: float,
    ttl: float,
    keepto: float = 0.0,
    timeout: float = 20.0,
    cachettl: float = 30.0,
    size_limit: int = 0,
    bind_methods: str = "ANONYM-ONLY",
) -> list[tuple[str, list[bytes]]]:
    """The attributes of an MDS2 registration (as grid-info-soft-register sent them)."""

    def v(x: object) -> list[bytes]:
        return [str(x).encode("utf-8")]

    return [
        ("objectClass", [b"Mds", b"MdsVoOp", b"MdsService", b"MdsServiceLdap"]),
        ("Mds-Vo-Op-name", [b"register"]),
        ("Mds-Service-type", [b"ldap"]),
        ("Mds-Service-protocol", [b"0.1"]),
        ("Mds-Service-hn", v(host)),
        ("Mds-Service-port", v(port)),
        ("Mds-Service-Ldap-suffix", v(suffix)),
        ("Mds-Service-Ldap-sizelimit", v(size_limit)),
        ("Mds-Service-Ldap-timeout", v(int(timeout))),
        ("Mds-Service-Ldap-cachettl", v(int(cachettl))),
        ("Mds-Bind-Method-servers", v(bind_methods)),
        ("Mds-validfrom", v(format_generalized_time(now))),
        ("Mds-validto", v(format_generalized_time(now + ttl))),
        ("Mds-keepto", v(format_generalized_time(now + ttl + keepto))),
    ]


class ParentRegistration:
    """Keeps one registration with one parent alive."""

    def __init__(
        self,
        reactor: IReactorTime,
        target: RegisterConfig,
        *,
        suffix: str,
        host: str,
        port: int | Callable[[], int],
        client_factory: Callable[..., LDAPClient] | None = None,
        first_delay: float = DEFAULT_FIRST_DELAY,
    ):
        self.reactor = reactor
        self.target = target
        self.url = LDAPURL.parse(target.url)
        if not self.url.base:
            raise ValueError(f"register URL {target.url!r} names no suffix (ldap://host:port/mds-vo-name=<parent>,o=grid)")
        self.suffix = suffix
        self.host = host
        self.port = port
        self.first_delay = first_delay
        factory = client_factory or (lambda h, p, **kw: LDAPClient(reactor, h, p, **kw))
        self.client = factory(
            self.url.host,
            self.url.port,
            connect_timeout=target.timeout,
            bind_dn=target.bind_dn,
            password=target.password,
            **({"ldaps": True} if self.url.ldaps else {}),
            **({"sasl_external": True} if target.bind_method == "external" else {}),
        )
        self.state = "starting"
        self.last_error = ""
        self.successes = 0
        self.failures = 0
        self.backoff = RETRY_MIN
        self._call: IDelayedCall | None = None
        self._running = False

    @property
    def dn(self) -> str:
        return f"Mds-Vo-Op-name=register,{self.url.base}"

    def start(self) -> None:
        self._running = True
        self._schedule(self.first_delay)

    def stop(self) -> None:
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self.client.close()

    def _schedule(self, delay: float) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        if self._running:
            self._call = self.reactor.callLater(delay, self.register)

    def register(self) -> defer.Deferred[None]:
        """Send one registration now (the timer calls this; tests may too)."""
        t = self.target
        attrs = registration_message(
            host=self.host,
            port=self.port() if callable(self.port) else self.port,
            suffix=self.suffix,
            now=self.reactor.seconds(),
            ttl=t.ttl,
            keepto=t.keepto,
            timeout=t.timeout,
            cachettl=t.cachettl,
            bind_methods="AUTHC-ONLY" if t.bind_dn or t.bind_method == "external" else "ANONYM-ONLY",
        )
        d = self.client.add(self.dn, attrs, timeout=t.timeout)
        d.addCallbacks(self._answered, self._failed)
        # one connection per renewal, as MDS2's ldapadd did: a thousand registrants must not
        # hold a thousand connections (and the parent's connection limit) between renewals
        return d.addBoth(self._close_connection)

    def _close_connection(self, result: Any) -> Any:
        self.client.close()
        return result

    def _answered(self, result: ClientResult) -> None:
        if result.code != 0:
            self._failed(Failure(RuntimeError(f"refused ({result.code}): {result.message}")))
            return
        self.successes += 1
        if self.state != "registered":
            log.info("registered {suffix} with {parent}", suffix=self.suffix, parent=self.target.url)
        self.state = "registered"
        self.last_error = ""
        self.backoff = RETRY_MIN
        self._schedule(self.target.regperiod)

    def _failed(self, failure: Failure) -> None:
        self.failures += 1
        error = failure.getErrorMessage()
        if self.state != "failing" or error != self.last_error:
            log.warn(
                "cannot register {suffix} with {parent}: {error} (retrying with backoff)",
                suffix=self.suffix,
                parent=self.target.url,
                error=error,
            )
        self.state = "failing"
        self.last_error = error
        delay = min(self.backoff, self.target.regperiod)
        self.backoff = min(self.backoff * 2, max(self.target.regperiod, RETRY_MIN))
        self._schedule(delay)


class Registrar(service.Service):
    """Registers one server (GRIS or GIIS) with all its parents."""

    def __init__(
        self,
        reactor: IReactorTime,
        targets: Sequence[RegisterConfig],
        *,
        suffix: str,
        host: str = "",
        port: int | Callable[[], int] = 0,
        client_factory: Callable[..., LDAPClient] | None = None,
        first_delay: float = DEFAULT_FIRST_DELAY,
    ):
        self.parents = [
            ParentRegistration(
                reactor,
                t,
                suffix=suffix,
                host=t.hostname or host or socket.getfqdn(),
                port=t.port or port or 2135,  # a callable port is read at each registration
                client_factory=client_factory,
                first_delay=first_delay,
            )
            for t in targets
        ]

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Twisted's Service is untyped
        for p in self.parents:
            p.start()

    def stopService(self) -> Any:
        for p in self.parents:
            p.stop()
        return super().stopService()  # type: ignore[no-untyped-call]


def bound_port(listeners: Sequence[Any]) -> Callable[[], int]:
    """A function giving the TCP port the first started listener service actually bound."""

    def port() -> int:
        for listener in listeners:
            bound = listener.bound_port()
            if bound is not None:
                return int(bound)
        return 2135

    return port


def listener_host(endpoints: Sequence[str]) -> str:
    """The interface of the first endpoint that names one (``interface=127.0.0.1``), else ''."""
    for ep in endpoints:
        for part in ep.split(":"):
            if part.startswith("interface="):
                host = part[len("interface=") :].replace("\\", "")
                if host not in ("0.0.0.0", "::"):
                    return host
    return ""
