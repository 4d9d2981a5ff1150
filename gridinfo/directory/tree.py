"""The directory tree: entries by canonical DN key, a children index, equality indexes.

Why one module: :class:`DirectoryTree` is one data structure whose indexes (children, equality,
objectClass), CSNs and change log must be updated together on every add, modify and remove; its
helpers here are the CSN and timestamp formats it stamps entries with.

Theory of operation
-------------------
Entries are immutable and keyed by the canonical key of their DN (see :mod:`.dn`).  The tree
keeps, beside the main ``key -> Entry`` dict:

* ``children``: parent key -> {child key: None} (insertion ordered), so one-level search and
  subtree walks never scan siblings;
* ``subtree_sizes``: key -> number of entries at and below it, kept up to date on add/remove,
  which lets a subtree search choose between walking the subtree and scanning an index;
* equality indexes: attribute key -> normalised value -> {entry key}; ``objectClass`` is
  always indexed, by each class *and its superclasses* (so ``objectClass=GlueTop`` finds
  GlueCE entries, as in OpenLDAP).

An entry whose parent is missing is still stored and searchable (provider output does not
always come parent first); it becomes reachable by one-level and subtree walks when its parent
arrives, because the children index is keyed by the parent's key, not by the parent object.

Operational attributes
----------------------
Beside what an entry holds, the tree answers the operational attributes slapd keeps, for
``+`` or when named (never for ``*`` alone), and in filters (presence, equality, ordering,
substrings, extensible match, with the schema's matching rules):

* ``entryDN``, ``subschemaSubentry``, ``hasSubordinates`` and ``structuralObjectClass`` are
  computed from the entry and the children index (``entryDN`` spells each attribute type as
  the schema names it, ``Mds-Vo-name=local,o=grid``, as slapd does);
* ``createTimestamp``, ``modifyTimestamp`` and ``entryCSN`` come from ``meta``, a side table
  ``key -> (create CSN, modify CSN)`` written by :meth:`DirectoryTree.add` and
  :meth:`DirectoryTree.remove`, so plain searches pay nothing for them.  A CSN is one integer,
  ``microseconds << 24 | counter``, from the injected wall clock (``wallclock``; daemons pass
  the reactor's ``seconds``), strictly increasing within the tree: two changes in one
  microsecond (or a clock that steps back) take the last CSN's time and the next counter.  It
  is written in OpenLDAP's form ``YYYYmmddHHMMSS.ffffffZ#cccccc#000#000000`` (replica id 0)
  and the timestamps as ``YYYYmmddHHMMSSZ``, the CSN's time in whole seconds, as slapd does;
* ``entryUUID`` is the name-based (SHA-1, RFC 4122 version 5) UUID of the entry's canonical
  DN key under the fixed namespace :data:`ENTRY_UUID_NAMESPACE`, in RFC 4530's string form:
  the same DN has the same entryUUID across refreshes, restarts and removal then re-add
  (which gives it a new createTimestamp), and no state is kept for it;
* ``contextCSN``, on the entries with no parent in the tree (the naming contexts
  ``o=grid``, ``o=glue``, ``o=infosys``...), is the tree's newest CSN (:attr:`context_csn`),
  as slapd's syncprov overlay publishes it on a database suffix; one tree is one database, so
  every naming context shows the same value.

An entry added again with the same key moves its ``modifyTimestamp``/``entryCSN`` only when
its *content* changed: its DN as spelled, or any attribute value other than the freshness
stamps soft state rewrites on every run.  :data:`FRESHNESS_STAMPS` is that set
(``Mds-validfrom``, ``Mds-validto``); :data:`SOFTSTATE_STAMPS` adds ``GLUE2EntityCreationTime``,
which soft state passes when the stamp on the entry is its own (not the provider's).  The
comparison costs one tuple comparison when nothing at all changed.  :meth:`DirectoryTree.touch`
moves an entry's ``modifyTimestamp`` whatever its content (BDII's ``UpdateStats`` entry moves
on every update cycle even when its figures do not).  ``changes`` counts, since the tree was
made, the entries that were new, modified (content) and deleted.

Search returns encoded ``SearchResultEntry`` ops.  It is synchronous unless the caller asks
for slices (the GRIS's server does): then a search not finished within one slice of CPU time
returns with a cursor the server drives on later reactor turns (:mod:`.cursor`).
"""

from __future__ import annotations

import calendar
import functools
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gridinfo.directory import filters as F
from gridinfo.directory.changes import LOG_CAPACITY, Change, ChangeLog
from gridinfo.directory.cursor import SLICE_SECONDS, SearchCursor
from gridinfo.directory.dn import DNNormaliser, escape_value, is_descendant_key, parent_key, parse_dn
from gridinfo.directory.entry import Entry, EntryBuilder, Shape
from gridinfo.directory.evaluate import FilterCompiler
from gridinfo.directory.query import Scope, SearchRequest, SearchResult
from gridinfo import ber
from gridinfo.errors import InvalidDNSyntax, NoSuchObject, ResultCode

if TYPE_CHECKING:
    from gridinfo.directory.schema import Schema

