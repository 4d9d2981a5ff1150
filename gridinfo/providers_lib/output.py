"""DN and LDIF formatting for providers.

A provider's output is what the GRIS parses, so this module writes the conservative subset of
LDIF: one ``attr: value`` line per value, a value that is not an RFC 2849 SAFE-STRING is
base64-encoded (``attr:: ...``), lines are never folded, and entries are separated by one blank
line.  Attribute values are given as Python values: ``None`` and empty lists are skipped (a
provider publishes what it knows), booleans become ``TRUE``/``FALSE`` (LDAP Boolean syntax),
numbers their decimal form, lists one line per item.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: A value as providers hand it over; see the module docstring for the conversions.
Value = str | int | float | bool | None | Sequence[str | int | float | bool]

_RDN_SPECIAL = set('"+,;<>\\=')


def escape_rdn_value(value: str) -> str:
    """Escape ``value`` for use as an attribute value in a DN string (RFC 4514, section 2.4)."""
    out = []
    for index, char in enumerate(value):
        if char in _RDN_SPECIAL:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        elif index == 0 and char in " #":
            out.append("\\" + char)
        elif index == len(value) - 1 and char == " ":
            out.append("\\ ")
        else:
            out.append(char)
    return "".join(out)


def rdn(attribute: str, value: str) -> str:
    """``attribute=value`` with the value escaped."""
    return f"{attribute}={escape_rdn_value(value)}"


def child_dn(attribute: str, value: str, parent: str) -> str:
    """The DN of the entry named ``attribute=value`` directly below ``parent``."""
    return f"{rdn(attribute, value)},{parent}"


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        # Decimal notation, no exponent, trailing zeros trimmed: "0.5", "12", "0.0001".
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(value)


def _is_safe(text: str) -> bool:
    """RFC 2849 SAFE-STRING, and no trailing space (which readers may strip)."""
    if not text:
        return True
    if text[0] in " :<" or text[-1] == " ":
        return False
    return all(0 < ord(c) < 128 and c not in "\r\n" for c in text)


def _line(attribute: str, text: str) -> str:
    if _is_safe(text):
        return f"{attribute}: {text}"
    return f"{attribute}:: {base64.b64encode(text.encode('utf-8')).decode('ascii')}"


@dataclass
class LDIFEntry:
    """One entry to publish: its DN and its attributes in output order."""

    dn: str
    attributes: list[tuple[str, Value]] = field(default_factory=list)

    def add(self, attribute: str, value: Value) -> LDIFEntry:
        """Append ``attribute`` (skipped when ``value`` is None or an empty list); chainable."""
        self.attributes.append((attribute, value))
        return self

    def values(self, attribute: str) -> list[str]:
        """The textual values of ``attribute`` (case-insensitive name), as they will be written."""
        found: list[str] = []
        for name, value in self.attributes:
            if name.lower() == attribute.lower():
                found.extend(_texts(value))
        return found

    def to_ldif(self) -> str:
        """The entry as LDIF text, ending with a blank line."""
        lines = [_line("dn", self.dn)]
        for name, value in self.attributes:
            lines.extend(_line(name, text) for text in _texts(value))
        return "\n".join(lines) + "\n\n"


def _texts(value: Value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value if v is not None]
    assert isinstance(value, (str, int, float, bool))
    return [_text(value)]


def format_entries(entries: Iterable[LDIFEntry]) -> str:
    """All ``entries`` as one LDIF document."""
    return "".join(entry.to_ldif() for entry in entries)
