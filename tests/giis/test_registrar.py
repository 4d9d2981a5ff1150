"""Registering upward, on a task.Clock with a fake client: schedule, backoff, recovery (no sockets)."""

from __future__ import annotations

from twisted.internet import task

from gridinfo.config import RegisterConfig
from gridinfo.ldap.client import ClientResult
from gridinfo.ldap.registrar import RETRY_MIN, ParentRegistration
from tests.giis.fakes import FakeClient, FakeClients

PARENT = "ldap://top.example.org:2135/mds-vo-name=top,o=grid"


def make(regperiod: float = 60.0) -> tuple[ParentRegistration, task.Clock, FakeClient]:
    clock = task.Clock()
    clients = FakeClients()
    reg = ParentRegistration(
        clock, RegisterConfig(url=PARENT, regperiod=regperiod, ttl=2 * regperiod), suffix="mds-vo-name=local,o=grid",
        host="ce.example.org", port=2135, client_factory=clients, first_delay=1.0,
    )
    return reg, clock, clients.made[("top.example.org", 2135)]


def attempts_at(reg: ParentRegistration, clock: task.Clock, client: FakeClient, until: float, outcome: str) -> list[float]:
    """Advance the clock second by second to ``until``; answer each attempt; return their times."""
    times: list[float] = []
    base = len(client.adds)  # earlier attempts were answered already
    while clock.seconds() < until:
        clock.advance(1)
        while len(client.adds) > base + len(times):
            times.append(clock.seconds())
            d = client.adds[base + len(times) - 1][2]
            if outcome == "refuse":
                d.callback(ClientResult(code=50, message="no"))
            elif outcome == "down":
                d.errback(ConnectionRefusedError("connection refused"))
            else:
                d.callback(ClientResult())
    return times


def test_first_registration_after_first_delay_then_every_regperiod() -> None:
    """A GRIS registers about a second after start and renews every regperiod, closing the connection each time."""
    reg, clock, client = make(regperiod=60)
    reg.start()
    times = attempts_at(reg, clock, client, 200, "ok")
    assert times == [1, 61, 121, 181]
    assert reg.state == "registered" and reg.successes == 4
    assert client.closed == 4  # one connection per renewal, as MDS2's ldapadd
    dn, attrs, _ = client.adds[0]
    assert dn == "Mds-Vo-Op-name=register,mds-vo-name=top,o=grid"
    assert dict(attrs)["Mds-Service-hn"] == [b"ce.example.org"]


def test_a_parent_that_is_down_is_retried_with_doubling_backoff_capped_at_regperiod() -> None:
    """Failures retry after 5, 10, 20, 40 s, then every regperiod; one warning, not one per attempt."""
    reg, clock, client = make(regperiod=60)
    reg.start()
    times = attempts_at(reg, clock, client, 300, "down")
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[:4] == [RETRY_MIN, 2 * RETRY_MIN, 4 * RETRY_MIN, 8 * RETRY_MIN]
    assert all(g == 60 for g in gaps[4:]) and len(gaps) > 4
    assert reg.state == "failing" and "refused" in reg.last_error


def test_a_refusal_backs_off_and_a_later_success_resets_the_backoff() -> None:
    """A parent that refuses (policy) is retried with backoff; once it accepts, renewals are every regperiod
    again and the next failure starts from the shortest retry."""
    reg, clock, client = make(regperiod=60)
    reg.start()
    attempts_at(reg, clock, client, 20, "refuse")  # at 1, 6, 16
    assert reg.failures == 3 and reg.state == "failing" and "refused (50)" in reg.last_error
    times = attempts_at(reg, clock, client, 100, "ok")
    assert times == [36, 96] and reg.state == "registered"
    assert reg.backoff == RETRY_MIN
    (retry,) = attempts_at(reg, clock, client, 160, "down")
    assert retry == 156 and reg._call.getTime() == 156 + RETRY_MIN


def test_stop_cancels_the_next_attempt() -> None:
    """A stopped service sends nothing more."""
    reg, clock, client = make()
    reg.start()
    reg.stop()
    clock.advance(1000)
    assert client.adds == []
