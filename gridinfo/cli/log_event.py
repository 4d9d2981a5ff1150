"""``gridinfo-log-event``: log a VM or job lifecycle event to a GRIS, spooling it when the GRIS is away.

    gridinfo-log-event KIND --source SOURCE (--vm ID | --job ID | --vm ID --job ID)
        [--seq N] [--time 20240501120000Z] [--attr KEY=VALUE]...
        [--server ldap://host:2135] [--bind-dn DN] [--password-file FILE]
        [--spool FILE] [--suffix mds-vo-name=local,o=grid] [--timeout SECONDS]
        [--ca FILE] [--cert FILE --key FILE]
    gridinfo-log-event --flush [--server ...] [--bind-dn ...] [--spool ...]

TLS: with ``--ca`` an ldap:// server is asked for StartTLS first and its certificate verified
against the CA and the server's name or address; ldaps:// is always TLS (against the system's
CAs without ``--ca``).  ``--cert``/``--key`` present a client certificate.

Exit status: 0 when the event is safe (delivered, or kept in the spool for later: a message on
stderr says so), 1 when the GRIS refused an event for good (the reason is printed; the event is
kept in the spool's rejected table), 2 for a bad command line, an invalid event or an unusable
spool (the event is not kept).
"""

from __future__ import annotations

import argparse
import os
import sys

from gridinfo.errors import GridinfoError, LDAPError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridinfo-log-event", description="Log a VM or job lifecycle event to a GRIS.")
    p.add_argument("kind", nargs="?", help="Register, Create, Running, HostDetail, ReallyRunning, Shutdown, Done, "
                                           "Failed, Relate or Unrelate")
    p.add_argument("--source", help="cloud, hypervisor, vm or batch")
    p.add_argument("--vm", dest="vm_id", help="the VM's identifier")
    p.add_argument("--job", dest="job_id", help="the job's identifier")
    p.add_argument("--seq", type=int, help="the source's sequence number (default: the spool numbers it)")
    p.add_argument("--time", help="when it happened, UTC generalized time such as 20240501120000Z (default: now)")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                   help="hostname, physical_host, owner, sources, requirements, runtime, tag.*, ... (repeatable)")
    p.add_argument("--server", default=os.environ.get("GRIDINFO_EVENT_SERVER", "ldap://localhost:2135"),
                   help="the GRIS (default: $GRIDINFO_EVENT_SERVER or ldap://localhost:2135)")
    p.add_argument("--bind-dn", default=os.environ.get("GRIDINFO_EVENT_BIND_DN", ""), help="DN to bind as")
    p.add_argument("--password-file", help="file holding the bind password (default: $GRIDINFO_EVENT_PASSWORD)")
    p.add_argument("--spool", help="spool file (default: $GRIDINFO_EVENT_SPOOL or /var/spool/gridinfo/events.sqlite)")
    p.add_argument("--suffix", default="mds-vo-name=local,o=grid", help="the GRIS's suffix")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait on the GRIS")
    p.add_argument("--ca", default=os.environ.get("GRIDINFO_EVENT_CA", ""),
                   help="CA certificates (PEM) verifying the GRIS; ldap:// then uses StartTLS "
                        "(default: $GRIDINFO_EVENT_CA)")
    p.add_argument("--cert", default=os.environ.get("GRIDINFO_EVENT_CERT", ""),
                   help="client certificate (PEM) to present (default: $GRIDINFO_EVENT_CERT)")
    p.add_argument("--key", default=os.environ.get("GRIDINFO_EVENT_KEY", ""),
                   help="its private key (PEM) (default: $GRIDINFO_EVENT_KEY)")
    p.add_argument("--flush", action="store_true", help="only deliver what waits in the spool")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from gridinfo.vm.client import EventTLS, Spool, default_spool_path, deliver, log_event
    from gridinfo.vm.events import parse_time

    tls = EventTLS(args.ca, args.cert, args.key)
    password = os.environ.get("GRIDINFO_EVENT_PASSWORD", "")
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as e:
            sys.stderr.write(f"gridinfo-log-event: cannot read {args.password_file}: {e.strerror}\n")
            return 2
    try:
        spool = Spool(args.spool or default_spool_path())
        try:
            if args.flush:
                report = deliver(spool, server=args.server, bind_dn=args.bind_dn, password=password,
                                 suffix=args.suffix, timeout=args.timeout, tls=tls)
            else:
                if not args.kind or not args.source:
                    parser.error("KIND and --source are needed (or --flush)")
                attributes = []
                for pair in args.attr:
                    key, eq, value = pair.partition("=")
                    if not eq:
                        parser.error(f"--attr {pair!r}: expected KEY=VALUE")
                    attributes.append((key, value))
                report = log_event(
                    args.kind, source=args.source, vm_id=args.vm_id, job_id=args.job_id, seq=args.seq,
                    time=parse_time(args.time) if args.time else None, attributes=dict(attributes),
                    server=args.server, bind_dn=args.bind_dn, password=password, spool=spool,
                    suffix=args.suffix, timeout=args.timeout, tls=tls,
                )
        finally:
            spool.close()
    except LDAPError as e:  # an invalid event
        sys.stderr.write(f"gridinfo-log-event: {e.message}\n")
        return 2
    except GridinfoError as e:
        sys.stderr.write(f"gridinfo-log-event: {e}\n")
        return 2
    for event, code, reason in report.rejected:
        sys.stderr.write(f"gridinfo-log-event: refused ({code}): {event.describe()}: {reason}\n")
    if report.error:
        sys.stderr.write(f"gridinfo-log-event: {report.error}; {report.pending} event(s) kept in the spool\n")
    if report.event is not None:
        sys.stdout.write(f"{report.event.event_id}\n")
    return 1 if report.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
