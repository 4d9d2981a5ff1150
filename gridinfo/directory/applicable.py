"""Which matching rules apply to an attribute's syntax, for extensible matches as slapd decides.

An extensible match names a rule, ``(GlueSiteName:caseIgnoreMatch:=x)``.  RFC 4511 (4.5.1.7.7)
makes the item Undefined when the rule cannot be used with the attribute; OpenLDAP decides by
syntax: a rule applies to attributes of its own assertion syntax and of the few syntaxes it
lists as compatible (caseIgnoreMatch, a Directory String rule, also takes Printable, Country
and Telephone Number strings, but not IA5 strings: GLUE 1.3's caseIgnoreIA5 attributes).  A rule
an attribute names as its own EQUALITY or ORDERING always applies to it.  Rules not in the
table (first-component rules, whose values are schema descriptions) are not restricted.
"""

from __future__ import annotations

_DIRECTORY_STRING = "1.3.6.1.4.1.1466.115.121.1.15"
_DIRECTORY_STRING_LIKE = frozenset(
    {
        _DIRECTORY_STRING,
        "1.3.6.1.4.1.1466.115.121.1.11",  # Country String
        "1.3.6.1.4.1.1466.115.121.1.44",  # Printable String
        "1.3.6.1.4.1.1466.115.121.1.50",  # Telephone Number
    }
)


def _only(syntax_suffix: str) -> frozenset[str]:
    return frozenset({"1.3.6.1.4.1.1466.115.121.1." + syntax_suffix})


#: rule (lower-case name) -> the attribute syntaxes it applies to
_APPLIES_TO: dict[str, frozenset[str]] = {
    "caseignorematch": _DIRECTORY_STRING_LIKE,
    "caseignoreorderingmatch": _DIRECTORY_STRING_LIKE,
    "caseexactmatch": _DIRECTORY_STRING_LIKE,
    "caseexactorderingmatch": _DIRECTORY_STRING_LIKE,
    "caseexactia5match": _only("26"),
    "caseignoreia5match": _only("26"),
    "objectidentifiermatch": _only("38"),
    "distinguishednamematch": _only("12"),
    "numericstringmatch": _only("36"),
    "numericstringorderingmatch": _only("36"),
    "caseignorelistmatch": _only("41"),
    "booleanmatch": _only("7"),
    "integermatch": _only("27"),
    "integerorderingmatch": _only("27"),
    "octetstringmatch": _only("40"),
    "octetstringorderingmatch": _only("40"),
    "telephonenumbermatch": _only("50"),
    "uniquemembermatch": _only("34"),
    "generalizedtimematch": _only("24"),
    "generalizedtimeorderingmatch": _only("24"),
    "uuidmatch": frozenset({"1.3.6.1.1.16.1"}),
    "uuidorderingmatch": frozenset({"1.3.6.1.1.16.1"}),
}


def rule_applies(rule_name: str, syntax: str | None, own_rules: tuple[str | None, ...] = ()) -> bool:
    """True if the rule may be used on an attribute of this syntax (or is one of its own rules)."""
    name = rule_name.lower()
    if any(own is not None and own.lower() == name for own in own_rules):
        return True
    allowed = _APPLIES_TO.get(name)
    return allowed is None or syntax is None or syntax in allowed
