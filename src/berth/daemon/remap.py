"""User-namespace remapping (dockerd's `--userns-remap`): which host ids containers get.

`setup` resolves the option to a user and a group the way dockerd's parseRemappedRoot
does (a name or a number, USER[:GROUP]; "default" is the user `dockremap`, created with
the distribution's adduser or useradd and given a 65536-id range in /etc/subuid and
/etc/subgid when it has none, as dockerd's AddNamespaceRangesUser), then reads that
user's ranges into the id maps every container gets: container id 0 is the first id of
the first range, and further ranges follow on. Only berthd's start-up calls this, and
only "default" changes /etc. The remapped daemon keeps its state in a data root of its
own, `<data-root>/<uid>.<gid>` (`data_root`), as dockerd does.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

from berth.daemon.config import ConfigError
from berth.runtime.userns import IdMap, IdMappings, host_id

log = logging.getLogger(__name__)

DEFAULT_SPECIFIER = "default"
DEFAULT_USER = "dockremap"
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
RANGE_START = 100000  # where dockerd starts looking for a free range
RANGE_LENGTH = 65536


@dataclass(frozen=True)
class Remap:
    """The resolved option: the user and group named, and the containers' id maps."""

    user: str
    group: str
    maps: IdMappings

    @property
    def root_pair(self) -> tuple[int, int]:
        """The host uid and gid that a container's root is."""
        uid = host_id(self.maps.uid, 0)
        gid = host_id(self.maps.gid, 0)
        assert uid is not None and gid is not None  # the maps start at container id 0
        return uid, gid


@dataclass(frozen=True)
class SubId:
    name: str
    start: int
    count: int


def setup(option: object, subuid: str = SUBUID, subgid: str = SUBGID) -> Remap | None:
    """The remapping `option` asks for; None when there is none (also for "root", which
    cannot be remapped to itself). ConfigError with dockerd's message otherwise."""
    if not option:
        return None
    if not isinstance(option, str):
        raise ConfigError("userns-remap in daemon.json must be a string")
    user, group = parse_remapped_root(option, subuid, subgid)
    if user == "root":
        log.warning("User namespaces: root cannot be remapped with itself; user namespaces are OFF")
        return None
    log.info("User namespaces: ID ranges will be mapped to subuid/subgid ranges of: %s", user)
    try:
        maps = load_mappings(user, subuid, subgid)
    except ConfigError as e:
        raise ConfigError(f"error creating ID mappings: {e}") from None
    return Remap(user, group, maps)


def data_root(base: str, remap: Remap | None) -> str:
    """Where a daemon with `remap` keeps its state: `<base>/<uid>.<gid>`, or `base`."""
    if remap is None:
        return base
    uid, gid = remap.root_pair
    return os.path.join(base, f"{uid}.{gid}")


def prepare_data_root(base: str, remap: Remap) -> str:
    """Make the remapped data root (0710, root and the remapped root's group, so that the
    container's root can reach its files there) and check that every directory above it
    lets that uid or gid through, as dockerd's setupDaemonRoot does."""
    uid, gid = remap.root_pair
    root = data_root(base, remap)
    os.makedirs(base, mode=0o711, exist_ok=True)
    os.chmod(base, 0o711)
    os.makedirs(root, mode=0o710, exist_ok=True)
    os.chown(root, os.getuid(), gid)
    os.chmod(root, 0o710)
    path = root
    while True:
        path = os.path.dirname(path)
        if path == "/":
            break
        if not _can_traverse(path, uid, gid):
            raise ConfigError(f"a subdirectory in your graphroot path ({root}) restricts access to the remapped "
                              "root uid/gid; please fix by allowing 'o+x' permissions on existing directories")
    return root


def _can_traverse(path: str, uid: int, gid: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return bool(st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100)
                or (st.st_gid == gid and st.st_mode & 0o010))


# -- the option -----------------------------------------------------------------------------


