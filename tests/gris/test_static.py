"""Static LDIF in a GRIS: the base entries always exist, and an LDIF may give its own."""

from gridinfo.config import GRISConfig
from gridinfo.service import make_gris_tree


def test_base_entries_exist_without_ldif():
    """o=grid and mds-vo-name=local,o=grid are there even with no data at all."""
    tree = make_gris_tree(GRISConfig())
    assert tree.lookup("o=grid") is not None
    assert tree.lookup("Mds-Vo-name=local, o=Grid") is not None


def test_ldif_version_of_base_entries_wins(tmp_path):
    """An LDIF that also holds o=grid or the suffix entry: its version is the one served."""
    (tmp_path / "base.ldif").write_text(
        "dn: o=grid\nobjectClass: organization\no: grid\ndescription: our own root\n\n"
        "dn: mds-vo-name=local,o=grid\nobjectClass: MdsVo\nMds-Vo-name: local\nMds-validto: 20300101000000Z\n"
    )
    tree = make_gris_tree(GRISConfig(ldif=(str(tmp_path),)))
    assert tree.lookup("o=grid").get("description") == [b"our own root"]
    assert tree.lookup("mds-vo-name=local,o=grid").get("mds-validto") == [b"20300101000000Z"]
    assert len(tree) == 4  # and o=glue, GLUE2GroupID=resource,o=glue (GLUE 2's base entries)
