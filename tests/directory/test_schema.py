"""The schema loader, gridinfo's schema files, and schema-aware matching and entry checks."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from gridinfo.directory.schema import (
    AttributeType,
    ObjectClass,
    SchemaError,
    bundled_schema_dir,
    default_schema,
    load_schema,
)

REPO = Path(__file__).resolve().parents[2]
OURS = [REPO / "schemas" / name for name in ("core.schema", "mds.schema", "glue-1.3.schema", "gridinfo.schema")]
DEBIAN = Path("/etc/ldap/schema")
DEBIAN_GLUE = sorted(DEBIAN.glob("Glue-*.schema")) + [DEBIAN / "GLUE20.schema"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- our files ------------------------------------------------------------------------------


def test_bundled_schema_loads_with_all_four_files():
    """A GRIS starts with core, MDS, GLUE 1.3 and gridinfo definitions and nothing else to set up."""
    schema = default_schema()
    assert schema is default_schema()  # loaded once
    for name in ("o", "ou", "dc", "Mds-Vo-name", "Mds-Service-Ldap-suffix", "GlueCEUniqueID", "GridinfoVMID"):
        assert schema.attribute(name) is not None, name
    for name in ("organization", "MdsVoOp", "MdsServiceLdap", "GlueCE", "GlueSubCluster", "GridinfoVM"):
        assert schema.object_class(name) is not None, name
    files = {Path(at.source.rsplit(":", 1)[0]).name for at in schema.attribute_types()}
    assert {"core.schema", "mds.schema", "glue-1.3.schema", "gridinfo.schema"} <= files


def test_bundled_schema_dir_can_be_moved_with_an_environment_variable(tmp_path, monkeypatch):
    """An installed gridinfo finds its schemas through GRIDINFO_SCHEMA_DIR."""
    for path in OURS[:2]:
        shutil.copy(path, tmp_path)
    monkeypatch.setenv("GRIDINFO_SCHEMA_DIR", str(tmp_path))
    assert bundled_schema_dir() == tmp_path
    schema = load_schema([])
    assert schema.attribute("Mds-Vo-name") is not None
    assert schema.attribute("GlueCEUniqueID") is None


def test_our_files_plus_debian_glue_and_openldap_core_load_together():
    """Sites that also load Debian's GLUE and OpenLDAP's core schema get no clash."""
    schema = load_schema(DEBIAN_GLUE + [DEBIAN / "core.schema"])
    assert schema.attribute("GLUE2GroupID") is not None
    assert schema.attribute("GlueCEStateFreeCPUs").ordering == "integerOrderingMatch"
    assert schema.attribute("telephoneNumber") is not None  # from OpenLDAP's core


def test_glue_facts_are_those_of_debians_glue_schema():
    """Every GLUE 1.3 name, OID, syntax, rule and class list is the one BDIIs use."""
    ours = load_schema(OURS[:3], include_default=False)
    debian = load_schema(sorted(DEBIAN.glob("Glue-*.schema")), include_default=False)

    def facts(at: AttributeType):
        return (at.oid, at.names, at.equality, at.ordering, at.syntax, at.single_value)

    for at in debian.attribute_types():
        if at.name.startswith("Glue"):
            assert facts(ours.attribute(at.oid)) == facts(at), at.name
    for oc in debian.object_classes():
        if oc.name.startswith("Glue"):
            mine = ours.object_class(oc.oid)
            assert mine is not None, oc.name
            assert (mine.names, mine.kind, mine.must, mine.may) == (oc.names, oc.kind, oc.must, oc.may), oc.name
            assert [s.lower() for s in mine.sup] == [s.lower() for s in oc.sup]


def test_core_facts_are_those_of_openldap_core():
    """Our core definitions have OpenLDAP's OIDs, syntaxes and rules."""
    ours = load_schema(OURS[:1], include_default=False)
    openldap = load_schema([DEBIAN / "core.schema"], include_default=False)
    for at in ours.attribute_types():
        theirs = openldap.attribute(at.oid)
        assert theirs is not None, at.name
        assert (at.names, at.syntax, at.equality, at.substr, at.single_value) == (
            theirs.names,
            theirs.syntax,
            theirs.equality,
            theirs.substr,
            theirs.single_value,
        ), at.name
    for oc in ours.object_classes():
        theirs = openldap.object_class(oc.oid)
        assert theirs is not None and theirs.names == oc.names and theirs.kind == oc.kind, oc.name
        assert set(oc.may) <= set(theirs.may) and oc.must == theirs.must