#: operational attributes ``+`` returns, in this order (``contextcsn`` on naming contexts only)
OPERATIONAL = (
    "structuralobjectclass",
    "entryuuid",
    "creatorsname",
    "createtimestamp",
    "entrycsn",
    "modifiersname",
    "modifytimestamp",
    "entrydn",
    "subschemasubentry",
    "hassubordinates",
    "contextcsn",
)
_OPERATIONAL_SET = frozenset(OPERATIONAL)
#: operational attributes a filter can test (slapd's stored ones plus entryDN and hasSubordinates)
FILTERABLE = frozenset(
    {"structuralobjectclass", "entryuuid", "createtimestamp", "modifytimestamp", "entrycsn", "entrydn",
     "hassubordinates", "contextcsn", "creatorsname", "modifiersname"}
)

#: attributes soft state rewrites on every run: not content (see the theory of operation)
FRESHNESS_STAMPS: frozenset[str] = frozenset({"mds-validfrom", "mds-validto"})
#: ... and GLUE2EntityCreationTime, when soft state (not the provider) stamped it
SOFTSTATE_STAMPS: frozenset[str] = FRESHNESS_STAMPS | {"glue2entitycreationtime"}

#: entryUUID is uuid5(ENTRY_UUID_NAMESPACE, canonical DN key): fixed forever, never change it
ENTRY_UUID_NAMESPACE = uuid.UUID("8c663064-bae7-4e0c-9246-0c20d7a7e64c")

_CSN_COUNTER_BITS = 24
_CSN_COUNTER_MASK = (1 << _CSN_COUNTER_BITS) - 1


def entry_uuid(key: str) -> str:
    """The entryUUID of the entry whose canonical DN key is ``key`` (RFC 4530 string form)."""
    return str(uuid.uuid5(ENTRY_UUID_NAMESPACE, key))


@functools.lru_cache(maxsize=65536)
def entry_uuid_bytes(key: str) -> bytes:
    """The same UUID as :func:`entry_uuid`, as the 16 octets RFC 4533 sends."""
    return uuid.uuid5(ENTRY_UUID_NAMESPACE, key).bytes


def csn_seconds(csn: int) -> float:
    return (csn >> _CSN_COUNTER_BITS) / 1e6


def format_timestamp(csn: int) -> str:
    """``YYYYmmddHHMMSSZ`` of a CSN's time (whole seconds, UTC), as slapd's timestamps."""
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime((csn >> _CSN_COUNTER_BITS) // 1_000_000))


def format_csn(csn: int) -> str:
    """OpenLDAP's CSN text: ``YYYYmmddHHMMSS.ffffffZ#counter#sid#mod`` (sid and mod 0)."""
    us = csn >> _CSN_COUNTER_BITS
    whole, frac = divmod(us, 1_000_000)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(whole))
    return f"{stamp}.{frac:06d}Z#{csn & _CSN_COUNTER_MASK:06x}#000#000000"


_CSN_TEXT = re.compile(r"(\d{14})\.(\d{6})Z#([0-9a-fA-F]{6})#([0-9a-fA-F]{3})#([0-9a-fA-F]{6})\Z")


def parse_csn(text: str) -> int | None:
    """The CSN :func:`format_csn` wrote as ``text``; None for another form or server id."""
    m = _CSN_TEXT.match(text)
    if m is None or int(m.group(4), 16) != 0:
        return None
    try:
        whole = calendar.timegm(time.strptime(m.group(1), "%Y%m%d%H%M%S"))
    except ValueError:
        return None
    return ((whole * 1_000_000 + int(m.group(2))) << _CSN_COUNTER_BITS) | int(m.group(3), 16)


def _same_content(old: Entry, new: Entry, stamps: Collection[str]) -> bool:
    """Same DN spelling and the same values, freshness stamps aside (names' case aside)."""
    if old.dn != new.dn:
        return False
    if old.encoded == new.encoded:  # the DN, the names as spelled and every value
        return True
    a = {k: v for k, v in zip(old.shape.names, old.values) if k not in stamps}
    b = {k: v for k, v in zip(new.shape.names, new.values) if k not in stamps}
    return a == b


_OPERATIONAL_NAMES = {
    "structuralobjectclass": b"structuralObjectClass",
    "entryuuid": b"entryUUID",
    "creatorsname": b"creatorsName",
    "createtimestamp": b"createTimestamp",
    "entrycsn": b"entryCSN",
    "modifiersname": b"modifiersName",
    "modifytimestamp": b"modifyTimestamp",
    "entrydn": b"entryDN",
    "subschemasubentry": b"subschemaSubentry",
    "hassubordinates": b"hasSubordinates",
    "contextcsn": b"contextCSN",
}


@dataclass
class SyncView:
    """A change-stream search as the tree sees it: see :meth:`DirectoryTree.sync_view`."""

    entries: list[Entry]
    visible: Callable[[Entry], bool]
    encode: Callable[[Entry], bytes]
    changelog: ChangeLog
    #: equal for views with the same ``visible`` (base, scope, filter) of the same tree; None: unknown
    group: Hashable | None = None
    #: equal for views with the same ``encode`` (attribute selection); None: unknown
    encoding: Hashable | None = None


#: An equality index: normalised value -> the key of the one entry that has it, or a dict of
#: the keys (in insertion order) when several do.  Most indexed GLUE values are IDs held by one
#: entry each: a dict per such value cost ~180 bytes (5.5 MiB at 100k GLUE 1.3 entries).
EqualityIndex = dict[object, "str | dict[str, None]"]

#: Shapes whose index rules are kept (:meth:`DirectoryTree._rules_for`); emptied when full
_SHAPE_RULES_MAX = 4096


