"""User namespaces: parsing the mappings, translating ids, and the handshake on a real kernel.

Each namespace is made by a forked child; the pytest process stays where it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from berth.runtime import linux, userns
from berth.runtime.oci import SpecError
from berth.runtime.userns import IdMap, IdMappings

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="writes id maps as root")

DOCKER_REMAP = [IdMap(0, 100000, 65536)]


def in_child(fn: Callable[[], object]) -> Any:
    """Run `fn` in a forked child and return its JSON-able result (or raise what it raised)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            out = json.dumps({"result": fn()})
        except BaseException as e:
            out = json.dumps({"error": f"{type(e).__name__}: {e}"})
            code = 1
        os.write(w, out.encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        doc = json.loads(f.read())
    os.waitpid(pid, 0)
    if "error" in doc:
        raise AssertionError(f"in the child: {doc['error']}")
    return doc["result"]


def in_new_userns(write: Callable[[int], None], inside: Callable[[], object],
                  look: Callable[[int], object] | None = None) -> Any:
    """The handshake: a child unshares a user namespace and waits; `write(pid)` runs here,
    then the child runs `inside()` and stays alive while `look(pid)` runs here.
    Returns what `inside` returned, or (that, what `look` returned) when `look` is given."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (ready_r, go_w, out_r):
                os.close(fd)
            linux.unshare(linux.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
            out = json.dumps({"result": inside()})
        except BaseException as e:
            out = json.dumps({"error": f"{type(e).__name__}: {e}"})
        os.write(out_w, out.encode())
        os.close(out_w)
        os.read(go_r, 1)  # EOF once the parent has looked
        os._exit(0)
    for fd in (ready_w, go_r, out_w):
        os.close(fd)
    looked = None
    try:
        assert os.read(ready_r, 1) == b"1", "the child could not unshare"
        write(pid)
        os.write(go_w, b"1")
        with os.fdopen(out_r, "rb") as f:
            doc = json.loads(f.read() or b'{"error": "the child died"}')
        if look is not None and "error" not in doc:
            looked = look(pid)
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)
    if "error" in doc:
        raise AssertionError(f"in the child: {doc['error']}")
    return doc["result"] if look is None else (doc["result"], looked)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


# --- config.json -------------------------------------------------------------------------


def test_parse_mappings() -> None:
    lin = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
           "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 1000},
                           {"containerID": 1000, "hostID": 1000, "size": 1}]}
    maps = userns.parse_mappings(lin, user_namespace=True)
    assert maps.uid == (IdMap(0, 100000, 65536),)
    assert maps.gid == (IdMap(0, 100000, 1000), IdMap(1000, 1000, 1))
    assert [m.to_oci() for m in maps.gid] == lin["gidMappings"]
    assert userns.parse_mappings({}, user_namespace=False) == IdMappings()
    assert userns.parse_mappings(None, user_namespace=False) == IdMappings()


@pytest.mark.parametrize("maps, message", [
    ({"containerID": 0}, "linux.uidMappings must be a list"),
    ([7], "linux.uidMappings[0] must be an object"),
    ([{"containerID": 0, "size": 1}], "linux.uidMappings[0].hostID must be an integer from 0 to 4294967294"),
    ([{"containerID": -1, "hostID": 0, "size": 1}],
     "linux.uidMappings[0].containerID must be an integer from 0 to 4294967294"),
    ([{"containerID": 0, "hostID": 0, "size": "1"}],
     "linux.uidMappings[0].size must be an integer from 0 to 4294967294"),
    ([{"containerID": 0, "hostID": 0, "size": 0}], "linux.uidMappings[0].size must be at least 1"),
    ([{"containerID": 0, "hostID": 4294967000, "size": 1000}],
     "linux.uidMappings[0]: hostID + size runs past the last id (4294967294)"),
    ([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 999, "hostID": 0, "size": 1}],
     "linux.uidMappings[1] overlaps linux.uidMappings[0] (container ids)"),
    ([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 5000, "hostID": 100999, "size": 5}],
     "linux.uidMappings[1] overlaps linux.uidMappings[0] (host ids)"),
    ([{"containerID": i, "hostID": i, "size": 1} for i in range(341)],
     "linux.uidMappings has 341 entries; the kernel takes at most 340"),
])
def test_bad_mappings_name_the_field(maps: Any, message: str) -> None:
    with pytest.raises(SpecError) as e:
        userns.parse_mappings({"uidMappings": maps}, user_namespace=True)
    assert str(e.value) == "config.json: " + message


def test_gid_mappings_are_named_as_gid_mappings() -> None:
    with pytest.raises(SpecError, match=r"linux\.gidMappings\[0\]\.size must be at least 1"):
        userns.parse_mappings({"gidMappings": [{"containerID": 0, "hostID": 0, "size": 0}]},
                              user_namespace=True)


def test_mappings_need_a_user_namespace_and_a_new_one_needs_mappings() -> None:
    with pytest.raises(SpecError, match="has no user namespace"):
        userns.parse_mappings({"uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
                              user_namespace=False)
    with pytest.raises(SpecError, match="linux.uidMappings and linux.gidMappings are empty"):
        userns.check_new_namespace(IdMappings())
    userns.check_new_namespace(IdMappings(uid=(IdMap(0, 1, 1),)))


# --- translating ids ---------------------------------------------------------------------


def test_translation_both_ways() -> None:
    maps = [IdMap(0, 100000, 1000), IdMap(1000, 5000, 10)]
    assert userns.host_id(maps, 0) == 100000
    assert userns.host_id(maps, 999) == 100999
    assert userns.host_id(maps, 1009) == 5009
    assert userns.host_id(maps, 1010) is None
    assert userns.container_id(maps, 100500) == 500
    assert userns.container_id(maps, 5000) == 1000
    assert userns.container_id(maps, 0) is None
    assert userns.host_id([], 0) is None


# --- the handshake on the kernel ---------------------------------------------------------


@needs_root
def test_root_maps_a_child_which_becomes_root_inside() -> None:
    assert not userns.setgroups_must_be_denied()  # root holds CAP_SETGID

    def write(pid: int) -> None:
        userns.write_maps(pid, DOCKER_REMAP, DOCKER_REMAP)

    def inside() -> object:
        before = os.getuid()
        userns.become_root()
        return {
            "before": before,
            "ids": [os.getuid(), os.getgid(), os.getgroups()],
            "uid_map": read("/proc/self/uid_map").split(),
            "gid_map": read("/proc/self/gid_map").split(),
            "setgroups": read("/proc/self/setgroups").strip(),
        }

    def look(pid: int) -> object:
        st = os.stat(f"/proc/{pid}")
        return [st.st_uid, st.st_gid]

    got, host_view = in_new_userns(write, inside, look)
    assert got["before"] == 65534  # unmapped until become_root()
    assert got["ids"] == [0, 0, []]
    assert got["uid_map"] == got["gid_map"] == ["0", "100000", "65536"]
    assert got["setgroups"] == "allow"  # root's gid_map needs no "deny"
    assert host_view == [100000, 100000]  # container root is 100000 out here


@needs_root
def test_deny_setgroups_on_request() -> None:
    def write(pid: int) -> None:
        userns.write_maps(pid, DOCKER_REMAP, DOCKER_REMAP, deny_setgroups=True)

    def inside() -> object:
        userns.become_root(setgroups_allowed=False)
        try:
            os.setgroups([])
        except PermissionError:
            return [read("/proc/self/setgroups").strip(), "setgroups refused"]
        return [read("/proc/self/setgroups").strip(), "setgroups allowed"]

    assert in_new_userns(write, inside) == ["deny", "setgroups refused"]


@needs_root
def test_an_unprivileged_writer_denies_setgroups_by_itself() -> None:
    def as_user_1000() -> object:
        os.setgroups([])
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)  # no keepcaps: every capability goes
        linux.prctl(4, 1)  # PR_SET_DUMPABLE, so /proc/CHILD/ files belong to uid 1000
        assert userns.setgroups_must_be_denied()
        own = [IdMap(1000, 1000, 1)]  # mapping 0 would need CAP_SETFCAP

        def write(pid: int) -> None:
            userns.write_maps(pid, own, own)

        def inside() -> object:
            return [os.getuid(), os.getgid(), read("/proc/self/setgroups").strip()]

        return in_new_userns(write, inside)

    assert in_child(as_user_1000) == [1000, 1000, "deny"]


@needs_root
def test_a_map_written_twice_is_refused_with_the_path() -> None:
    errors: list[str] = []

    def write(pid: int) -> None:
        userns.write_maps(pid, DOCKER_REMAP, [])
        try:
            userns.write_maps(pid, DOCKER_REMAP, [])
        except OSError as e:
            errors.append(str(e))

    in_new_userns(write, lambda: None)
    assert len(errors) == 1 and "writing /proc/" in errors[0] and "/uid_map: Operation not permitted" in errors[0]


def test_a_remapped_bundle_has_a_new_user_namespace_and_the_maps() -> None:
    """berthd --userns-remap: the user namespace first (the runtime makes it before the
    others, after joining the network namespace berthd made), the maps as OCI's."""
    from berth.runtime import spec
    from berth.runtime.userns import IdMap, IdMappings, parse_mappings

    maps = IdMappings((IdMap(0, 100000, 65536),), (IdMap(0, 200000, 65536),))
    config = spec.build_config(spec.BundleRequest(
        root="rootfs", args=["true"], env=[], cwd="/", uid=0, gid=0, additional_gids=[], hostname="h",
        terminal=False, network_namespace="/run/berth/netns/x", id_maps=maps))
    linux = config["linux"]
    assert linux["namespaces"][0] == {"type": "user"}
    assert {"type": "network", "path": "/run/berth/netns/x"} in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert parse_mappings(linux, user_namespace=True) == maps
    plain = spec.build_config(spec.BundleRequest(
        root="rootfs", args=["true"], env=[], cwd="/", uid=0, gid=0, additional_gids=[], hostname="h",
        terminal=False))
    assert all(ns["type"] != "user" for ns in plain["linux"]["namespaces"])
    assert "uidMappings" not in plain["linux"]