def test_mds_and_glue_mds_agree_on_mds():
    """Loading BDII's Glue-MDS.schema after ours redefines Mds by the same OID, not a clash."""
    schema = load_schema([DEBIAN / "Glue-MDS.schema"])
    mds = schema.object_class("MdsVo")
    assert mds is schema.object_class("Mds")
    assert mds.oid == "1.3.6.1.4.1.3536.2.6.1.4"
    assert schema.superclasses("MdsVoOp") == ("mdsvoop", "mds", "top")


def test_gridinfo_classes_use_the_uuid_arc_and_integer_syntax():
    """gridinfo's own OIDs sit under its 2.25 arc; counts compare as integers."""
    schema = default_schema()
    arc = "2.25.74851607360039642854128229544072393674."
    vm = schema.object_class("GridinfoVM")
    assert vm.oid.startswith(arc + "2.") and vm.kind == "STRUCTURAL" and vm.must == ("GridinfoVMID",)
    assert schema.object_class("GridinfoHostDynamics").kind == "AUXILIARY"
    vcpus = schema.attribute("GridinfoVMVCPUs")
    assert vcpus.oid.startswith(arc + "1.")
    assert (vcpus.equality, vcpus.ordering, vcpus.syntax) == (
        "integerMatch",
        "integerOrderingMatch",
        "1.3.6.1.4.1.1466.115.121.1.27",
    )
    assert schema.attribute("GridinfoEventTime").syntax == "1.3.6.1.4.1.1466.115.121.1.24"
    assert not schema.attribute("GridinfoVMStateTime").single_value
    oids = [at.oid for at in schema.attribute_types() if at.oid.startswith(arc)]
    assert len(oids) == len(set(oids))


# --- loader rules ---------------------------------------------------------------------------


def test_sup_inheritance_of_matching_rules(tmp_path):
    """A subtype without its own rules matches like its supertype (cn like name)."""
    path = write(
        tmp_path,
        "t.schema",
        "attributetype ( 1.2.3.1 NAME 'base' EQUALITY integerMatch ORDERING integerOrderingMatch\n"
        "\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.27 )\n"
        "attributetype ( 1.2.3.2 NAME 'middle' SUP base )\n"
        "attributetype ( 1.2.3.3 NAME 'leaf' SUP middle EQUALITY integerMatch SINGLE-VALUE )\n",
    )
    schema = load_schema([path], include_default=False)
    leaf = schema.attribute("LEAF")
    assert (leaf.equality, leaf.ordering, leaf.syntax, leaf.sup) == (
        "integerMatch",
        "integerOrderingMatch",
        "1.3.6.1.4.1.1466.115.121.1.27",
        "middle",
    )
    assert schema.matching("leaf").ordering(b"9") < schema.matching("leaf").ordering(b"10")
    cn = schema.attribute("cn")
    assert (cn.equality, cn.substr, cn.sup) == ("caseIgnoreMatch", "caseIgnoreSubstringsMatch", "name")


def test_multiple_names_all_resolve(tmp_path):
    """Every NAME of a definition finds it; the first is the display name."""
    schema = default_schema()
    assert schema.attribute("commonName") is schema.attribute("CN")
    assert schema.attribute("cn").name == "cn"
    assert schema.attribute("2.5.4.3") is schema.attribute("cn")
    assert schema.object_class("mdsvo").name == "Mds"
    assert schema.matching("commonName").key == "cn"