def index_add(index: EqualityIndex, value: object, key: str) -> None:
    bucket = index.get(value)
    if bucket is None:
        index[value] = key
    elif isinstance(bucket, str):
        if bucket != key:
            index[value] = {bucket: None, key: None}
    else:
        bucket[key] = None


def index_remove(index: EqualityIndex, value: object, key: str) -> None:
    bucket = index.get(value)
    if bucket is None:
        return
    if isinstance(bucket, str):
        if bucket == key:
            del index[value]
        return
    bucket.pop(key, None)
    if len(bucket) == 1:
        index[value] = next(iter(bucket))
    elif not bucket:
        del index[value]


#: Candidate lists at most this long are answered at once (:meth:`DirectoryTree._answer_small`).
_SMALL_ANSWER = 64

#: Bounds of a tree's remembered answers (``answer_cache``): answers, and entries in all (each
#: a reference to an entry's encoding, not a copy).
_ANSWERS_MAX = 64
#: Subtree key lists kept (:meth:`DirectoryTree.subtree_keys`): at most this many bases, this
#: many keys in all (~8 bytes each), and only subtrees of at least ``_SUBTREE_KEPT_MIN`` keys,
#: whose walk costs more than the lookup.
_SUBTREES_MAX = 1024
_SUBTREE_KEYS_MAX = 262_144
_SUBTREE_KEPT_MIN = 32
_ANSWERS_MAX_ENTRIES = 500_000


def _copy_result(result: SearchResult) -> SearchResult:
    return SearchResult(list(result.entries), result.code, result.matched_dn, result.message, list(result.references))


