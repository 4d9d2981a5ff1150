"""The two entries every LDAPv3 server answers itself: the root DSE and the subschema subentry.

Clients discover a server through them: ``ldapsearch -b "" -s base +`` shows what it supports,
and ``ldap3.Server(get_info=ALL)`` reads the root DSE, then the subschema subentry it names, to
learn attribute types and object classes.  Both are small and built once (the root DSE again
when the naming contexts change, the subschema when the schema object changes); each attribute
is BER-encoded once, so an answer is a join of the selected attributes.

Attribute selection follows RFC 4511 section 4.5.1.8 and RFC 3673: no selector or ``*`` gives
the user attributes, ``+`` gives the operational ones, names are case-insensitive, ``1.1``
alone gives none.  Filters are matched with a small case-insensitive evaluator, which is all
these entries need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gridinfo import ber
from gridinfo.directory import filters as F
from gridinfo.directory.dn import loose_key

if TYPE_CHECKING:
    from gridinfo.directory.schema import Schema

SUBSCHEMA_DN = "cn=Subschema"
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
WHO_AM_I_OID = "1.3.6.1.4.1.4203.1.11.3"
START_TLS_OID = "1.3.6.1.4.1.1466.20037"
#: RFC 3673: "+" returns all operational attributes.
ALL_OPERATIONAL_ATTRIBUTES_FEATURE = "1.3.6.1.4.1.4203.1.5.1"



def normalise_dn(dn: str) -> str:
    """A DN for comparison (see :func:`gridinfo.directory.dn.loose_key`)."""
    return loose_key(dn)


# LDAP syntaxes and matching rules from RFC 4517 (plus the Binary syntax older schemas such as
# GLUE still name), published so clients can resolve what attribute types refer to.
_SYNTAX = "1.3.6.1.4.1.1466.115.121.1."
_SYNTAXES = [
    ("3", "Attribute Type Description"),
    ("5", "Binary"),
    ("6", "Bit String"),
    ("7", "Boolean"),
    ("11", "Country String"),
    ("12", "DN"),
    ("15", "Directory String"),
    ("22", "Facsimile Telephone Number"),
    ("24", "Generalized Time"),
    ("26", "IA5 String"),
    ("27", "INTEGER"),
    ("28", "JPEG"),
    ("30", "Matching Rule Description"),
    ("31", "Matching Rule Use Description"),
    ("34", "Name And Optional UID"),
    ("36", "Numeric String"),
    ("37", "Object Class Description"),
    ("38", "OID"),
    ("39", "Other Mailbox"),
    ("40", "Octet String"),
    ("41", "Postal Address"),
    ("44", "Printable String"),
    ("50", "Telephone Number"),
    ("54", "LDAP Syntax Description"),
    ("58", "Substring Assertion"),
]
_MATCHING_RULES = [
    ("2.5.13.0", "objectIdentifierMatch", "38"),
    ("2.5.13.1", "distinguishedNameMatch", "12"),
    ("2.5.13.2", "caseIgnoreMatch", "15"),
    ("2.5.13.3", "caseIgnoreOrderingMatch", "15"),
    ("2.5.13.4", "caseIgnoreSubstringsMatch", "58"),
    ("2.5.13.5", "caseExactMatch", "15"),
    ("2.5.13.6", "caseExactOrderingMatch", "15"),
    ("2.5.13.7", "caseExactSubstringsMatch", "58"),
    ("2.5.13.8", "numericStringMatch", "36"),
    ("2.5.13.10", "numericStringSubstringsMatch", "58"),
    ("2.5.13.11", "caseIgnoreListMatch", "41"),
    ("2.5.13.13", "booleanMatch", "7"),
    ("2.5.13.14", "integerMatch", "27"),
    ("2.5.13.15", "integerOrderingMatch", "27"),
    ("2.5.13.16", "bitStringMatch", "6"),
    ("2.5.13.17", "octetStringMatch", "40"),
    ("2.5.13.18", "octetStringOrderingMatch", "40"),
    ("2.5.13.20", "telephoneNumberMatch", "50"),
    ("2.5.13.21", "telephoneNumberSubstringsMatch", "58"),
    ("2.5.13.27", "generalizedTimeMatch", "24"),
    ("2.5.13.28", "generalizedTimeOrderingMatch", "24"),
    ("1.3.6.1.4.1.1466.109.114.1", "caseExactIA5Match", "26"),
    ("1.3.6.1.4.1.1466.109.114.2", "caseIgnoreIA5Match", "26"),
    ("1.3.6.1.4.1.1466.109.114.3", "caseIgnoreIA5SubstringsMatch", "58"),
]


def ldap_syntax_definitions() -> list[str]:
    """RFC 4512 ``ldapSyntaxes`` values for the syntaxes gridinfo knows."""
    return [f"( {_SYNTAX}{number} DESC '{desc}' )" for number, desc in _SYNTAXES]


def matching_rule_definitions() -> list[str]:
    """RFC 4512 ``matchingRules`` values for the matching rules gridinfo knows."""
    return [f"( {oid} NAME '{name}' SYNTAX {_SYNTAX}{syntax} )" for oid, name, syntax in _MATCHING_RULES]


@dataclass(frozen=True)
class _Attribute:
    name: str
    values: tuple[bytes, ...]
    operational: bool
    encoded: bytes
    encoded_type_only: bytes


@dataclass
class DSEEntry:
    """An entry the server answers itself, with each attribute encoded once."""

    dn: str
    _attributes: list[_Attribute] = field(default_factory=list)
    _by_name: dict[str, _Attribute] = field(default_factory=dict)

    def add(self, name: str, values: Iterable[str | bytes], operational: bool) -> None:
        encoded_values = tuple(v.encode("utf-8") if isinstance(v, str) else v for v in values)
        if not encoded_values:
            return
        raw_name = name.encode("ascii")
        attribute = _Attribute(
            name,
            encoded_values,
            operational,
            ber.partial_attribute(raw_name, encoded_values),
            ber.partial_attribute(raw_name, ()),
        )
        self._attributes.append(attribute)
        self._by_name[name.lower()] = attribute

    def attributes(self) -> list[tuple[str, tuple[bytes, ...]]]:
        """(name, values) of every attribute, in the order added."""
        return [(a.name, a.values) for a in self._attributes]

    def values(self, name: str) -> tuple[bytes, ...]:
        attribute = self._by_name.get(name.lower())
        return attribute.values if attribute else ()

    def encode(self, selectors: Sequence[str], types_only: bool = False) -> bytes:
        """The SearchResultEntry protocol op holding the attributes ``selectors`` ask for."""
        wanted = {s.lower() for s in selectors}
        all_user = not wanted or "*" in wanted
        all_operational = "+" in wanted
        parts = []
        for attribute in self._attributes:
            if (
                (all_operational if attribute.operational else all_user)
                or attribute.name.lower() in wanted
            ):
                parts.append(attribute.encoded_type_only if types_only else attribute.encoded)
        return ber.search_result_entry(self.dn.encode("utf-8"), parts)

    def matches(self, flt: F.Filter) -> bool:
        """Evaluate a filter against this entry (case-insensitive string matching)."""
        return _matches(self, flt)


def _matches(entry: DSEEntry, flt: F.Filter) -> bool:
    if isinstance(flt, F.Present):
        return bool(entry.values(flt.attribute))
    if isinstance(flt, (F.Equality, F.Approx)):
        wanted = flt.value.lower()
        return any(v.lower() == wanted for v in entry.values(flt.attribute))
    if isinstance(flt, F.And):
        return all(_matches(entry, f) for f in flt.filters)
    if isinstance(flt, F.Or):
        return any(_matches(entry, f) for f in flt.filters)
    if isinstance(flt, F.Not):
        return not _matches(entry, flt.filter)
    if isinstance(flt, F.Substrings):
        return any(_substring_match(v.lower(), flt) for v in entry.values(flt.attribute))
    if isinstance(flt, F.GreaterOrEqual):
        return any(v.lower() >= flt.value.lower() for v in entry.values(flt.attribute))
    if isinstance(flt, F.LessOrEqual):
        return any(v.lower() <= flt.value.lower() for v in entry.values(flt.attribute))
    return False


def _substring_match(value: bytes, flt: F.Substrings) -> bool:
    pos = 0
    if flt.initial is not None:
        if not value.startswith(flt.initial.lower()):
            return False
        pos = len(flt.initial)
    end = len(value)
    if flt.final is not None:
        final = flt.final.lower()
        if len(value) - len(final) < pos or not value.endswith(final):
            return False
        end = len(value) - len(final)
    for piece in flt.any:
        found = value.find(piece.lower(), pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def build_root_dse(
    naming_contexts: Sequence[str],
    vendor_version: str,
    supported_extensions: Sequence[str] = (WHO_AM_I_OID,),
    supported_controls: Sequence[str] = (PAGED_RESULTS_OID,),
    sasl_mechanisms: Sequence[str] = (),
) -> DSEEntry:
    """The root DSE (RFC 4512, section 5.1) of a gridinfo server.

    A server with TLS configured passes StartTLS among ``supported_extensions`` (and
    ``EXTERNAL`` as a SASL mechanism when it asks for client certificates).
    """
    entry = DSEEntry("")
    entry.add("objectClass", ["top"], operational=False)
    entry.add("namingContexts", naming_contexts, operational=True)
    entry.add("subschemaSubentry", [SUBSCHEMA_DN], operational=True)
    entry.add("supportedLDAPVersion", ["3"], operational=True)
    entry.add("supportedControl", supported_controls, operational=True)
    entry.add("supportedExtension", supported_extensions, operational=True)
    entry.add("supportedFeatures", [ALL_OPERATIONAL_ATTRIBUTES_FEATURE], operational=True)
    if sasl_mechanisms:
        entry.add("supportedSASLMechanisms", sasl_mechanisms, operational=True)
    entry.add("vendorName", ["gridinfo"], operational=True)
    entry.add("vendorVersion", [vendor_version], operational=True)
    return entry


def build_subschema(schema: Schema | Any) -> DSEEntry:
    """The subschema subentry (RFC 4512, section 4.2) publishing ``schema``."""
    entry = DSEEntry(SUBSCHEMA_DN)
    entry.add("objectClass", ["top", "subentry", "subschema", "extensibleObject"], operational=False)
    entry.add("cn", ["Subschema"], operational=False)
    entry.add("ldapSyntaxes", ldap_syntax_definitions(), operational=True)
    entry.add("matchingRules", matching_rule_definitions(), operational=True)
    entry.add("attributeTypes", [a.definition() for a in schema.attribute_types()], operational=True)
    entry.add("objectClasses", [c.definition() for c in schema.object_classes()], operational=True)
    return entry


def is_subschema_dn(dn: str) -> bool:
    """Whether ``dn`` names the subschema subentry."""
    return len(dn) < 40 and normalise_dn(dn) == "cn=subschema"