def test_file_syntax_comments_continuations_macros_escapes(tmp_path):
    """Schema files as people write them: comments, continuation lines, macros, escapes, X- tags."""
    path = write(
        tmp_path,
        "t.schema",
        "# a comment\n"
        "objectidentifier\tMyArc 1.2.3\n"
        "objectIdentifier MyAttrs MyArc:1\n"
        "\n"
        "attributetype ( MyAttrs:1\n"
        "    NAME ( 'first' 'second' )\n"
        "# a comment inside a definition\n"
        "    DESC 'it\\27s a \\5C test'\n"
        "    EQUALITY caseIgnoreMatch\n"
        "    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}\n"
        "    X-ORIGIN ( 'us' 'them' ) X-NOTE 'x' )\n"
        "ATTRIBUTETYPES ( MyAttrs:2 NAME 'other' SUP first USAGE dsaoperation )\n"
        "ditcontentrule ( 1.2.3.9 NAME 'ignored' )\n"
        "objectclass( MyArc:2.1 NAME 'thing' SUP 'Top' AUXILIARY MAY ( first $ other ) )\n",
    )
    schema = load_schema([path], include_default=False)
    first = schema.attribute("second")
    assert first.oid == "1.2.3.1.1"
    assert first.names == ("first", "second")
    assert first.description == "it's a \\ test"
    assert first.syntax == "1.3.6.1.4.1.1466.115.121.1.15"
    assert first.source == f"{path}:5"
    other = schema.attribute("other")
    assert (other.oid, other.usage, other.equality) == ("1.2.3.1.2", "dSAOperation", "caseIgnoreMatch")
    thing = schema.object_class("thing")
    assert (thing.oid, thing.kind, thing.sup, thing.may) == ("1.2.3.2.1", "AUXILIARY", ("top",), ("first", "other"))


