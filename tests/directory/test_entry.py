"""Entries: attribute grouping, value sets, and the encoding made once."""

from ldaptor.protocols import pureber, pureldap

from gridinfo.directory.entry import EntryBuilder
from gridinfo.directory.schema import default_schema


def decode(op: bytes):
    obj, _ = pureber.berDecodeObject(pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()), op)
    return obj.objectName.decode(), [(n.decode(), [bytes(v) for v in vals]) for n, vals in obj.attributes]


def test_descriptions_grouped_case_insensitively_values_deduplicated():
    """`cn` and `CN` are one attribute; a value given twice is stored once; first spelling wins."""
    b = EntryBuilder(default_schema())
    e = b.build("cn=x,o=grid", [("objectClass", [b"top", b"device"]), ("cn", [b"x"]), ("CN", [b"y", b"x"]), ("description", [b"d", b"d"])])
    assert e.attributes["cn"] == [b"x", b"y"]
    assert e.attributes["description"] == [b"d"]
    assert decode(e.encoded) == ("cn=x,o=grid", [("objectClass", [b"top", b"device"]), ("cn", [b"x", b"y"]), ("description", [b"d"])])


def test_selected_attributes_are_slices_of_the_encoding():
    """Picking attributes reuses the stored encoding: same bytes as encoding them afresh."""
    b = EntryBuilder(default_schema())
    e = b.build("o=grid", [("objectClass", [b"organization"]), ("o", [b"grid"]), ("description", [b"top of the tree"])])
    assert decode(e.encode_selected(["description", "o"])) == ("o=grid", [("description", [b"top of the tree"]), ("o", [b"grid"])])
    assert decode(e.encode_selected(["nosuch"])) == ("o=grid", [])
    assert decode(e.encode_selected(["o"], types_only=True)) == ("o=grid", [("o", [])])


def test_object_classes_include_superclasses():
    """An entry's class set includes every superclass, for objectClass indexing."""
    b = EntryBuilder(default_schema())
    e = b.build("GlueCEUniqueID=x,o=grid", [("objectClass", [b"GlueCE"]), ("GlueCEUniqueID", [b"x"])])
    assert {"gluece", "gluecetop", "gluetop", "top"} <= e.object_classes


def test_values_are_decoded_from_the_one_encoding():
    """An entry keeps its encoded SearchResultEntry only: values read back as given, in order."""
    b = EntryBuilder(default_schema())
    long_value = b"x" * 300  # a long-form BER length
    e = b.build("cn=a,o=grid", [("objectClass", [b"top", b"device"]), ("cn", [b"a"]), ("description", [long_value, b""])])
    assert e.values == ((b"top", b"device"), (b"a",), (long_value, b""))
    assert e.get("description") == [long_value, b""]
    assert e.attributes["objectclass"] == [b"top", b"device"]
    assert not hasattr(e, "__dict__")


