"""Operator logs: one line per LDAP operation and result, in the shape of slapd's ``stats`` log.

Operators who run slapd read its ``loglevel stats`` lines; gridinfo writes the same shape when
``stats_log`` is ``text`` (or one JSON object per line with ``json``), so the same greps and
log parsers work::

    conn=1000 fd=0 ACCEPT from IP=127.0.0.1:43472
    conn=1000 op=0 BIND dn="" method=128
    conn=1000 op=0 RESULT tag=97 err=0 etime=0.000081 text=
    conn=1000 op=1 SRCH base="o=grid" scope=2 deref=0 filter="(objectClass=GlueCE)"
    conn=1000 op=1 SRCH attr=GlueCEUniqueID GlueCEStateFreeCPUs
    conn=1000 op=1 SEARCH RESULT tag=101 err=0 nentries=12 etime=0.000412 text=
    conn=1000 op=2 UNBIND
    conn=1000 fd=0 closed

Connection numbers start at 1000 as slapd's do; ``op`` counts a connection's requests from 0;
``etime`` is seconds from the request to its result; ``fd`` is always 0 (Twisted does not expose
it portably).  Lines go to the daemon's log under the namespace ``gridinfo.stats`` at level
info.  Off by default: a busy server writes two lines per search.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from twisted.logger import Logger

from gridinfo.directory.filters import filter_to_string
from gridinfo.ldap import wire

log = Logger(namespace="gridinfo.stats")

FORMATS = ("off", "text", "json")


class OperationObserver(Protocol):
    """What the LDAP server tells whoever watches its operations (the operator log, the metrics).

    ``conn`` numbers connections from 1000; ``op_number`` counts a connection's requests from 0;
    ``etime`` is seconds from the request to its result; ``entries`` is set for search results.
    """

    def accepted(self, conn: int, peer: str) -> None: ...

    def closed(self, conn: int) -> None: ...

    def request(self, conn: int, op_number: int, op: Any) -> None: ...

    def result(
        self, conn: int, op_number: int, tag: int, code: int, etime: float, message: str = "", entries: int | None = None
    ) -> None: ...


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe(op: Any) -> list[tuple[str, dict[str, Any]]]:
    """The request line(s) for ``op``: (slapd's verb and fields as text, the same as data)."""
    if isinstance(op, wire.SearchOp):
        flt = filter_to_string(op.filter)
        lines = [(f"SRCH base={_q(op.base)} scope={op.scope} deref={op.deref_aliases} filter={_q(flt)}",
                  {"op": "SRCH", "base": op.base, "scope": op.scope, "deref": op.deref_aliases, "filter": flt})]
        if op.attributes:
            lines.append((f"SRCH attr={' '.join(op.attributes)}", {"op": "SRCH", "attr": list(op.attributes)}))
        return lines
    if isinstance(op, wire.BindOp):
        method = 163 if op.sasl_mechanism is not None else 128
        extra = f" mech={op.sasl_mechanism}" if op.sasl_mechanism is not None else ""
        return [(f"BIND dn={_q(op.dn)} method={method}{extra}", {"op": "BIND", "dn": op.dn, "method": method})]
    if isinstance(op, wire.CompareOp):
        return [(f"CMP dn={_q(op.dn)} attr={_q(op.attribute)}", {"op": "CMP", "dn": op.dn, "attr": op.attribute})]
    if isinstance(op, wire.AddOp):
        return [(f"ADD dn={_q(op.dn)}", {"op": "ADD", "dn": op.dn})]
    if isinstance(op, (wire.DeleteOp, wire.ModifyOp, wire.ModifyDNOp)):
        verb = {wire.DeleteOp: "DEL", wire.ModifyOp: "MOD", wire.ModifyDNOp: "MODRDN"}[type(op)]
        return [(f"{verb} dn={_q(op.dn)}", {"op": verb, "dn": op.dn})]
    if isinstance(op, wire.ExtendedOp):
        return [(f"EXT oid={op.name}", {"op": "EXT", "oid": op.name})]
    if isinstance(op, wire.AbandonOp):
        return [(f"ABANDON msg={op.message_id}", {"op": "ABANDON", "msg": op.message_id})]
    if isinstance(op, wire.UnbindOp):
        return [("UNBIND", {"op": "UNBIND"})]
    return [(type(op).__name__, {"op": type(op).__name__})]


class OperationLog:
    """An :class:`OperationObserver` writing the lines; one per server factory."""

    def __init__(self, fmt: str = "text") -> None:
        if fmt not in FORMATS[1:]:
            raise ValueError(f"stats_log must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.json = fmt == "json"

    def _emit(self, text: str, data: dict[str, Any]) -> None:
        if self.json:
            log.info("{line}", line=json.dumps(data, separators=(",", ":")))
        else:
            log.info("{line}", line=text)

    def accepted(self, conn: int, peer: str) -> None:
        self._emit(f"conn={conn} fd=0 ACCEPT from IP={peer}", {"conn": conn, "event": "ACCEPT", "from": peer})

    def closed(self, conn: int) -> None:
        self._emit(f"conn={conn} fd=0 closed", {"conn": conn, "event": "closed"})

    def request(self, conn: int, op_number: int, op: Any) -> None:
        for text, data in describe(op):
            self._emit(f"conn={conn} op={op_number} {text}", {"conn": conn, "opn": op_number, **data})

    def result(
        self, conn: int, op_number: int, tag: int, code: int, etime: float, message: str = "", entries: int | None = None
    ) -> None:
        search = entries is not None
        verb = "SEARCH RESULT" if search else "RESULT"
        counted = f" nentries={entries}" if search else ""
        self._emit(
            f"conn={conn} op={op_number} {verb} tag={tag} err={code}{counted} etime={etime:.6f} text={message}",
            {"conn": conn, "opn": op_number, "event": verb, "tag": tag, "err": code,
             **({"nentries": entries} if search else {}), "etime": round(etime, 6), "text": message},
        )
