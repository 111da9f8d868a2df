"""User namespaces: the OCI `linux.uidMappings`/`gidMappings`, writing them, translating ids.

Owns the `IdMap` record, parsing and checking mappings the way the kernel will check
them, the parent's half of the user-namespace handshake (`write_maps`), the child's half
(`become_root`), and translating ids between the container and the host (to chown what
the runtime creates for a container: /dev nodes, the rootfs top). It does not create
namespaces; the setup process unshares CLONE_NEWUSER itself.

The handshake, as runc's nsexec does it:
  child:  unshare(CLONE_NEWUSER); tell the parent; wait
  parent: write_maps(child_pid, uid_maps, gid_maps); tell the child
  child:  become_root(); go on with the other namespaces, now as root of its own
"""

from __future__ import annotations

import os

from berth.runtime import capabilities
from berth.runtime.oci import SpecError
from berth.runtime.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

MAX_MAPPINGS = 340  # per map file, since Linux 4.15 (5 before)
_ID_LIMIT = 2**32 - 1  # (u32)-1 is no id; first + size must stay below it
_CAP_SETGID = capabilities.cap_number("CAP_SETGID")


@record(frozen=True)
class IdMap:
    """Ids container_id … container_id+size-1 are host_id … host_id+size-1 on the host."""

    container_id: int
    host_id: int
    size: int

    def line(self) -> str:
        return f"{self.container_id} {self.host_id} {self.size}\n"

    def to_oci(self) -> dict[str, int]:
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.size}


@record(frozen=True)
class IdMappings:
    uid: tuple[IdMap, ...] = ()
    gid: tuple[IdMap, ...] = ()


# --- config.json -----------------------------------------------------------------------


def parse_id_maps(doc: Any, field: str) -> tuple[IdMap, ...]:
    """One list of mappings (`field` is "linux.uidMappings" …); SpecError names the entry."""
    where = f"config.json: {field}"
    if doc is None:
        return ()
    if not isinstance(doc, list):
        raise SpecError(f"{where} must be a list")
    if len(doc) > MAX_MAPPINGS:
        raise SpecError(f"{where} has {len(doc)} entries; the kernel takes at most {MAX_MAPPINGS}")
    maps: list[IdMap] = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise SpecError(f"{where}[{i}] must be an object")
        values = {}
        for key in ("containerID", "hostID", "size"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _ID_LIMIT:
                raise SpecError(f"{where}[{i}].{key} must be an integer from 0 to {_ID_LIMIT - 1}")
            values[key] = value
        m = IdMap(values["containerID"], values["hostID"], values["size"])
        if m.size == 0:
            raise SpecError(f"{where}[{i}].size must be at least 1")
        for key, first in (("containerID", m.container_id), ("hostID", m.host_id)):
            if first + m.size > _ID_LIMIT:
                raise SpecError(f"{where}[{i}]: {key} + size runs past the last id ({_ID_LIMIT - 1})")
        for j, other in enumerate(maps):
            side = _overlap(m, other)
            if side:
                raise SpecError(f"{where}[{i}] overlaps {field}[{j}] ({side} ids)")
        maps.append(m)
    return tuple(maps)


def _overlap(a: IdMap, b: IdMap) -> str | None:
    if a.container_id < b.container_id + b.size and b.container_id < a.container_id + a.size:
        return "container"
    if a.host_id < b.host_id + b.size and b.host_id < a.host_id + a.size:
        return "host"
    return None


def parse_mappings(linux_doc: Any, *, user_namespace: bool) -> IdMappings:
    """`linux.uidMappings` and `linux.gidMappings`, checked against the namespace list.

    `user_namespace` says whether `linux.namespaces` has a "user" entry; as in runc,
    mappings without one are an error, and so is a new user namespace with no mappings.
    """
    doc = linux_doc if isinstance(linux_doc, dict) else {}
    maps = IdMappings(parse_id_maps(doc.get("uidMappings"), "linux.uidMappings"),
                      parse_id_maps(doc.get("gidMappings"), "linux.gidMappings"))
    if (maps.uid or maps.gid) and not user_namespace:
        raise SpecError("config.json: linux.uidMappings/gidMappings are set, but linux.namespaces "
                        "has no user namespace")
    return maps


def check_new_namespace(maps: IdMappings) -> None:
    """A user namespace the runtime creates (no `path`) needs something to map."""
    if not maps.uid and not maps.gid:
        raise SpecError("config.json: linux.namespaces has a new user namespace, but "
                        "linux.uidMappings and linux.gidMappings are empty")


# --- translating ids -------------------------------------------------------------------


def host_id(maps: Iterable[IdMap], container_id: int) -> int | None:
    """The host id that `container_id` is, or None if the maps leave it unmapped."""
    for m in maps:
        if m.container_id <= container_id < m.container_id + m.size:
            return m.host_id + container_id - m.container_id
    return None


def container_id(maps: Iterable[IdMap], host_id: int) -> int | None:
    """The id inside the container that host id `host_id` shows as, or None."""
    for m in maps:
        if m.host_id <= host_id < m.host_id + m.size:
            return m.container_id + host_id - m.host_id
    return None


# --- the handshake ---------------------------------------------------------------------


def setgroups_must_be_denied() -> bool:
    """Whether the kernel will refuse our gid_map unless setgroups is denied first.

    A writer with CAP_SETGID over the parent namespace (root, for berth) may write any
    gid_map and leave setgroups allowed; only an unprivileged writer mapping its own gid
    must write "deny" first (user_namespaces(7), kernel/user_namespace.c).
    """
    return _CAP_SETGID not in capabilities.current().effective


def write_maps(pid: int, uid_maps: Sequence[IdMap], gid_maps: Sequence[IdMap], *,
               deny_setgroups: bool | None = None) -> None:
    """The parent's half: map the ids of `pid`, which has unshared CLONE_NEWUSER.

    Writes uid_map, then "deny" to setgroups if `deny_setgroups` (by default: only when
    the kernel requires it, see `setgroups_must_be_denied`), then gid_map. Each map is
    one write(), as the kernel requires; a map file can be written only once.
    """
    if uid_maps:
        _write(f"/proc/{pid}/uid_map", "".join(m.line() for m in uid_maps))
    if gid_maps:
        if deny_setgroups is None:
            deny_setgroups = setgroups_must_be_denied()
        if deny_setgroups:
            _write(f"/proc/{pid}/setgroups", "deny")
        _write(f"/proc/{pid}/gid_map", "".join(m.line() for m in gid_maps))
    elif deny_setgroups:
        _write(f"/proc/{pid}/setgroups", "deny")


def _write(path: str, text: str) -> None:
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"writing {path}: {os.strerror(e.errno or 0)}") from None
    if written != len(data):
        raise OSError(f"writing {path}: short write ({written} of {len(data)} bytes)")


def become_root(setgroups_allowed: bool = True) -> None:
    """The child's half, after the parent wrote the maps: become uid and gid 0 inside.

    Until then the child's ids are unmapped and show as the overflow id (65534).
    Clears the supplementary groups unless setgroups was denied.
    """
    os.setresgid(0, 0, 0)
    if setgroups_allowed:
        os.setgroups([])
    os.setresuid(0, 0, 0)
