"""containers/mounts.py: `-v`, `--mount` and VOLUME parsing and precedence, as Docker's."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.containers.model import Container, HostConfig, MountPoint, MountSpec, RunConfig
from berth.containers.mounts import from_spec, parse_bind, parse_volumes_from, plan
from berth.errors import InvalidParameter


def test_bind_with_mode() -> None:
    mp = parse_bind("/srv/conf:/etc/app.conf:ro")
    assert (mp.type, mp.source, mp.destination, mp.rw, mp.mode, mp.propagation) == (
        "bind", "/srv/conf", "/etc/app.conf", False, "ro", "rprivate")
    assert mp.create_source  # -v makes a missing host directory


def test_named_volume_defaults_to_mode_z() -> None:
    mp = parse_bind("html:/www/")
    assert (mp.type, mp.name, mp.destination, mp.mode, mp.rw, mp.copy_data) == ("volume", "html", "/www", "z", True, True)
    assert parse_bind("html:/www:nocopy").copy_data is False


def test_bare_destination_is_an_anonymous_volume() -> None:
    mp = parse_bind("/data")
    assert (mp.type, mp.name, mp.destination) == ("volume", "", "/data")


@pytest.mark.parametrize(("spec", "message"), [
    ("rel:x", "mount path must be absolute"),
    ("/tmp:/", "destination can't be '/'"),
    ("bad name:/x", "includes invalid characters for a local volume name"),
    ("vol:/x:rw,ro", "invalid mode: rw,ro"),
    ("vol:/x:bogus", "invalid mode: bogus"),
    ("vol:/x:rshared", "propagation is only for bind mounts"),
    ("/a:/b:nocopy", "nocopy is only for volumes"),
    ("a:b:c:d", "invalid volume specification"),
    (":/x", "invalid volume specification"),
])
def test_bad_binds(spec: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(")):
        parse_bind(spec)


def test_mount_bind_source_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InvalidParameter, match=f"bind source path does not exist: {missing}"):
        from_spec(MountSpec("bind", target="/x", source=str(missing)))
    mp = from_spec(MountSpec("bind", target="/x", source=str(tmp_path), read_only=True, bind_propagation="rslave"))
    assert (mp.rw, mp.propagation, mp.create_source) == (False, "rslave", False)


def test_mount_fields_belong_to_their_type() -> None:
    with pytest.raises(InvalidParameter, match='type "tmpfs": field Source must not be specified'):
        from_spec(MountSpec("tmpfs", target="/t", source="x"))
    with pytest.raises(InvalidParameter, match='type "bind": field VolumeOptions must not be specified'):
        from_spec(MountSpec("bind", target="/t", source="/", has_volume_options=True))
    with pytest.raises(InvalidParameter, match='type "nfs": mount type unknown'):
        from_spec(MountSpec("nfs", target="/t"))
    with pytest.raises(InvalidParameter, match="field Target must not be empty"):
        from_spec(MountSpec("volume"))


def test_mount_volume_options() -> None:
    mp = from_spec(MountSpec("volume", target="/d", source="v1", volume_no_copy=True, volume_driver="plug",
                             volume_driver_options={"size": "1"}, volume_labels={"a": "b"}))
    assert (mp.name, mp.driver, mp.copy_data, mp.volume_options, mp.volume_labels) == (
        "v1", "plug", False, {"size": "1"}, {"a": "b"})
    tmpfs = from_spec(MountSpec("tmpfs", target="/t", tmpfs_size=1 << 20, tmpfs_mode=0o700))
    assert (tmpfs.type, tmpfs.tmpfs_size, tmpfs.tmpfs_mode) == ("tmpfs", 1 << 20, 0o700)


def test_precedence_and_duplicates(tmp_path: Path) -> None:
    other = Container("c" * 64, "other", "", "sha256:x", RunConfig("img"), HostConfig(),
                      mounts=[MountPoint("volume", "/shared", name="s", driver="local", rw=True),
                              MountPoint("volume", "/over", name="o", driver="local"),
                              MountPoint("tmpfs", "/t")])
    points = plan(["named:/over"], [MountSpec("bind", target="/b", source=str(tmp_path))],
                  ["/img", "/shared", "/hidden"], [(other, "ro")], ["/hidden"])
    by_dest = {mp.destination: mp for mp in points}
    assert set(by_dest) == {"/shared", "/over", "/b", "/img"}  # tmpfs not inherited; --tmpfs hides /hidden
    assert by_dest["/shared"].name == "s" and by_dest["/shared"].rw is False  # :ro of --volumes-from
    assert by_dest["/over"].name == "named"  # -v replaces what --volumes-from gave
    assert by_dest["/img"].name == ""  # an anonymous volume for the image's VOLUME
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /b"):
        plan(["xy:/b"], [MountSpec("bind", target="/b", source=str(tmp_path))], [], [], [])


def test_parents_come_first() -> None:
    points = plan(["/h/a:/etc/app/conf", "/h/b:/etc"], [], [], [], [])
    assert [mp.destination for mp in points] == ["/etc", "/etc/app/conf"]


def test_volumes_from_modes() -> None:
    assert parse_volumes_from("web") == ("web", "")
    assert parse_volumes_from("web:ro") == ("web", "ro")
    with pytest.raises(InvalidParameter, match="invalid mode: rx"):
        parse_volumes_from("web:rx")
