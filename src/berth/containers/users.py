"""Resolving `--user` against the container's own /etc/passwd and /etc/group.

As Docker does: `name`, `uid`, `name:group`, `uid:gid`; a numeric user that the
passwd file does not list is allowed (group 0, HOME "/"), a name that it does not
list is an error. Files are read through secure_join so image symlinks stay inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from berth.errors import InvalidParameter
from berth.runtime.rootfs import secure_join


@dataclass
class ResolvedUser:
    uid: int
    gid: int
    home: str
    additional_gids: list[int] = field(default_factory=list)


def _read(root: str, path: str) -> list[list[str]]:
    try:
        with open(secure_join(root, path), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(root: str, spec: str, extra_groups: list[str] | None = None) -> ResolvedUser:
    user, _, group = (spec or "0").partition(":")
    passwd = [e for e in _read(root, "/etc/passwd") if len(e) >= 7]
    entry = next((e for e in passwd if e[0] == user), None)
    if entry is None and user.isdigit():
        entry = next((e for e in passwd if e[2] == user), None)
    if entry is not None:
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5]
    elif user.isdigit():
        uid, gid, home = int(user), 0, "/"
    else:
        raise InvalidParameter(f"unable to find user {user}: no matching entries in passwd file")
    groups = [e for e in _read(root, "/etc/group") if len(e) >= 3]

    def group_id(name: str) -> int:
        g = next((e for e in groups if e[0] == name), None)
        if g is not None:
            return int(g[2])
        if name.isdigit():
            return int(name)
        raise InvalidParameter(f"unable to find group {name}: no matching entries in group file")

    if group:
        gid = group_id(group)
    # As Docker: the primary group always leads the supplementary list.
    additional = [gid]
    if entry is not None and not group:
        additional += [int(e[2]) for e in groups
                       if len(e) >= 4 and entry[0] in e[3].split(",") and int(e[2]) != gid]
    additional += [group_id(g) for g in extra_groups or []]
    return ResolvedUser(uid, gid, home or "/", additional)