def test_same_oid_twice_the_later_wins(tmp_path):
    """Loading a newer copy of a definition replaces the older one."""
    one = write(tmp_path, "one.schema", "attributetype ( 1.2.3.1 NAME 'a' DESC 'old' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
    two = write(
        tmp_path,
        "two.schema",
        "attributetype ( 1.2.3.1 NAME ( 'a' 'alias' ) DESC 'new' SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 )\n",
    )
    schema = load_schema([one, two], include_default=False)
    assert schema.attribute("a").description == "new"
    assert schema.attribute("alias") is schema.attribute("a")
    assert schema.attribute("a").source == f"{two}:1"
    assert len([at for at in schema.attribute_types() if at.oid == "1.2.3.1"]) == 1


def test_same_name_with_another_oid_is_an_error_naming_both_files(tmp_path):
    """Two different attributes cannot share a name; the error says where both are."""
    one = write(tmp_path, "one.schema", "\nattributetype ( 1.2.3.1 NAME 'a' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
    two = write(tmp_path, "two.schema", "\n\n\nattributetype ( 1.2.3.2 NAME 'A' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
    with pytest.raises(SchemaError) as info:
        load_schema([one, two], include_default=False)
    error = info.value
    assert (error.source, error.line) == (str(two), 4)
    assert f"{one}:2" in str(error) and f"{two}:4" in str(error)
    assert "1.2.3.1" in str(error) and "1.2.3.2" in str(error)


def test_clash_with_a_builtin_is_reported(tmp_path):
    """Redefining a built-in name with another OID names the built-in schema."""
    path = write(tmp_path, "x.schema", "attributetype ( 1.2.3.1 NAME 'cn' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
    with pytest.raises(SchemaError, match="built-in"):
        load_schema([path], include_default=False)


@pytest.mark.parametrize(
    "text, message",
    [
        ("attributetype ( 1.2.3.1 NAME 'a' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15\n", "missing"),
        ("attributetype 1.2.3.1 NAME 'a' )\n", "'('"),
        ("attributetype ( 1.2.3.1 NAME 'a SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n", "unterminated"),
        ("attributetype ( 1.2.3.1 NAME 'a' BOGUS 1 SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n", "BOGUS"),
        ("attributetype ( 1.2.3.1 NAME 'a' )\n", "SYNTAX"),
        ("attributetype ( nomacro:1 NAME 'a' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n", "macro"),
        ("attributetype ( 1.2.3.1 NAME 'a' EQUALITY fuzzyMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n", "fuzzyMatch"),
        ("attributetype ( 1.2.3.1 NAME 'a' NAME 'b' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n", "twice"),
        ("attributetype ( 1.2.3.1 NAME 'a' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 ) extra\n", "after"),
        ("attributetype ( 1.2.3.1 NAME 'a' USAGE sometimes SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n", "USAGE"),
        ("attributetype ( 1.2.3.1 NAME 'a' SUP nothing )\n", "nothing"),
        ("objectclass ( 1.2.3.4 NAME 'c' STRUCTURAL AUXILIARY )\n", "more than one"),
        ("objectclass ( 1.2.3.4 NAME 'c' MAY ( cn description ) )\n", "'$'"),
        ("objectclass ( 1.2.3.4 NAME 'c' MAY noSuchAttribute )\n", "noSuchAttribute"),
        ("objectclass ( 1.2.3.4 NAME 'c' SUP noSuchClass )\n", "noSuchClass"),
        ("objectclass ( 1.2.3.4 NAME 'bad name!' )\n", "bad name"),
    ],
)
def test_malformed_definitions_are_errors_with_file_and_line(tmp_path, text, message):
    """A broken definition stops loading with the file, the line it starts on and the reason."""
    path = write(tmp_path, "bad.schema", "# header\n\n" + text + "\nobjectclass ( 1.9.9 NAME 'fine' )\n")
    with pytest.raises(SchemaError) as info:
        load_schema([path], include_default=False)
    assert info.value.source == str(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_missing_file_is_an_error(tmp_path):
    """A typo in a configured schema path is reported, not ignored."""
    with pytest.raises(SchemaError, match="no such"):
        load_schema([tmp_path / "nope.schema"], include_default=False)


def test_directory_loads_its_schema_files_in_order(tmp_path):
    """A directory stands for its *.schema files, sorted, so later files can replace earlier ones."""
    write(tmp_path, "20-b.schema", "attributetype ( 1.2.3.1 NAME 'a' DESC 'b' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
    write(tmp_path, "10-a.schema", "attributetype ( 1.2.3.1 NAME 'a' DESC 'a' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n")
    write(tmp_path, "notes.txt", "not a schema (\n")
    assert load_schema([tmp_path], include_default=False).attribute("a").description == "b"


def test_builtins_exist_without_files():
    """objectClass, top, extensibleObject, subschema and the operational attributes need no file."""
    schema = load_schema([], include_default=False)
    assert schema.attribute("objectClass").oid == "2.5.4.0"
    assert schema.attribute("subschemaSubentry").usage == "directoryOperation"
    assert schema.attribute("namingContexts").usage == "dSAOperation"
    assert schema.attribute("createTimestamp").no_user_modification
    for name in ("entryDN", "hasSubordinates", "structuralObjectClass", "supportedLDAPVersion", "supportedControl",
                 "supportedExtension", "vendorName", "vendorVersion", "attributeTypes", "objectClasses",
                 "ldapSyntaxes", "matchingRules"):
        assert schema.attribute(name) is not None, name
    for name in ("top", "extensibleObject", "subschema", "alias"):
        assert schema.object_class(name) is not None, name


def test_definitions_render_as_rfc4512_and_read_back():
    """cn=subschema publishes definitions that parse back to the same facts (ldap3 reads them)."""
    schema = default_schema()
    lines = [f"attributetype {at.definition()}" for at in schema.attribute_types()]
    lines += [f"objectclass {oc.definition()}" for oc in schema.object_classes()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "round.schema"
        path.write_text("\n".join(lines) + "\n")
        again = load_schema([path], include_default=False)
    for at in schema.attribute_types():
        other = again.attribute(at.oid)
        assert other is not None
        assert (other.names, other.description, other.equality, other.ordering, other.substr, other.syntax,
                other.single_value, other.usage, other.no_user_modification) == (
            at.names, at.description, at.equality, at.ordering, at.substr, at.syntax,
            at.single_value, at.usage, at.no_user_modification)
    for oc in schema.object_classes():
        other = again.object_class(oc.oid)
        assert (other.names, other.sup, other.kind, other.must, other.may) == (oc.names, oc.sup, oc.kind, oc.must, oc.may)
    assert schema.attribute("cn").definition().startswith("( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name ")
    assert "DESC 'it\\27s'" in AttributeType(
        "1.2", ("x",), "it's", None, None, None, None, "1.3.6.1.4.1.1466.115.121.1.15", False, False, False,
        "userApplications", False, "f:1").definition()
    assert isinstance(schema.object_class("GlueCE"), ObjectClass)


# --- matching through the schema ------------------------------------------------------------


def test_matching_for_glue_and_mds_attributes():
    """Integer GLUE attributes order numerically; names match case-insensitively."""
    schema = default_schema()
    free = schema.matching("GLUECESTATEFREECPUS")
    assert free.key == "gluecestatefreecpus" and free.name == "GlueCEStateFreeCPUs"
    assert free.single_value and free.syntax == "1.3.6.1.4.1.1466.115.121.1.27"
    assert free.ordering(b"9") < free.ordering(b"10")
    assert free.equality(b"x") is None
    assert schema.matching("mds-vo-name").equality(b"LOCAL") == schema.matching("Mds-Vo-name").equality(b"local")
    validto = schema.matching("Mds-validto")
    assert validto.ordering(b"20240101120000Z") < validto.ordering(b"20240101130000+0000")
    assert schema.matching("Mds-validto").substr(b"2024") == "2024"
    assert schema.matching("GlueCEUniqueID").substr(b"Cream") == "cream"
    assert schema.matching("GlueCEUniqueID").approx(b"A") == "a"


def test_matching_is_cached_and_unknown_attributes_have_none():
    """The filter engine may call matching() per filter; unknown attributes are Undefined."""
    schema = default_schema()
    assert schema.matching("GlueCEUniqueID") is schema.matching("GlueCEUniqueID")
    assert schema.matching("noSuchAttribute") is None


def test_attributes_without_equality_have_no_equality_matching():
    """As in OpenLDAP, (namingContexts=...) is Undefined: the type has no EQUALITY rule."""
    matching = default_schema().matching("namingContexts")
    assert matching is not None
    assert matching.equality is None and matching.approx is None and matching.substr is None


def test_object_class_values_match_by_name_or_oid():
    """(objectClass=gluece) and (objectClass=<its OID>) both match objectClass: GlueCE."""
    schema = default_schema()
    equality = schema.matching("objectClass").equality
    key = equality(b"GlueCE")
    assert key == "gluece"
    assert equality(b"gluece") == key
    assert equality(schema.object_class("GlueCE").oid.encode()) == key
    assert equality(b"MdsVo") == equality(b"Mds") == "mds"
    assert equality(b"unknownClass") == "unknownclass"


def test_superclasses_for_the_object_class_index():
    """(objectClass=GlueTop) matches GLUE entries, as OpenLDAP matches subclasses."""
    schema = default_schema()
    assert schema.superclasses("GlueCE") == ("gluece", "gluecetop", "gluetop", "top")
    assert schema.superclasses("top") == ("top",)
    assert schema.superclasses("MdsServiceLdap") == ("mdsserviceldap", "mdsservice", "top")
    assert schema.superclasses("NoSuchClass") == ("nosuchclass",)
    equality = schema.matching("objectClass").equality
    assert equality(b"GlueTop") in schema.superclasses("GlueCE")


def test_all_must_and_all_may_include_inherited_attributes():
    """A class requires what its superclasses require."""
    schema = default_schema()
    assert set(schema.all_must("GlueCE")) == {"glueceuniqueid", "objectclass"}  # objectClass from top
    assert "mds-service-ldap-suffix" in schema.all_must("MdsServiceLdap")
    assert "mds-service-hn" in schema.all_must(schema.object_class("MdsServiceLdap"))
    assert "mds-service-ldap-cachettl" in schema.all_may("MdsServiceLdap")
    assert "mds-service-url" in schema.all_may("MdsServiceLdap")
    assert schema.all_must("NoSuchClass") == ()


# --- entry checks ---------------------------------------------------------------------------

REGISTRATION = {
    "objectClass": [b"Mds", b"MdsVoOp", b"MdsService", b"MdsServiceLdap"],
    "Mds-Vo-Op-name": [b"register"],
    "Mds-Service-type": [b"ldap"],
    "Mds-Service-protocol": [b"0.1"],
    "Mds-Service-hn": [b"host.example.org"],
    "Mds-Service-port": [b"2135"],
    "Mds-Service-Ldap-suffix": [b"Mds-Vo-name=local, o=grid"],
    "Mds-Service-Ldap-sizelimit": [b"0"],
    "Mds-Bind-Method-servers": [b"ANONYM-ONLY"],
    "Mds-validfrom": [b"20240101120000Z"],
    "Mds-validto": [b"20240101122000Z"],
    "Mds-keepto": [b"20240101122000Z"],
    "Mds-Service-Ldap-timeout": [b"20"],
    "Mds-Service-Ldap-cachettl": [b"30"],
}

GLUE_CE = {
    "objectClass": [b"GlueCETop", b"GlueCE", b"GlueCEInfo", b"GlueCEState", b"GlueKey", b"GlueSchemaVersion"],
    "GlueCEUniqueID": [b"host:8443/cream-pbs-q"],
    "GlueCEStateFreeCPUs": [b"10"],
    "GlueCEInfoTotalCPUs": [b"100"],
    "GlueForeignKey": [b"GlueClusterUniqueID=host"],
    "GlueSchemaVersionMajor": [b"1"],
    "GlueSchemaVersionMinor": [b"3"],
}

VM = {
    "objectClass": [b"GridinfoVM", b"GridinfoSoftState"],
    "GridinfoVMID": [b"vm1"],
    "GridinfoVMVCPUs": [b"2"],
    "GridinfoVMStateTime": [b"RUNNING=20240101120000Z", b"PENDING=20240101115900Z"],
    "Mds-validto": [b"20240101122000Z"],
}


def test_check_entry_accepts_good_entries():
    """A registration, a GLUE CE and a VM as gridinfo publishes them obey the schema."""
    schema = default_schema()
    assert schema.check_entry(REGISTRATION) == []
    assert schema.check_entry(GLUE_CE) == []
    assert schema.check_entry(VM) == []
    assert schema.check_entry({"objectClass": [b"organization"], "o": [b"grid"]}) == []
    assert schema.check_entry({"objectclass": [b"Mds"], "mds-vo-name": [b"local"]}) == []


def test_check_entry_reports_each_violation():
    """Every kind of violation is named, so a bad provider can be told what to fix."""
    schema = default_schema()
    problems = schema.check_entry(
        {
            "objectClass": [b"GlueCE", b"NoSuchClass"],
            "GlueCEStateFreeCPUs": [b"02", b"3"],
            "cn": [b"not allowed here"],
            "bogus": [b"1"],
            "GlueCEInfoTotalCPUs": [b"1", b"1"],
        }
    )
    text = "\n".join(problems)
    assert "'NoSuchClass' is not defined" in text
    assert "missing attribute 'GlueCEUniqueID' required by objectClass 'GlueCE'" in text
    assert "'GlueCEStateFreeCPUs' is SINGLE-VALUE but has 2 values" in text
    assert "'GlueCEStateFreeCPUs' value '02' is not valid" in text
    assert "'cn' is not allowed" in text
    assert "'bogus' is not defined" in text
    assert "'GlueCEInfoTotalCPUs' has the value '1' more than once" in text
    assert len(problems) == 8


def test_check_entry_structural_ia5_and_extensible():
    """No structural class, non-ASCII IA5 values and missing objectClass are reported;
    extensibleObject allows any attribute; operational attributes are always allowed."""
    schema = default_schema()
    assert "no STRUCTURAL" in " ".join(schema.check_entry({"objectClass": [b"GlueKey"]}))
    assert "no objectClass" in " ".join(schema.check_entry({"cn": [b"x"]}))
    bad_ia5 = dict(GLUE_CE, GlueCEUniqueID=["hôst".encode()])
    assert any("not valid" in p for p in schema.check_entry(bad_ia5))
    extensible = dict(GLUE_CE, objectClass=GLUE_CE["objectClass"] + [b"extensibleObject"], cn=[b"ok"])
    assert schema.check_entry(extensible) == []
    assert schema.check_entry(dict(GLUE_CE, createTimestamp=[b"20240101000000Z"])) == []