class DirectoryTree:
    """An in-memory DIT with indexes.  Not thread-safe; lives in the reactor thread."""

    def __init__(
        self,
        schema: Schema,
        *,
        indexed: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        slice_seconds: float = SLICE_SECONDS,
        changelog_capacity: int = LOG_CAPACITY,
        answer_cache: bool = False,
    ):
        """``clock`` times searches (time limits, slices); ``wallclock`` (seconds since the
        epoch) stamps entries: createTimestamp, modifyTimestamp, entryCSN.  ``answer_cache``:
        remember large answers until the tree changes (:meth:`search`)."""
        self.schema = schema
        #: bumped by every add, remove and touch: a remembered answer holds while it is unchanged
        self.generation = 0
        self._answers: OrderedDict[tuple[Any, ...], SearchResult] | None = OrderedDict() if answer_cache else None
        self._answers_generation = 0
        self._answers_entries = 0
        self.slice_seconds = slice_seconds
        self.builder = EntryBuilder(schema)
        self.normaliser: DNNormaliser = self.builder.dn_normaliser
        self.compiler = FilterCompiler(schema, operational=self._filter_values, operational_keys=FILTERABLE)
        self.clock = clock
        self.wallclock = wallclock
        #: key -> its CSN while never modified, else (create CSN, modify CSN): a tuple per
        #: entry cost 56 bytes that most entries (loaded once) never need; read with :meth:`csns`
        self.meta: dict[str, int | tuple[int, int]] = {}
        self.context_csn = 0  # the newest CSN given (0: none yet)
        self.changes = [0, 0, 0]  # entries new, modified (content), deleted since the tree was made
        #: recent changes by CSN, offered to change-stream subscribers (:mod:`.changes`)
        self.changelog = ChangeLog(changelog_capacity)
        # a cookie from before this tree existed (another process: the log was lost with it) names
        # changes the log never saw; it must get a full refresh, not "what changed since"
        self.changelog.horizon = int(wallclock() * 1_000_000) << _CSN_COUNTER_BITS
        self.entries: dict[str, Entry] = {}
        self.children: dict[str, dict[str, None]] = {}
        self.subtree_sizes: dict[str, int] = {}
        #: base key -> its subtree_keys(), until a key is added or removed below it (see there)
        self._subtrees: OrderedDict[str, list[str]] = OrderedDict()
        self._subtree_keys_kept = 0
        self.oc_index: dict[str, dict[str, None]] = {}
        self.eq_indexes: dict[str, EqualityIndex] = {}
        for name in indexed:
            m = schema.matching(name)
            if m is not None and m.key != "objectclass" and m.equality is not None and m.key not in _OPERATIONAL_SET:
                self.eq_indexes[m.key] = {}
        #: (attribute key, its index, its equality normaliser) for each equality index, looked up once
        self._eq_rules: list[tuple[str, EqualityIndex, Callable[[bytes], object]]] = []
        #: shape -> the rules of :attr:`_eq_rules` for the attributes it has (see _rules_for)
        self._shape_rules: dict[Shape, list[tuple[str, EqualityIndex, Callable[[bytes], object]]]] = {}
        #: filter attribute -> how an equality on it is answered from an index (see _exact_keys)
        self._exact_rules: dict[str, bool | tuple[EqualityIndex, Callable[[bytes], object]]] = {}
        self._exact_rules_indexes = 0

    def _index_rules(self) -> list[tuple[str, EqualityIndex, Callable[[bytes], object]]]:
        """:attr:`_eq_rules`, remade when an index was added to :attr:`eq_indexes` since
        (indexes are only ever added, as :mod:`gridinfo.vm.backend` does)."""
        rules = self._eq_rules
        if len(rules) != len(self.eq_indexes):
            rules = self._eq_rules = []
            self._shape_rules.clear()  # made of the old rules
            for k, index in self.eq_indexes.items():
                m = self.schema.matching(k)
                assert m is not None and m.equality is not None
                rules.append((k, index, m.equality))
        return rules

    # -- updates ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def lookup(self, dn: str) -> Entry | None:
        return self.entries.get(self.key(dn))

    def key(self, dn: str) -> str:
        return self.normaliser.key(dn)

    def next_csn(self) -> int:
        """A new CSN from the wall clock, greater than every CSN given before in this tree."""
        us = int(self.wallclock() * 1_000_000)
        last = self.context_csn
        csn = us << _CSN_COUNTER_BITS
        if csn <= last:
            csn = last + 1
        self.context_csn = csn
        return csn

    def add(self, entry: Entry, *, stamps: Collection[str] = FRESHNESS_STAMPS) -> Entry | None:
        """Insert or replace an entry; returns the entry it replaced, if any.

        A new key gets its createTimestamp; a replaced entry keeps its modifyTimestamp and
        entryCSN unless its content changed (``stamps``: the attributes that are not content).
        A new entry, or one whose content changed, is a change in :attr:`changelog`.
        """
        key = entry.key
        self.generation += 1
        old = self.entries.get(key)
        changed = True
        if old is not None:
            self._unindex(old)
            if _same_content(old, entry, stamps):
                changed = False
            else:
                csn = self.next_csn()
                created = self.csns(key)
                self.meta[key] = (created[0] if created is not None else csn, csn)
                self.changes[1] += 1
        else:
            csn = self.next_csn()
            self.meta[key] = csn
            self.changes[0] += 1
            pk = parent_key(key)
            if pk is not None:
                self.children.setdefault(pk, {})[key] = None
            sizes = self.subtree_sizes
            k: str | None = key
            while k is not None:
                sizes[k] = sizes.get(k, 0) + 1
                k = parent_key(k)
            if self._subtrees:
                self._forget_subtrees(key)
        self.entries[key] = entry
        self._index(entry)
        if changed:
            self.changelog.record(Change(key, old, entry, csn))
        return old

    def remove(self, key: str) -> Entry | None:
        """Remove one entry (its children, if any, stay, as orphans)."""
        old = self.entries.pop(key, None)
        if old is None:
            return None
        self.generation += 1
        self._unindex(old)
        self.meta.pop(key, None)
        self.changes[2] += 1
        csn = self.next_csn()  # the tree changed: its contextCSN moves
        pk = parent_key(key)
        if pk is not None:
            siblings = self.children.get(pk)
            if siblings is not None:
                siblings.pop(key, None)
                if not siblings:
                    del self.children[pk]
        sizes = self.subtree_sizes
        k: str | None = key
        while k is not None:
            n = sizes.get(k, 0) - 1
            if n <= 0:
                sizes.pop(k, None)
            else:
                sizes[k] = n
            k = parent_key(k)
        if self._subtrees:
            self._forget_subtrees(key)
        self.changelog.record(Change(key, old, None, csn))
        return old

    def touch(self, key: str) -> None:
        """Move an entry's modifyTimestamp and entryCSN to now, whatever its content."""
        created = self.csns(key)
        if created is not None:
            self.generation += 1
            self.meta[key] = (created[0], self.next_csn())

    def csns(self, key: str) -> tuple[int, int] | None:
        """(create CSN, modify CSN) of the entry ``key``; None if the tree has no such entry."""
        meta = self.meta.get(key)
        if meta is None or isinstance(meta, tuple):
            return meta
        return (meta, meta)

    def _rules_for(self, shape: Shape) -> list[tuple[str, EqualityIndex, Callable[[bytes], object]]]:
        """The equality indexes an entry of ``shape`` has attributes for (most GLUE entries
        have two or three of BDII's seventeen), worked out once per shape."""
        rules = self._index_rules()
        kept = self._shape_rules
        hit = kept.get(shape)
        if hit is None:
            has = shape.index
            hit = [rule for rule in rules if rule[0] in has]
            if len(kept) >= _SHAPE_RULES_MAX:
                kept.clear()
            kept[shape] = hit
        return hit

    def _index(self, entry: Entry) -> None:
        key = entry.key
        oc_index = self.oc_index
        for oc in entry.object_classes:
            bucket = oc_index.get(oc)
            if bucket is None:
                oc_index[oc] = {key: None}
            else:
                bucket[key] = None
        for attr, index, equality in self._rules_for(entry.shape):
            for v in entry.normalise(attr, equality):
                index_add(index, v, key)

    def _unindex(self, entry: Entry) -> None:
        key = entry.key
        for oc in entry.object_classes:
            bucket = self.oc_index.get(oc)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.oc_index[oc]
        for attr, index, equality in self._rules_for(entry.shape):
            for v in entry.normalise(attr, equality):
                index_remove(index, v, key)

    def build(self, dn: str, attributes: Iterable[tuple[str, Iterable[bytes]]], **kw: object) -> Entry:
        if not isinstance(attributes, (list, tuple)):
            attributes = [(a, list(v)) for a, v in attributes]
        return self.builder.build(dn, attributes, **kw)  # type: ignore[arg-type]

    # -- reading ----------------------------------------------------------------------------

    def subtree(self, base_key: str) -> Iterator[Entry]:
        """Entries at and below ``base_key``, depth first, parents before children."""
        entries = self.entries
        for k in self.subtree_keys(base_key):
            e = entries.get(k)
            if e is not None:
                yield e

    def subtree_keys(self, base_key: str) -> list[str]:
        """Keys at and below ``base_key`` (that exist or have children), preorder.

        The list of a large subtree is kept until a key is added below ``base_key`` or removed
        from it: a subtree search under a site walks ~250 keys, which was most of its cost.
        Callers must not change the list they get.
        """
        kept = self._subtrees.get(base_key)
        if kept is not None:
            self._subtrees.move_to_end(base_key)
            return kept
        out = self._walk_subtree(base_key)
        n = len(out)
        if _SUBTREE_KEPT_MIN <= n <= _SUBTREE_KEYS_MAX // 2:
            subtrees = self._subtrees
            subtrees[base_key] = out
            self._subtree_keys_kept += n
            while len(subtrees) > _SUBTREES_MAX or self._subtree_keys_kept > _SUBTREE_KEYS_MAX:
                self._subtree_keys_kept -= len(subtrees.popitem(last=False)[1])
        return out

    def _forget_subtrees(self, key: str) -> None:
        """``key`` came or went: the kept lists of it and of every ancestor are out of date."""
        subtrees = self._subtrees
        k: str | None = key
        while k is not None:
            gone = subtrees.pop(k, None)
            if gone is not None:
                self._subtree_keys_kept -= len(gone)
            k = parent_key(k)

    def _walk_subtree(self, base_key: str) -> list[str]:
        children = self.children
        out: list[str] = []
        stack = [base_key]
        pop = stack.pop
        extend = stack.extend
        append = out.append
        while stack:
            k = pop()
            append(k)
            kids = children.get(k)
            if kids:
                extend(reversed(kids))
        return out

    def matched_dn(self, base_key: str) -> str:
        """DN of the nearest existing ancestor (for noSuchObject's matchedDN)."""
        k = parent_key(base_key)
        while k:
            e = self.entries.get(k)
            if e is not None:
                return e.dn
            k = parent_key(k)
        return ""

    def _candidates(self, f: F.Filter) -> dict[str, None] | None:
        """Index lookups for a filter: a superset of the matching keys, or None (no index)."""
        if isinstance(f, F.Equality):
            base, options, _ = f.attribute.partition(";")
            m = self.schema.matching(base)
            if m is None:
                return {}
            if options:  # values under an option are not in the attribute's index
                return None
            if m.key == "objectclass":
                name = f.value.decode("utf-8", "replace").strip()
                oc = self.schema.object_class(name)
                return self.oc_index.get(oc.name.lower() if oc is not None else name.lower(), {})
            index = self.eq_indexes.get(m.key)
            # the index holds the attribute's own values: no superset for a filter that also
            # reads its subtypes' values ((name=x) matches cn=x)
            if index is not None and m.equality is not None and self.compiler.subtype_keys(m.key) == (m.key,):
                v = m.equality(f.value)
                bucket = index.get(v) if v is not None else None
                if bucket is None:
                    return {}
                if isinstance(bucket, str):
                    return {bucket: None}
                return bucket
            return None
        if isinstance(f, F.And):
            best: dict[str, None] | None = None
            for sub in f.filters:
                c = self._candidates(sub)
                if c is not None and (best is None or len(c) < len(best)):
                    best = c
                    if not best:
                        break
            return best
        if isinstance(f, F.Or):
            union: dict[str, None] = {}
            for sub in f.filters:
                c = self._candidates(sub)
                if c is None:
                    return None
                union.update(c)
            return union
        return None

    def search(
        self, request: SearchRequest, *, server_size_limit: int = 0, sliced: bool = False
    ) -> SearchResult:
        """Answer a search from the tree.

        With ``sliced`` the search stops after one slice of ``slice_seconds`` of work when it
        is not finished by then: the result carries a ``cursor`` to continue it (see
        :mod:`gridinfo.directory.cursor`).  Without, it is answered completely, in one call.
        """
        try:
            base_key = self.normaliser.key(request.base)
        except InvalidDNSyntax as e:
            return SearchResult(code=ResultCode.INVALID_DN_SYNTAX, message=e.message)
        base = self.entries.get(base_key)
        if base is None and not (base_key == "" and request.scope != Scope.BASE):
            raise NoSuchObject(f"no such entry: {request.base!r}", matched_dn=self.matched_dn(base_key))
        scope = request.scope
        if scope == Scope.BASE:  # one candidate: no cursor, no limits to watch
            assert base is not None
            predicate = self.compiler.predicate(request.filter)
            result = SearchResult()
            if predicate(base) is True:
                result.entries.append(self.encoder(request.attributes, request.types_only)(base))
            return result
        if scope != Scope.ONE:
            exact = self._exact_keys(request.filter)
            if exact is not None and len(exact) <= _SMALL_ANSWER:
                # the index names exactly the entries that match: no filter to evaluate
                found = self._within(exact, base_key, scope == Scope.CHILDREN)
                return self._answer_small(found, None, request, server_size_limit)
        remembered = self._answers  # looked up before the candidates: working them out is most of a large search
        if remembered is not None:
            if self._answers_generation != self.generation:
                remembered.clear()
                self._answers_generation = self.generation
                self._answers_entries = 0
            memo = (request.base, scope, request.filter, request.attributes, request.types_only,
                    request.size_limit, server_size_limit)
            hit = remembered.get(memo)
            if hit is not None:
                remembered.move_to_end(memo)
                return _copy_result(hit)
        predicate = self.compiler.predicate(request.filter)
        candidates: Iterable[Entry]
        if scope == Scope.ONE:
            entries = self.entries
            candidates = (entries[k] for k in self.children.get(base_key, ()) if k in entries)
        else:
            candidates = self._subtree_candidates(request.filter, base_key, scope == Scope.CHILDREN)
        if type(candidates) is list and len(candidates) <= _SMALL_ANSWER:
            return self._answer_small(candidates, predicate, request, server_size_limit)
        cursor = self.cursor(candidates, predicate, request, server_size_limit=server_size_limit, sliced=sliced)
        if not cursor.run():
            cursor.result.cursor = cursor
        elif remembered is not None and len(cursor.result.entries) > _SMALL_ANSWER:
            self._remember_answer(memo, _copy_result(cursor.result))
        return cursor.result

    def _remember_answer(self, memo: tuple[Any, ...], result: SearchResult) -> None:
        """Keep a finished answer (a copy: callers may change theirs) until the tree changes."""
        remembered = self._answers
        assert remembered is not None
        remembered[memo] = result
        self._answers_entries += len(result.entries)
        while len(remembered) > _ANSWERS_MAX or self._answers_entries > _ANSWERS_MAX_ENTRIES:
            self._answers_entries -= len(remembered.popitem(last=False)[1].entries)

    def _answer_small(
        self,
        candidates: list[Entry],
        predicate: Callable[[Entry], bool | None] | None,
        request: SearchRequest,
        server_size_limit: int,
    ) -> SearchResult:
        """A few candidates (an indexed lookup): filtered and encoded at once, without a cursor.

        Without a ``predicate`` every candidate matches (the index named exactly them).

        The size limit is kept as the cursor keeps it; a time limit cannot run out on this much work.
        """
        result = SearchResult()
        limit = request.size_limit
        if server_size_limit and (not limit or server_size_limit < limit):
            limit = server_size_limit
        matched = candidates if predicate is None else [e for e in candidates if predicate(e) is True]
        if limit and len(matched) > limit:
            del matched[limit:]
            result.code = ResultCode.SIZE_LIMIT_EXCEEDED
            result.message = f"size limit of {limit} entries exceeded"
        if matched:
            encode = self.encoder(request.attributes, request.types_only)
            result.entries = [encode(e) for e in matched]
        return result

    def sync_view(self, request: SearchRequest) -> SyncView:
        """What a change-stream search (RFC 4533, persistent search) needs from the tree.

        The entries the search selects now (unsliced; limits do not apply to a refresh), the
        test that says whether an entry lies in its scope and matches its filter (applied to
        every later change by :class:`~gridinfo.directory.changes.Subscription`), and the
        encoder of its attribute selection.  Raises as :meth:`search` does for a bad base.
        """
        base_key = self.normaliser.key(request.base)
        base = self.entries.get(base_key)
        if base is None and not (base_key == "" and request.scope != Scope.BASE):
            raise NoSuchObject(f"no such entry: {request.base!r}", matched_dn=self.matched_dn(base_key))
        predicate = self.compiler.compile(request.filter)
        scope = request.scope
        if scope == Scope.BASE:
            def in_scope(k: str) -> bool:
                return k == base_key
            candidates: Iterable[Entry] = (base,)  # type: ignore[assignment]
        elif scope == Scope.ONE:
            def in_scope(k: str) -> bool:
                return parent_key(k) == base_key
            entries = self.entries
            candidates = [entries[k] for k in self.children.get(base_key, ()) if k in entries]
        else:
            children_only = scope == Scope.CHILDREN

            def in_scope(k: str) -> bool:
                return is_descendant_key(k, base_key) and not (children_only and k == base_key)
            candidates = self._subtree_candidates(request.filter, base_key, children_only)

        def visible(e: Entry) -> bool:
            return in_scope(e.key) and predicate(e) is True

        group: Hashable | None = (base_key, scope, request.filter)
        try:
            hash(group)
        except TypeError:
            group = None
        return SyncView(
            [e for e in candidates if predicate(e) is True],
            visible,
            self.encoder(request.attributes, request.types_only),
            self.changelog,
            group,
            (tuple(request.attributes), request.types_only),
        )

    def _exact_keys(self, f: F.Filter) -> Collection[str] | None:
        """The keys of exactly the entries ``f`` matches, when the indexes hold them; else None
        (the filter must be evaluated).

        So it is for an equality on objectClass, or on an attribute with an equality index, no
        subtypes and no options: the index and the filter normalise values by the same rule, and
        the filter reads only that attribute's own values, which are all indexed.  An AND of
        such terms matches the keys all of them hold, an OR the keys any of them holds (an entry
        matches only where its terms are true, so undefined terms change nothing); those are
        worked out only while they stay a small answer's worth of keys (and an OR of more terms
        than that is not tried).
        """
        kind = type(f)
        if kind is F.Equality:
            return self._exact_equality(f)  # type: ignore[arg-type]
        if (kind is not F.And and kind is not F.Or) or not f.filters:  # type: ignore[union-attr]
            return None
        if kind is F.Or:
            if len(f.filters) > _SMALL_ANSWER:  # type: ignore[union-attr]
                return None  # a DIRAC-style 1,000-term OR asks for many: evaluated, as a large answer
            union: dict[str, None] = {}
            for sub in f.filters:  # type: ignore[union-attr]
                keys = self._exact_keys(sub)
                if keys is None or len(keys) > _SMALL_ANSWER:
                    return None
                union.update(dict.fromkeys(keys))
                if len(union) > _SMALL_ANSWER:
                    return None
            return union
        parts: list[Collection[str]] = []
        for sub in f.filters:  # type: ignore[union-attr]
            keys = self._exact_keys(sub)
            if keys is None:
                return None
            parts.append(keys)
        parts.sort(key=len)
        smallest, rest = parts[0], parts[1:]
        if len(smallest) > _SMALL_ANSWER:
            return None
        return [k for k in smallest if all(k in keys for keys in rest)]

    def _exact_equality(self, f: F.Equality) -> Collection[str] | None:
        """:meth:`_exact_keys` of one equality."""
        rules = self._exact_rules
        if self._exact_rules_indexes != len(self.eq_indexes):  # an index was added since
            rules.clear()
            self._exact_rules_indexes = len(self.eq_indexes)
        rule = rules.get(f.attribute)
        if rule is None:
            if len(rules) >= _SHAPE_RULES_MAX:  # attribute names are the client's: bounded
                rules.clear()
            rule = rules[f.attribute] = self._exact_rule(f.attribute)
        if rule is False:
            return None
        if rule is True:  # objectClass
            return self._candidates(f)
        index, equality = rule
        v = equality(f.value)
        bucket = index.get(v) if v is not None else None
        if bucket is None:
            return ()
        return (bucket,) if isinstance(bucket, str) else bucket

    def _exact_rule(self, attribute: str) -> bool | tuple[EqualityIndex, Callable[[bytes], object]]:
        """How :meth:`_exact_keys` answers an equality on ``attribute``: True for objectClass,
        (index, normaliser), or False (the filter must be evaluated)."""
        if ";" in attribute:
            return False
        m = self.schema.matching(attribute)
        if m is None or m.key in FILTERABLE:
            return False
        if m.key == "objectclass":
            return True
        index = self.eq_indexes.get(m.key)
        if index is None or m.equality is None or self.compiler.subtype_keys(m.key) != (m.key,):
            return False
        return index, m.equality

    def _within(self, keys: Collection[str], base_key: str, children_only: bool) -> list[Entry]:
        """The entries of ``keys`` (all in the tree) at or below ``base_key`` (below, with
        ``children_only``)."""
        entries = self.entries
        if not base_key or (not children_only and self.subtree_sizes.get(base_key, 0) == len(entries)):
            # the root, or a base every key descends from (o=grid of a GRIS): no key to test
            return [entries[k] for k in keys]
        return [
            entries[k]
            for k in keys
            if is_descendant_key(k, base_key) and not (children_only and k == base_key)
        ]

    def _subtree_candidates(self, f: F.Filter, base_key: str, children_only: bool) -> Iterable[Entry]:
        indexed = self._candidates(f)
        total = self.subtree_sizes.get(base_key, 0) if base_key else len(self.entries)
        if indexed is not None and len(indexed) < total:
            return self._within(indexed, base_key, children_only)
        if not base_key:
            # the root: every entry, including orphans that have no parent in the tree
            return list(self.entries.values())
        keys = self.subtree_keys(base_key)
        if children_only:
            keys = keys[1:]
        entries = self.entries
        if indexed is not None:
            # the index is larger than the subtree: walk the subtree, but let the index
            # (a dict lookup) reject entries before the filter does
            return [entries[k] for k in keys if k in indexed]
        return [e for e in map(entries.get, keys) if e is not None]

    def cursor(
        self,
        candidates: Iterable[Entry],
        predicate: Callable[[Entry], bool | None],
        request: SearchRequest,
        *,
        server_size_limit: int = 0,
        sliced: bool = False,
    ) -> SearchCursor:
        """A cursor filtering candidates and encoding the selected attributes, within the limits."""
        limit = request.size_limit
        if server_size_limit and (not limit or server_size_limit < limit):
            limit = server_size_limit
        return SearchCursor(
            candidates,
            predicate,
            self.encoder(request.attributes, request.types_only),
            SearchResult(),
            size_limit=limit,
            time_limit=request.time_limit,
            clock=self.clock,
            slice_seconds=self.slice_seconds if sliced else 0.0,
        )

    def encoder(self, attributes: tuple[str, ...], types_only: bool) -> Callable[[Entry], bytes]:
        """Encoding function for an attribute selection (RFC 4511 section 4.5.1.8)."""
        all_user = not attributes
        operational: list[str] = []
        wanted: list[str] = []
        none = False
        for a in attributes:
            if a == "*":
                all_user = True
            elif a == "+":
                operational.extend(OPERATIONAL)
            elif a == "1.1":
                none = True
            else:
                m = self.schema.matching(a.partition(";")[0])
                k = m.key if m is not None else a.lower()
                if k in _OPERATIONAL_SET:
                    operational.append(k)
                else:
                    wanted.append(k)
                    if m is not None:
                        # subtypes: asking for 'name' returns cn, o, ou...
                        for sub in self.compiler.subtype_keys(m.key):
                            if sub not in wanted:
                                wanted.append(sub)
        if none and not wanted and not operational and not all_user:
            return lambda e: e.encode_selected((), False)
        if all_user and not operational and not types_only:
            return lambda e: e.encoded
        if all_user:
            wanted = []
        ops = list(dict.fromkeys(operational))

        def encode(e: Entry) -> bytes:
            keys = e.shape.names if all_user else wanted
            extra = self._operational(e, ops, types_only) if ops else ()
            return e.encode_selected(keys, types_only, extra)

        return encode

    def _operational(self, e: Entry, wanted: list[str], types_only: bool) -> list[bytes]:
        out = []
        for k in wanted:
            vals = self.operational_values(e, k)
            if vals:
                out.append(ber.partial_attribute(_OPERATIONAL_NAMES[k], () if types_only else vals))
        return out

    def operational_values(self, e: Entry, k: str) -> list[bytes]:
        """The values of operational attribute ``k`` (a canonical key) of ``e``; [] if none."""
        if k == "entrydn":
            return [self._pretty_dn(e.dn).encode("utf-8")]
        if k == "subschemasubentry":
            return [b"cn=Subschema"]
        if k == "hassubordinates":
            return [b"TRUE" if self.children.get(e.key) else b"FALSE"]
        if k == "structuralobjectclass":
            soc = self._structural(e)
            return [] if soc is None else [soc.encode("utf-8")]
        if k == "entryuuid":
            return [entry_uuid(e.key).encode()]
        if k == "contextcsn":
            pk = parent_key(e.key)
            if self.context_csn and (pk is None or pk not in self.entries):
                return [format_csn(self.context_csn).encode()]
            return []
        meta = self.csns(e.key)
        if meta is None:
            return []
        if k == "createtimestamp":
            return [format_timestamp(meta[0]).encode()]
        if k == "modifytimestamp":
            return [format_timestamp(meta[1]).encode()]
        if k == "entrycsn":
            return [format_csn(meta[1]).encode()]
        return []  # creatorsName, modifiersName: gridinfo entries have no writer

    def _pretty_dn(self, dn: str) -> str:
        """The DN with each attribute type spelled as the schema names it (slapd's entryDN)."""
        try:
            rdns = parse_dn(dn)
        except InvalidDNSyntax:
            return dn
        schema = self.schema
        parts = []
        for rdn in rdns:
            avas = []
            for typ, value in rdn:
                m = schema.matching(typ)
                avas.append(f"{m.name if m is not None else typ}={escape_value(value)}")
            parts.append("+".join(avas))
        return ",".join(parts)

    def _filter_values(self, key: str) -> Callable[[Entry], list[bytes]] | None:
        """For the filter compiler: how to read operational attribute ``key``, or None."""
        if key not in FILTERABLE:
            return None
        return lambda e: self.operational_values(e, key)

    def _structural(self, e: Entry) -> str | None:
        best = None
        depth = -1
        for v in e.get("objectclass"):
            oc = self.schema.object_class(v.decode("utf-8", "replace"))
            if oc is not None and oc.kind == "STRUCTURAL":
                d = len(self.schema.superclasses(oc.name))
                if d > depth:
                    best, depth = oc.name, d
        return best

    def compare(self, dn: str, attribute: str, value: bytes) -> bool:
        """RFC 4511 compare: True/False, or the error slapd gives, checked in slapd's order.

        An unknown attribute is undefinedAttributeType (17) and an assertion value its
        equality rule rejects is invalidAttributeSyntax (21), both before the entry is looked
        up; then noSuchObject (32), inappropriateMatching (18), noSuchAttribute (16).  Operational
        attributes compare with the tree's values; entryDN is unwillingToPerform (53), as in slapd.
        """
        from gridinfo.errors import InappropriateMatching, InvalidAttributeSyntax, LDAPError, UndefinedAttributeType

        m = self.schema.matching(attribute)
        if m is None:
            raise UndefinedAttributeType(f"attribute type {attribute!r} is not defined in the schema")
        if m.equality is not None and m.key != "objectclass" and m.equality(value) is None:
            at = self.schema.attribute(attribute)
            syntax = at.syntax if at is not None else None
            raise InvalidAttributeSyntax(f"value {value[:64]!r} is not valid for attribute {m.name!r} (syntax {syntax})")
        key = self.normaliser.key(dn)
        entry = self.entries.get(key)
        if entry is None:
            raise NoSuchObject(f"no such entry: {dn!r}", matched_dn=self.matched_dn(key))
        if m.key == "objectclass":
            pred = self.compiler.compile(F.Equality(attribute, value))
            return pred(entry) is True
        if m.equality is None:
            raise InappropriateMatching(f"attribute {attribute!r} has no equality matching rule")
        if m.key == "entrydn":
            from gridinfo.errors import UnwillingToPerform

            raise UnwillingToPerform("compare of entryDN is not supported (as in slapd); search with (entryDN=...)")
        if m.key in FILTERABLE:  # entryUUID, hasSubordinates...: the tree's values, not the entry's
            if not self.operational_values(entry, m.key):
                raise LDAPError(f"entry has no attribute {attribute!r}", code=ResultCode.NO_SUCH_ATTRIBUTE)
            return self.compiler.compile(F.Equality(attribute, value))(entry) is True
        if not any(entry.has(k) for k in self.compiler.subtype_keys(m.key)):
            raise LDAPError(f"entry has no attribute {attribute!r}", code=ResultCode.NO_SUCH_ATTRIBUTE)
        pred = self.compiler.compile(F.Equality(attribute, value))
        return pred(entry) is True