def parse_remapped_root(option: str, subuid: str = SUBUID, subgid: str = SUBGID) -> tuple[str, str]:
    """USER[:GROUP] (names or numbers) to names that exist, as dockerd resolves them."""
    parts = option.split(":")
    if len(parts) > 2:
        raise ConfigError(f'Invalid user/group specification in --userns-remap: "{option}"')
    username = groupname = ""
    number = _int32(parts[0])
    if number is not None:
        try:
            username = pwd.getpwuid(number).pw_name
        except KeyError:
            raise ConfigError(f"Uid {number} has no entry in /etc/passwd: "
                              f'getent unable to find entry "{number}" in passwd database') from None
        if len(parts) == 1:
            try:
                groupname = grp.getgrgid(number).gr_name
            except KeyError:
                raise ConfigError(f"Gid {number} has no entry in /etc/group: "
                                  f'getent unable to find entry "{number}" in group database') from None
    else:
        name = DEFAULT_USER if parts[0] == DEFAULT_SPECIFIER else parts[0]
        try:
            username = pwd.getpwnam(name).pw_name
        except KeyError:
            if parts[0] != DEFAULT_SPECIFIER:
                raise ConfigError(f'Error during uid lookup for "{name}": '
                                  f'getent unable to find entry "{name}" in passwd database') from None
            try:
                add_namespace_ranges_user(DEFAULT_USER, subuid, subgid)
            except ConfigError as e:
                raise ConfigError(f'Error during "{DEFAULT_USER}" user creation: {e}') from None
            return DEFAULT_USER, DEFAULT_USER
        if len(parts) == 1:
            try:
                groupname = grp.getgrnam(name).gr_name
            except KeyError:
                raise ConfigError(f'Error during gid lookup for "{name}": '
                                  f'getent unable to find entry "{name}" in group database') from None
    if len(parts) == 2:
        number = _int32(parts[1])
        if number is not None:
            try:
                groupname = grp.getgrgid(number).gr_name
            except KeyError:
                raise ConfigError(f"Gid {number} has no entry in /etc/passwd: "
                                  f'getent unable to find entry "{number}" in group database') from None
        else:
            try:
                grp.getgrnam(parts[1])
            except KeyError:
                raise ConfigError(f'Error during groupname lookup for "{parts[1]}": '
                                  f'getent unable to find entry "{parts[1]}" in group database') from None
            groupname = parts[1]
    return username, groupname


def _int32(text: str) -> int | None:
    """A number as Go's strconv.ParseInt(text, 10, 32) takes it, else None."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -2**31 <= value < 2**31 else None


# -- /etc/subuid and /etc/subgid ----------------------------------------------------------------


def parse_subids(path: str) -> list[SubId]:
    """The entries of a subordinate-id file (NAME_OR_UID:START:COUNT a line)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    entries = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise ConfigError(f"parsing {path}: invalid entry {line!r}: it must be NAME:START:COUNT")
        entries.append(SubId(parts[0], int(parts[1]), int(parts[2])))
    return entries


def load_mappings(user: str, subuid: str = SUBUID, subgid: str = SUBGID) -> IdMappings:
    """The user's ranges (named by name or uid) as container id maps from 0 on."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"could not get user for username {user}: "
                          f'getent unable to find entry "{user}" in passwd database') from None
    return IdMappings(_maps(subuid, entry), _maps(subgid, entry))


def _maps(path: str, entry: pwd.struct_passwd) -> tuple[IdMap, ...]:
    ranges = [r for r in parse_subids(path) if r.name in (entry.pw_name, str(entry.pw_uid))]
    if not ranges:
        # dockerd says "subuid" for either file
        raise ConfigError(f'no subuid ranges found for user "{entry.pw_name}"')
    maps = []
    inside = 0
    for r in ranges:
        maps.append(IdMap(inside, r.start, r.count))
        inside += r.count
    return tuple(maps)


# -- making the default user ----------------------------------------------------------------------


def add_namespace_ranges_user(name: str, subuid: str = SUBUID, subgid: str = SUBGID) -> tuple[int, int]:
    """Create the system user and group `name` (no home, no login) and give it a range in
    the subordinate-id files unless the distribution's tools already did."""
    _add_user(name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f'error trying to find uid/gid for new user "{name}"') from None
    try:
        for path, flag in ((subuid, "-v"), (subgid, "-w")):
            if any(r.name in (name, str(entry.pw_uid)) for r in parse_subids(path)):
                continue
            start = next_range_start(parse_subids(path))
            _run(["usermod", flag, f"{start}-{start + RANGE_LENGTH - 1}", name],
                 f'unable to add {"subuid" if flag == "-v" else "subgid"} range to user: "{name}"')
    except ConfigError as e:
        raise ConfigError(f"couldn't create subordinate ID ranges: {e}") from None
    return entry.pw_uid, entry.pw_gid


def _add_user(name: str) -> None:
    if shutil.which("adduser"):
        argv = ["adduser", "--system", "--shell", "/bin/false", "--no-create-home", "--disabled-login",
                "--disabled-password", "--group", name]
    elif shutil.which("useradd"):
        argv = ["useradd", "-r", "-s", "/bin/false", name]
    else:
        raise ConfigError(f'error adding user "{name}": cannot add user; no useradd/adduser binary found')
    _run(argv, f'error adding user "{name}": failed to add user')


def _run(argv: list[str], what: str) -> None:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise ConfigError(f"{what}: {e}") from None
    if res.returncode != 0:
        out = (res.stdout + res.stderr).strip()
        raise ConfigError(f"{what}: exit status {res.returncode}; output: {out!r}")


def next_range_start(ranges: list[SubId]) -> int:
    """The first id from 100000 on where 65536 ids overlap none of `ranges`, found as
    dockerd's findNextRangeStart finds it (ranges taken in order of their start, the
    candidate moved past each it meets), except that a range lying wholly inside the
    candidate counts as overlapping too (dockerd's check misses that case)."""
    start = RANGE_START
    for r in sorted(ranges, key=lambda r: r.start):
        if start <= r.start + r.count and r.start <= start + RANGE_LENGTH:
            start = r.start + r.count
    return start
